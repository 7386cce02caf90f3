"""What pages remember per app context to render long lists: labels per language, URL
patterns (Today, the week, a patient's calendar, the clinic list)."""

from __future__ import annotations

from flask import Flask, url_for
from flask_babel import force_locale

from app.web import helpers, labels


def test_a_label_remembered_in_one_language_is_not_given_in_another(app: Flask) -> None:
    """Labels are remembered per app context and language: zh, en, zh again in one context."""
    with app.test_request_context():
        with force_locale("zh"):
            zh = [labels.kind_label("infusion"), labels.level_label("red")]
        with force_locale("en"):
            en = [labels.kind_label("infusion"), labels.level_label("red")]
        with force_locale("zh"):
            again = [labels.kind_label("infusion"), labels.level_label("red")]
    assert en[1] == "Urgent" and zh[1] == "紧急"
    assert zh == again and zh[0] != en[0]


def test_event_and_patient_urls_from_a_pattern_are_url_fors(app: Flask) -> None:
    """The per-context URL pattern gives what url_for gives, even for an id that looks like
    a marker."""
    with app.test_request_context():
        for study_id, key in (("JSCH-001", "induction.c1.infusion"), ("A__key__", "b__study_id__")):
            assert helpers.event_url(study_id, key) == url_for(
                "patients.event", study_id=study_id, key=key
            )
            assert helpers.patient_url(study_id) == url_for("patients.detail", study_id=study_id)
