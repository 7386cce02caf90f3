"""Migration 0004: every existing patient's phone becomes a 'self' contact (issue 14 §8)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import flask_migrate
from sqlalchemy import select, text

from app import create_app
from app.extensions import db
from app.models import Contact
from tests.conftest import fresh_database

CREATED = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
PATIENTS = [
    # study id, phone, locale, consent, consent date, opted out
    ("JSCH-001", "+8613800000001", "zh", True, date(2026, 1, 30), None),
    ("JSCH-002", "+8613800000002", "en", True, None, CREATED),
    ("JSCH-003", "+8613800000001", "zh", False, None, None),  # a shared phone, no consent
]


def _insert_patients() -> None:
    for study_id, phone, locale, consent, consent_on, opted_out in PATIENTS:
        db.session.execute(
            text(
                "INSERT INTO patient (study_id, initials, phone_e164, locale, timezone, "
                "sms_consent, sms_consent_date, sms_opted_out_at, phone_status, protocol_code, "
                "choices, start_date, status, created_at, updated_at) VALUES (:sid, 'WL', "
                ":phone, :locale, 'Asia/Shanghai', :consent, :consent_on, :opted_out, 'ok', "
                "'NCT07016737', '{}', :start, 'active', :created, :created)"
            ),
            {
                "sid": study_id,
                "phone": phone,
                "locale": locale,
                "consent": consent,
                "consent_on": consent_on,
                "opted_out": opted_out,
                "start": date(2026, 2, 2),
                "created": CREATED,
            },
        )
    db.session.commit()


def test_the_migration_keeps_every_existing_phone_as_a_self_contact(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            flask_migrate.upgrade(revision="0004_reply_invitations")
            _insert_patients()
            flask_migrate.upgrade(revision="0005_contacts")
            contacts = db.session.execute(
                text(
                    "SELECT p.study_id, c.relation, c.phone_e164, c.locale, c.position, "
                    "c.opted_out_at IS NOT NULL AS opted_out FROM contact c "
                    "JOIN patient p ON p.id = c.patient_id ORDER BY p.study_id"
                )
            ).all()
            consents = db.session.execute(
                text(
                    "SELECT p.study_id, k.method, k.note, k.needs_confirmation, k.recorded_on "
                    "FROM contact_consent k JOIN contact c ON c.id = k.contact_id "
                    "JOIN patient p ON p.id = c.patient_id ORDER BY p.study_id"
                )
            ).all()
            in_force = {
                c.patient.study_id: (c.scopes_in_force(), c.scopes_waiting())
                for c in db.session.scalars(select(Contact))
            }
            db.session.remove()
            db.engine.dispose()

    assert [(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in contacts] == [
        ("JSCH-001", "self", "+8613800000001", "zh", 0, False),
        ("JSCH-002", "self", "+8613800000002", "en", 0, True),
        ("JSCH-003", "self", "+8613800000001", "zh", 0, False),
    ]
    assert [(r[0], r[1], r[2], bool(r[3])) for r in consents] == [
        ("JSCH-001", "before_contacts", "recorded before contacts existed", True),
        ("JSCH-002", "before_contacts", "recorded before contacts existed", True),
    ]
    assert str(consents[0][4]) == "2026-01-30"
    assert str(consents[1][4]) == "2026-02-01"  # no consent date: the day the patient was added
    # The old single box was an SMS consent: until a nurse confirms it, it covers reminders
    # only; check-ins and sensitive health information wait (PIPL Art. 28-29).
    assert in_force["JSCH-001"] == ({"sms_reminders"}, {"checkins", "sensitive_health"})
    assert in_force["JSCH-003"] == (set(), set())
