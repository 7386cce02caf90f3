"""Where a patient is in treatment (drug, phase, days since the last infusion), for triage rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.domain.triage import TriageContext
from app.extensions import db
from app.models import CalendarEvent, Patient
from app.services.shared.clinic import clinic_zone

CHEMOTHERAPY = ("irinotecan", "docetaxel", "paclitaxel", "carboplatin")
NOT_GIVEN = ("cancelled", "missed")


def treatment_context(patient: Patient, now: datetime) -> TriageContext:
    """The triage context of ``patient`` at ``now``: the last infusion given on or before today.

    The chemotherapy is the one of that infusion (a maintenance infusion has none); with no
    infusion yet, the phase and the days since are unknown, so rules take the urgent reading.
    """
    today = now.astimezone(clinic_zone()).date()
    last = db.session.execute(
        select(CalendarEvent.date, CalendarEvent.phase, CalendarEvent.drugs)
        .where(
            CalendarEvent.patient_id == patient.id,
            CalendarEvent.kind == "infusion",
            CalendarEvent.date <= today,
            CalendarEvent.status.not_in(NOT_GIVEN),
        )
        .order_by(CalendarEvent.date.desc())
        .limit(1)
    ).first()
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
