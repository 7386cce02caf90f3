"""Paging for red alerts and escalation of alerts nobody acknowledges.

- A new red alert pages the on-call clinician at once (``page_for_new_red``).
- ``escalate_due(now)`` (the escalation job, every minute): a red alert still open
  ESCALATION_RED_FIRST_MINUTES after it was raised pages the investigator on duty, then again
  every ESCALATION_RED_REPEAT_MINUTES; an amber alert still open after ESCALATION_AMBER_HOURS
  of nurse on-call cover (any day, weekends and public holidays included) reminds the nurse on
  call, then again every ESCALATION_AMBER_REPEAT_HOURS of cover; with no nurse cover within 24 h
  the hours are wall-clock hours and the reminder goes to the fallbacks (app.services.alerts.cover).

Each escalation claims its alert with a conditional UPDATE (``escalation_count`` as it was read),
queues its pages (outbox rows with a UNIQUE key per alert, step and recipient) and commits in
one transaction, so any number of job processes can run at once: every step happens once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import force_locale
from sqlalchemy import select, update

from app.extensions import db
from app.models import Alert, OutboxMessage
from app.services.alerts import oncall
from app.services.alerts.cover import next_escalation
from app.services.shared import audit
from app.services.shared import reply_texts as texts

logger = logging.getLogger("cadence.escalation")

JOB_ACTOR = "job:escalation"
ESCALATION_ROLE = {"red": "investigator", "amber": "nurse"}


@dataclass
class EscalationReport:
    """What one escalation run did."""

    checked: int = 0
    escalated: int = 0
    pages: int = 0
    lost: int = 0
    nobody_to_page: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"checked {self.checked}, escalated {self.escalated}, pages {self.pages}, "
            f"taken by another process {self.lost}, nobody to page {len(self.nobody_to_page)}"
        )


def _who(alert: Alert, locale: str) -> str:
    if alert.patient is not None:
        return alert.patient.study_id
    sender = alert.inbound_message.from_number if alert.inbound_message else ""
    return texts.unregistered_sender(locale, sender)


def _what(alert: Alert, locale: str) -> str:
    temperature = next(
        (s.get("temperature_c") for s in alert.symptoms or [] if s.get("temperature_c")), None
    )
    with force_locale(locale):
        return texts.symptom_summary(
            alert.symptoms or [], temperature if isinstance(temperature, float | int) else None
        )


def page_for_new_red(
    alert: Alert, *, now: datetime, actor: str, known_new: bool = False
) -> list[OutboxMessage]:
    """Page the on-call clinician (or the fallbacks) about a new red alert; flush, no commit.

    ``known_new``: the alert was created in this transaction, so no page for it can exist yet
    (the look-up is skipped; the UNIQUE key still refuses a duplicate).
    """
    people = oncall.recipients("clinician", now)
    if not people:
        logger.error("red alert %s: nobody on call and no ESCALATION_FALLBACK_PHONE", alert.id)
        audit.record(
            actor,
            "alert.page_failed",
            entity_type="alert",
            entity_id=alert.id,
            patient_id=alert.patient_id,
            reason="nobody on call to page",
            at=now,
        )
        return []

    def render(locale: str) -> str:
        return texts.red_page(locale, alert.id, _who(alert, locale), _what(alert, locale))

    return oncall.page(
        f"alert:{alert.id}:0",
        people,
        render,
        now=now,
        actor=actor,
        patient_id=alert.patient_id,
        known_new=known_new,
    )


def escalate_due(now: datetime, *, actor: str = JOB_ACTOR, limit: int = 100) -> EscalationReport:
    """Escalate every open red or amber alert whose escalation time has come; commit each."""
    report = EscalationReport()
    due = db.session.execute(
        select(Alert.id, Alert.escalation_count)
        .where(
            Alert.status == "open",
            Alert.level.in_(tuple(ESCALATION_ROLE)),
            Alert.next_escalation_at.is_not(None),
            Alert.next_escalation_at <= now,
        )
        .order_by(Alert.next_escalation_at, Alert.id)
        .limit(limit)
    ).all()
    for alert_id, seen_count in due:
        report.checked += 1
        _escalate_one(alert_id, seen_count, now, actor, report)
    if report.escalated:
        logger.info("escalation: %s", report.summary())
    return report


def _escalate_one(
    alert_id: int, seen_count: int, now: datetime, actor: str, report: EscalationReport
) -> None:
    alert = db.session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        return
    step = seen_count + 1
    following = next_escalation(alert.level, now)
    claimed = db.session.execute(
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "open", Alert.escalation_count == seen_count)
        .values(
            escalation_count=step,
            last_escalated_at=now,
            next_escalation_at=following,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        report.lost += 1
        return
    db.session.refresh(alert)
    role = ESCALATION_ROLE[alert.level]
    people = oncall.recipients(role, now)
    minutes = max(int((now - alert.created_at).total_seconds() // 60), 0)

    def render(locale: str) -> str:
        who, what = _who(alert, locale), _what(alert, locale)
        if alert.level == "red":
            return texts.red_escalation_page(locale, alert.id, who, what, minutes)
        return texts.amber_reminder_page(locale, alert.id, who, what)

    pages = oncall.page(
        f"alert:{alert.id}:{step}",
        people,
        render,
        now=now,
        actor=actor,
        patient_id=alert.patient_id,
    )
    audit.record(
        actor,
        "alert.escalate",
        entity_type="alert",
        entity_id=alert.id,
        patient_id=alert.patient_id,
        before={"escalation_count": seen_count},
        after={
            "escalation_count": step,
            "role": role,
            "pages": len(pages),
            "next_escalation_at": following.isoformat() if following else None,
        },
        reason=f"{alert.level} alert not acknowledged after {minutes} min",
        at=now,
    )
    db.session.commit()
    report.escalated += 1
    report.pages += len(pages)
    if not people:
        report.nobody_to_page.append(alert.id)
        logger.error("alert %s: escalation step %s found nobody to page", alert.id, step)
