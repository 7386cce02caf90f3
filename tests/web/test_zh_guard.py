"""The zh guard: every nurse page, rendered with the demo data in Chinese, has no English and no
code names on it (issue 13 §1).

Visible text and the text of titles, labels and placeholders are checked; a run of Latin letters
must be on a short allow-list (study ids, drugs as the protocol spells them, units, PD-1, CT) or
be data typed by people (patients' and staff's names, usernames). Parts in another language are
marked with a ``lang`` attribute (an English patient's SMS) and are skipped, as a screen reader
would read them in that language.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import Alert, BulkJob, CheckinSession, Contact, OnCallShift, Patient, User
from app.services import bulk
from app.services.conversations import inbox
from app.services.conversations.checkins.links import make_token
from app.services.conversations.inbound.replies import receive
from app.services.demo import ensure_demo_rota, load_demo_checkins, load_demo_data
from app.services.shared import users as user_service
from app.web.helpers import clinic_today
from tests.support import PASSWORD, sign_in

LATIN = re.compile(r"[A-Za-z][A-Za-z0-9'’-]*")
ALLOWED = {
    # units, clinical abbreviations used as such in Chinese clinics
    "PD-1", "CT", "mg", "ml", "mL", "kg", "cm", "m²", "m2", "AUC", "C", "UTC", "ECOG", "CTCAE",
    "PRO-CTCAE", "ICS", "ics", "CSV",
    # the China SMS unsubscribe keyword patients are told to send
    "TD",
    # the study and the protocol's drug names
    "NCT07016737", "Cadence",
}  # fmt: skip
STUDY_ID = re.compile(r"JSCH-\d+|UTC[+-]?\d*")
SKIPPED_TAGS = {"script", "style", "code", "kbd", "template"}
CHECKED_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")
VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "source", "col", "area", "base", "wbr"}


class VisibleText(HTMLParser):
    """Collects visible text and labelling attributes, outside parts in another language."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.chunks: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open an element; a foreign lang or a code tag hides what is inside."""
        values = dict(attrs)
        lang = (values.get("lang") or "zh").lower()
        skip = tag in SKIPPED_TAGS or not lang.startswith("zh") or "data-i18n-skip" in values
        if not self._skipping() and not skip:
            self.chunks.extend(str(values[a]) for a in CHECKED_ATTRIBUTES if values.get(a))
            if (
                tag == "input"
                and values.get("type") in ("submit", "button")
                and values.get("value")
            ):
                self.chunks.append(str(values["value"]))
        if tag not in VOID_TAGS:
            self.stack.append((tag, skip))

    def handle_endtag(self, tag: str) -> None:
        """Close the innermost element of that name."""
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        """Keep text outside skipped parts."""
        if not self._skipping() and data.strip():
            self.chunks.append(data)


def latin_runs(html: str, allowed: set[str]) -> list[str]:
    """Runs of Latin letters in the page's visible text that are not allowed."""
    parser = VisibleText()
    parser.feed(html)
    found = []
    for chunk in parser.chunks:
        for match in LATIN.finditer(chunk):
            word = match.group(0).strip("-'’")
            if (
                word
                and word not in allowed
                and word not in ALLOWED
                and not STUDY_ID.fullmatch(word)
            ):
                found.append(f"{word!r} in {chunk.strip()[:90]!r}")
    return found


def _data_words(extra: set[str]) -> set[str]:
    """Words typed by people or fixed by the protocol: names, usernames, study ids, drugs."""
    words: set[str] = set(extra)
    for patient in db.session.scalars(select(Patient)):
        words.update({patient.study_id, *patient.study_id.split("-"), patient.initials})
    for shift in db.session.scalars(select(OnCallShift)):
        words.update(LATIN.findall(shift.name))
    for user in db.session.scalars(select(User)):
        words.update(LATIN.findall(user.display_name))
        words.update({user.username, *re.split(r"[.\-_]", user.username)})
    return words


@pytest.fixture
def demo_world(app_ctx: Flask) -> dict[str, object]:
    """The demo data with check-ins, plus one item of every inbox kind the demo lacks."""
    today = clinic_today()
    user_service.create_user(
        "demo-nurse", display_name="演示护士 Demo Nurse", role="nurse", password=PASSWORD,
        actor="demo", locale="zh",
    )  # fmt: skip
    load_demo_data(today=today)
    load_demo_checkins(today=today)
    ensure_demo_rota()
    sent = _inbound_of_every_kind()
    _handle_some_items()
    return {"today": today, "sent": sent}


def _handle_some_items() -> None:
    """Acknowledged, assigned and resolved items (every handling step shows in the history)."""
    open_alerts = list(db.session.scalars(select(Alert).where(Alert.status == "open")))
    red = next(a for a in open_alerts if a.level == "red")
    amber = next(a for a in open_alerts if a.level == "amber")
    inbox.acknowledge(red.id, actor="user:demo-nurse")
    inbox.assign(red.id, "demo-nurse", actor="user:demo-nurse")
    inbox.acknowledge(amber.id, actor="user:demo-nurse")
    inbox.resolve(amber.id, action="called_patient", note="已电话随访，症状缓解",
                  actor="user:demo-nurse")  # fmt: skip


def _inbound_of_every_kind() -> dict[str, str]:
    """SMS through the real pipeline: reschedule, opt-out, unknown sender, unclear, symptoms."""
    from app import clock

    zh = db.session.scalar(select(Patient).where(Patient.study_id == "JSCH-002"))
    en = db.session.scalar(select(Patient).where(Patient.study_id == "JSCH-005"))
    other = db.session.scalar(select(Patient).where(Patient.study_id == "JSCH-006"))
    assert zh and en and other
    bodies = [
        (zh.phone_e164, "下次化疗我来不了，想改期"),
        (en.phone_e164, "I have a mild rash and I feel a bit tired"),
        (zh.phone_e164, "拉肚子一天五六次"),
        ("+8613912345678", "你好 我是谁"),
        (en.phone_e164, "purple monkey dishwasher"),
        (other.phone_e164, "STOP"),
    ]
    for number, (sender, body) in enumerate(bodies):
        receive(
            {"MessageSid": f"SMzhguard{number:04d}", "From": sender, "To": "+15005550006",
             "Body": body, "NumMedia": "0"},
            clock.utcnow(),
        )  # fmt: skip
    return {"zh": zh.study_id, "en": en.study_id}


def _bulk_pages() -> list[str]:
    """A finished re-plan (one patient's error kept), a finished export and a waiting job."""
    replan = bulk.request_job("replan_all", actor="user:demo-nurse")
    export = bulk.request_job("symptom_reports", actor="user:demo-nurse")
    bulk.run_pending(clock.utcnow, tz=ZoneInfo("Asia/Shanghai"))
    job = db.session.get(BulkJob, replan.id)
    assert job is not None
    job.errors = [{"study_id": "JSCH-003", "error": "RuntimeError"}]
    job.failed = 1
    db.session.commit()
    waiting = bulk.request_job("replan_all", actor="user:demo-nurse")
    return [f"/bulk/{replan.id}", f"/bulk/{export.id}", f"/bulk/{waiting.id}", "/audit/"]


def _pages(today: date) -> list[str]:
    """Every nurse page with the demo data (the rota page is rebuilt elsewhere)."""
    pages = [
        "/",
        "/inbox/",
        "/inbox/?view=resolved",
        "/audit/",
        "/calendar/month",
        "/calendar/clinic-list",
        "/calendar/week",
        f"/calendar/day/{today.isoformat()}",
        f"/calendar/day/{(today - timedelta(days=7)).isoformat()}",
        "/messages/",
        "/messages/?tab=planned",
        "/metrics/",
        "/patients/",
        "/patients/new",
        "/account",
        "/calendar/month?patient=JSCH-001&kind=infusion&kind=labs",
        "/calendar/week?patient=JSCH-999",
        *_bulk_pages(),
    ]
    for patient in db.session.scalars(select(Patient).order_by(Patient.study_id)):
        base = f"/patients/{patient.study_id}"
        pages += [base, f"{base}/conversation", f"{base}/print", f"{base}/contacts/"]
        for contact in db.session.scalars(select(Contact).where(Contact.patient_id == patient.id)):
            pages += [f"{base}/contacts/{contact.id}/edit", f"{base}/contacts/{contact.id}/print"]
        events = sorted(patient.events, key=lambda e: e.date)
        kinds_seen: set[str] = set()
        for event in events:
            if event.kind not in kinds_seen:
                kinds_seen.add(event.kind)
                pages.append(f"{base}/events/{event.key}")
    return pages


def test_every_nurse_page_speaks_only_chinese(
    client: FlaskClient, demo_world: dict[str, object]
) -> None:
    sign_in(client, "demo-nurse")
    today = demo_world["today"]
    assert isinstance(today, date)
    allowed = _data_words(set())
    problems: dict[str, list[str]] = {}
    for url in _pages(today):
        response = client.get(url)
        assert response.status_code == 200, url
        found = latin_runs(response.get_data(as_text=True), allowed)
        if found:
            problems[url] = found[:12]
    report = "\n".join(f"{url}:\n  " + "\n  ".join(found) for url, found in problems.items())
    assert not problems, "English or code on Chinese pages:\n" + report


def test_every_inbox_kind_and_history_entry_is_in_chinese(
    client: FlaskClient, demo_world: dict[str, object]
) -> None:
    levels = set(db.session.scalars(select(Alert.level)))
    kinds = set(db.session.scalars(select(Alert.kind)))
    statuses = set(db.session.scalars(select(Alert.status)))
    assert levels == {"red", "amber", "green"}
    assert kinds >= {"symptom", "reschedule", "review", "call_task", "opt_out"}
    assert statuses >= {"open", "acknowledged", "resolved"}
    test_every_nurse_page_speaks_only_chinese(client, demo_world)


def test_the_patients_checkin_page_speaks_only_chinese(
    client: FlaskClient, demo_world: dict[str, object]
) -> None:
    session = db.session.scalars(
        select(CheckinSession)
        .join(Patient, Patient.id == CheckinSession.patient_id)
        .where(Patient.locale == "zh")
    ).first()
    assert session is not None
    response = client.get(f"/c/{make_token(session.id, session.patient_id)}")
    assert response.status_code in (200, 410)
    assert latin_runs(response.get_data(as_text=True), _data_words(set())) == []


def test_the_guard_sees_english_and_code_names() -> None:
    html = (
        '<p title="Overdue">逾期</p><td>worse_by_2: dysphagia</td>'
        '<span lang="en">I feel tired</span><script>var x = 1;</script>'
    )
    found = latin_runs(html, set())
    assert any("Overdue" in item for item in found)
    assert any("worse_by_2" in item for item in found)
    assert any("dysphagia" in item for item in found)
    assert not any("tired" in item or "var" in item for item in found)
