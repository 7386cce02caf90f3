"""SMS and web answers end in the same place: identical answers give identical results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from app.extensions import db
from app.services.conversations.checkins.by_sms import answer_by_sms, settle_red_check
from app.services.conversations.checkins.sessions import record_answers, session_items
from tests.checkins.conftest import (
    alerts,
    enrol,
    fresh,
    full_answers,
    inbound,
    mark_checkin_messages_sent,
    start,
)

SCENARIOS = {
    "nothing": {},
    "mild": {"N": 1, "NS": 1, "E": 2, "EI": 1},
    "amber": {"D": 3, "V": 2, "VS": 2},
    "fever": {"F": 38.6},
    "red": {"S": 4, "N": 3, "NS": 3},
    "feverish_no_thermometer": {"F": 1, "T": 2, "TI": 3},
}


def _by_sms_one_at_a_time(patient: Any, session: Any, answers: dict[str, Any]) -> None:
    moment = session.sent_at + timedelta(minutes=5)
    while (question := fresh(session).current_question) is not None:
        value = answers[question]
        text = f"{value}" if not isinstance(value, float) else f"{value:.1f}"
        result = answer_by_sms(patient, inbound(patient, text, moment), text, moment)
        db.session.commit()
        assert result is not None
        if "red_check_asked" in result.actions:  # a one-character red: the patient confirms
            yes = inbound(patient, "yes", moment)
            result = settle_red_check(patient, yes, "yes", moment, session.id)
            db.session.commit()
            assert result is not None and result.result.priority == "red"
        if result.result.priority == "red":  # SMS stops asking: the rest by compact reply
            rest = {k: v for k, v in answers.items() if k not in fresh(session).answers}
            if rest:
                body = " ".join(f"{k}{v}" for k, v in rest.items())
                answer_by_sms(patient, inbound(patient, body, moment), body, moment)
                db.session.commit()
            break
        moment += timedelta(minutes=1)


def _by_web_at_once(session: Any, answers: dict[str, Any]) -> None:
    record_answers(
        session.id, answers, channel="web", now=session.sent_at + timedelta(minutes=5),
        actor="test",
    )  # fmt: skip
    db.session.commit()


def _by_compact_sms(patient: Any, session: Any, answers: dict[str, Any]) -> None:
    body = " ".join(f"{k}{v}" for k, v in answers.items())
    at = session.sent_at + timedelta(minutes=5)
    assert answer_by_sms(patient, inbound(patient, body, at), body, at) is not None
    db.session.commit()


def _outcome(session: Any) -> tuple:
    row = fresh(session)
    levels = sorted(a.level for a in alerts() if a.patient_id == row.patient_id)
    return (row.status, row.answers, row.results, row.priority, row.reasons, levels)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sms_and_web_answers_give_identical_results(app_ctx: Flask, name: str) -> None:
    by_sms, by_web, by_code = (enrol(f"JSCH-1{i:02d}", locale="zh") for i in range(3))
    sessions = [start(p) for p in (by_sms, by_web, by_code)]
    mark_checkin_messages_sent(sessions[0].sent_at)
    answers = full_answers(session_items(sessions[0]), SCENARIOS[name])

    _by_sms_one_at_a_time(by_sms, sessions[0], answers)
    _by_web_at_once(sessions[1], answers)
    _by_compact_sms(by_code, sessions[2], answers)

    results = [_outcome(s) for s in sessions]
    assert results[0] == results[1] == results[2]
    assert results[0][0] == "answered"
    expected = {"nothing": "green", "mild": "green", "amber": "amber", "fever": "red",
                "red": "red", "feverish_no_thermometer": "red"}  # fmt: skip
    assert results[0][3] == expected[name]


def test_composite_grades_follow_the_published_tables(app_ctx: Flask) -> None:
    patient = enrol()
    session = start(patient)
    answers = full_answers(
        session_items(session), {"N": 3, "NS": 4, "E": 1, "EI": 3, "D": 2, "S": 3, "I": 4}
    )
    _by_web_at_once(session, answers)
    grades = {r["item"]: r["composite_grade"] for r in fresh(session).results}
    assert grades["N"] == 3  # frequency 3 x severity 4
    assert grades["E"] == 2  # severity 1 x interference 3
    assert grades["D"] == 1  # frequency-only 2
    assert grades["S"] == 3 and grades["I"] == 3  # severity-only 3 and 4
    assert grades["HB"] is None  # custom items have no composite grade
    ctcae = {r["item"]: r["ctcae_term"] for r in fresh(session).results}
    assert ctcae["S"] == "Dysphagia" and ctcae["T"] == "Peripheral sensory neuropathy"


def test_worsening_is_judged_against_the_patients_own_previous_check_in(app_ctx: Flask) -> None:
    patient = enrol()
    first = start(patient, index=0)
    _by_web_at_once(first, full_answers(session_items(first), {"C": 2, "CI": 1}))
    second = start(patient, index=1)
    _by_web_at_once(second, full_answers(session_items(second), {"C": 2, "CI": 1}))
    third = start(patient, index=2)
    _by_web_at_once(third, full_answers(session_items(third), {"C": 4, "CI": 4}))
    assert not any("worse_by_2" in r for r in fresh(second).reasons)  # same as before
    assert any("cough worse by >= 2 points (grade 1 -> 3)" in r for r in fresh(third).reasons)
    assert any("worse_by_2" in r for r in fresh(first).reasons) is False
