"""Find a patient by database id or study id (every layer looks patients up this way)."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Patient


class PatientNotFound(LookupError):
    """No patient with that study id or database id."""


def get_patient(ref: str | int) -> Patient:
    """Find a patient by database id or study id, or raise PatientNotFound."""
    patient = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        patient = db.session.get(Patient, int(ref))
    if patient is None:
        patient = db.session.scalar(select(Patient).where(Patient.study_id == str(ref)))
    if patient is None:
        raise PatientNotFound(f"no patient {ref!r}")
    return patient
