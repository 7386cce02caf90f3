"""Patients and their calendar events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

PATIENT_STATUSES = ("active", "salvage", "follow_up", "withdrawn", "off_study")
EVENT_STATUSES = ("planned", "confirmed", "done", "missed", "cancelled")
ATTENTION_SQL = "CAST(flags AS VARCHAR) NOT IN ('[]', '[\"moved_non_working_day\"]')"
"""SQL: an event whose flags may ask for attention (not none, not only "moved to a working
day"); the predicate of a partial index, repeated word for word by the queries that use it."""


class Patient(db.Model):
    """A trial participant: identifiers, contact, consent, arm and status."""

    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(32), unique=True)
    initials: Mapped[str] = mapped_column(String(8))
    phone_e164: Mapped[str] = mapped_column(String(20), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_consent_date: Mapped[date | None] = mapped_column(Date)
    sms_opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone_status: Mapped[str] = mapped_column(String(16), default="ok")
    protocol_code: Mapped[str] = mapped_column(String(32))
    choices: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    start_date: Mapped[date] = mapped_column(Date)
    recurrence_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    progression_date: Mapped[date | None] = mapped_column(Date)
    salvage_start: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    events: Mapped[list[CalendarEvent]] = relationship(
        back_populates="patient",
        order_by="(CalendarEvent.date, CalendarEvent.id)",
        cascade="all, delete-orphan",
    )

    @property
    def can_receive_sms(self) -> bool:
        """True when consent is recorded, not opted out, number valid and still on study."""
        return (
            self.sms_consent
            and self.sms_opted_out_at is None
            and self.phone_status == "ok"
            and self.status not in ("withdrawn", "off_study")
        )

    @property
    def first_infusion_date(self) -> date:
        """The actual first infusion (a Saturday start moves to Monday), else the start date."""
        infusions = [
            e.date for e in self.events if e.kind == "infusion" and e.status != "cancelled"
        ]
        return min(infusions, default=self.start_date)

    def __repr__(self) -> str:
        return f"<Patient {self.study_id}>"


# Indexes made on one database only (``ddl_if``), by name: Alembic, which compares every
# index of the models, must compare these only there (migrations/env.py, tests).
DIALECT_INDEXES = {
    "ix_calendar_event_attention_patient": "postgresql",
    "ix_calendar_event_attention_flags": "sqlite",
}


def compared_on(dialect: str) -> Any:
    """Alembic's ``include_object`` for ``dialect``: leave out the other databases' indexes."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return type_ != "index" or DIALECT_INDEXES.get(name or "", dialect) == dialect

    return include


class CalendarEvent(db.Model):
    """One planned visit, infusion, lab, reminder-worthy event of a patient's calendar."""

    __tablename__ = "calendar_event"
    __table_args__ = (
        UniqueConstraint("patient_id", "key"),
        # Events of some days (calendars, Today): the month and week views count events by
        # day, kind and patient from this index alone (it replaced (date, status)).
        Index("ix_calendar_event_date_status_kind_patient", "date", "status", "kind", "patient_id"),
        # Open events in a date range (Today's flagged events, calendars): status IN (...) then
        # a date range; at 10,000 patients SQLite otherwise scanned every open event.
        Index("ix_calendar_event_status_date", "status", "date"),
        # Next visit and current phase per patient (patients list), one patient's timeline.
        # Covering: the patients list's next visit and phase per patient are read from the
        # index alone (sorted by phase at 10,000 patients: 5.3 s on PostgreSQL, which had read
        # every event of each patient through a patient_id-only index, now dropped).
        Index(
            "ix_calendar_event_patient_date_status_kind_phase",
            "patient_id",
            "date",
            "status",
            "kind",
            "phase",
            postgresql_include=["id"],
        ),
        # Overdue events: open events whose window has passed (Today page), counted and picked
        # from the index alone (PostgreSQL otherwise read the whole table: 1 s at 10,000).
        Index(
            "ix_calendar_event_open_window_end",
            "status",
            "window_end",
            "kind",
            "patient_id",
            postgresql_include=["date", "id"],
        ),
        # Events whose flags may ask for attention (Today's flagged events and decisions):
        # most events have no flag or only "moved", so this index holds a few percent of them.
        # It covers the Today page's queries (patient, flags), so SQLite, without statistics,
        # prefers it to the full (status, date) index. PostgreSQL cannot make a json column a
        # key (no btree operator class), so it includes it: one index per database (ddl_if,
        # DIALECT_INDEXES). Together they replaced 0009's (status, date) attention index.
        Index(
            "ix_calendar_event_attention_patient",
            "status",
            "date",
            "patient_id",
            postgresql_where=text(ATTENTION_SQL),
            postgresql_include=["flags", "id"],
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_calendar_event_attention_flags",
            "status",
            "date",
            "patient_id",
            "flags",
            sqlite_where=text(ATTENTION_SQL),
        ).ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int | None] = mapped_column(Integer)
    date: Mapped[date] = mapped_column(Date)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    moved_from: Mapped[date | None] = mapped_column(Date)
    title_en: Mapped[str] = mapped_column(String(200))
    title_zh: Mapped[str] = mapped_column(String(200))
    drugs: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    anchor: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="planned")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="events")

    def __repr__(self) -> str:
        return f"<CalendarEvent {self.key} {self.date}>"
