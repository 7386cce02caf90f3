"""Previews of treatment decisions (progression, salvage, stop, withdraw): nothing is written.

Each function asks the calendar engine exactly what app.services.schedule.calendar would apply, so the
nurse sees the effect before confirming.
"""

from __future__ import annotations

from datetime import date

from app.domain import calendar as cal
from app.domain.calendar import CalendarChange
from app.services.schedule.calendar import planned_events
from app.services.shared.patient_lookup import get_patient
from app.services.shared.protocols import clinic_working_days, current_protocol

DECISIONS = ("progression", "salvage", "stop", "withdraw")


def preview_decision(
    decision: str, patient_ref: str | int, on: date, *, today: date
) -> CalendarChange:
    """What `decision` on date `on` would do to the patient's calendar."""
    patient = get_patient(patient_ref)
    events = planned_events(patient)
    protocol = current_protocol()
    if decision == "progression":
        return cal.record_progression(protocol, events, on, today=today)
    if decision == "salvage":
        return cal.start_salvage(
            protocol, events, patient.choices, on, clinic_working_days(), today=today
        )
    if decision == "stop":
        return cal.stop_treatment(
            protocol,
            events,
            on,
            clinic_working_days(),
            today=today,
            recurrence_date=patient.recurrence_date,
        )
    if decision == "withdraw":
        return cal.off_study(events, on)
    raise ValueError(f"unknown decision {decision!r}; expected one of {', '.join(DECISIONS)}")
