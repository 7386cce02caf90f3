"""Where a patient is in treatment (drug, phase, days since the last infusion), for triage rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select

from app.domain.triage import TriageContext
from app.extensions import db
from app.models import CalendarEvent, Patient
from app.services.shared.clinic import clinic_zone

CHEMOTHERAPY = ("irinotecan", "docetaxel", "paclitaxel", "carboplatin")
NOT_GIVEN = ("cancelled", "missed")

_LAST_INFUSION = (
    select(CalendarEvent.date, CalendarEvent.phase, CalendarEvent.drugs)
    .where(
        CalendarEvent.patient_id == bindparam("p_patient"),
        CalendarEvent.kind == "infusion",
        CalendarEvent.date <= bindparam("p_today", type_=CalendarEvent.date.type),
        *(CalendarEvent.status != status for status in NOT_GIVEN),
    )
    .order_by(CalendarEvent.date.desc())
    .limit(1)
)
"""Built once (every triaged inbound SMS reads it); NOT_GIVEN as inequalities, so the SQL
is cached whole (an IN list is expanded at each execution)."""


def treatment_context(patient: Patient, now: datetime) -> TriageContext:
    """The triage context of ``patient`` at ``now``: the last infusion given on or before today.

    The chemotherapy is the one of that infusion (a maintenance infusion has none); with no
    infusion yet, the phase and the days since are unknown, so rules take the urgent reading.
    """
    today = now.astimezone(clinic_zone()).date()
    params = {"p_patient": patient.id, "p_today": today}
    last = db.session.execute(_LAST_INFUSION, params).first()
    pd1 = (patient.choices or {}).get("pd1")
    if last is None:
        return TriageContext(pd1=pd1)
    return TriageContext(
        chemo=_chemotherapy(last.drugs or []),
        pd1=pd1,
        phase=last.phase,
        days_since_infusion=(today - last.date).days,
    )


def _chemotherapy(drugs: list[str]) -> str | None:
    """The first chemotherapy named in an infusion's drug list ("irinotecan 270 mg/m2")."""
    names = " ".join(drugs).lower()
    return next((name for name in CHEMOTHERAPY if name in names), None)
