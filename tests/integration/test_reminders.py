"""Planning reminders into the outbox: enrolment, bodies, rules, re-planning, consent (both DBs)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.clock import FrozenClock, utcnow
from app.domain.reminders import in_quiet_hours
from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Patient
from app.services.messaging import reminders
from app.services.messaging.dispatch import Dispatcher, DispatchSettings
from app.services.schedule import calendar as calendar_service
from app.sms import ConsoleGateway, count_segments
from tests.conftest import FIXED_NOW
from tests.integration.sms_support import (
    TODAY,
    enrol,
    names_no_drug_or_diagnosis,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 10)  # Tuesday; labs and dexamethasone start on Monday 9 March


def rows_of(patient: Patient, *statuses: str) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
    if statuses:
        stmt = stmt.where(OutboxMessage.status.in_(statuses))
    return list(db.session.scalars(stmt.order_by(OutboxMessage.send_after, OutboxMessage.id)))


def local(row: OutboxMessage, tz: ZoneInfo = SHANGHAI) -> datetime:
    return row.send_after.astimezone(tz)


def first_cycle(patient: Patient) -> list[OutboxMessage]:
    return [r for r in rows_of(patient, "planned") if local(r).date() <= START]


def test_enrolment_plans_the_first_cycle_in_chinese_exactly_as_sent(app_ctx: Flask) -> None:
    patient = enrol(start=START)

    cycle = first_cycle(patient)

    # docetaxel: dexamethasone 08:00 and 20:00 on Mar 9, 10 and 11, each dose reminded 2 h
    # before (the 08:00 doses the evening before, out of the quiet hours); one message a
    # half-day; blood tests say to fast (liver and renal function), once per day
    assert [local(r).strftime("%m-%d %H:%M") for r in cycle] == [
        "03-08 18:00",
        "03-09 18:00",
        "03-10 08:00",
        "03-10 18:00",
    ]
    assert [r.body for r in cycle] == [
        "【江苏省肿瘤医院】提醒：您3月9日周一需到院抽血化验。请按医嘱服用治疗前用药（3月9日周一 08:00）。"
        "请于07:30前到达。请提前8小时禁食，可饮水。您3月10日周二有治疗安排，请按时到院。请于08:30前到达。"
        "回复TD退订",
        "【江苏省肿瘤医院】提醒：请按医嘱服用治疗前用药（3月9日周一 20:00）。"
        "请按医嘱服用治疗前用药（3月10日周二 08:00）。回复TD退订",
        "【江苏省肿瘤医院】提醒：今天（3月10日周二）是您的治疗日，请按时到院。请于08:30前到达。回复TD退订",
        "【江苏省肿瘤医院】提醒：请按医嘱服用治疗前用药（3月10日周二 20:00）。"
        "请按医嘱服用治疗前用药（3月11日周三 08:00）。回复TD退订",
    ]
    assert all(r.segments <= 2 and r.encoding == "UCS-2" for r in cycle)
    assert cycle[0].event_keys == [
        "induction.c1.labs",
        "induction.c1.infusion",
        "induction.c1.premedication.dexamethasone_3_days",
    ]
    assert "merged" in cycle[0].notes


def test_english_bodies_use_english_dates(app_ctx: Flask) -> None:
    patient = enrol("JSCH-101", start=START, locale="en")

    cycle = first_cycle(patient)

    assert cycle[0].body == (
        "【江苏省肿瘤医院】Reminder: Blood test at the hospital on Mon, Mar 9. Please take the "
        "medicine prescribed for before your treatment (Mon, Mar 9, 8:00\u202fAM dose). "
        "Please arrive by 7:30\u202fAM. Do not eat for 8 hours before; water is fine. "
        "Your treatment is on Tue, Mar 10. Please come on time. Please arrive by 8:30\u202fAM. "
        "Reply STOP to opt out."
    )
    assert cycle[2].body.endswith(
        "Your treatment is today, Tue, Mar 10. Please come on time. Please arrive by "
        "8:30\u202fAM. Reply STOP to opt out."
    )
    assert cycle[1].body == (
        "【江苏省肿瘤医院】Reminder: Please take the medicine prescribed for before your "
        "treatment (Mon, Mar 9, 8:00\u202fPM dose). Please take the medicine prescribed for "
        "before your treatment (Tue, Mar 10, 8:00\u202fAM dose). Reply STOP to opt out."
    )


def test_segments_are_counted_on_the_signed_body(app_ctx: Flask) -> None:
    patient = enrol(start=START)

    # Counted by hand on the four bodies above (Chinese: UCS-2, one segment up to 70
    # characters, 67 per segment beyond): 114, 71, 53 and 72 characters with the signature.
    cycle = first_cycle(patient)
    assert [len(r.body) for r in cycle] == [114, 71, 53, 72]
    assert [(r.segments, r.encoding) for r in cycle] == [
        (2, "UCS-2"),
        (2, "UCS-2"),
        (1, "UCS-2"),
        (2, "UCS-2"),
    ]
    assert all(row.body.startswith("【江苏省肿瘤医院】") for row in rows_of(patient))


def test_without_a_signature_setting_none_is_added(app_ctx: Flask) -> None:
    app_ctx.config["SMS_SIGNATURE"] = ""
    try:
        patient = enrol(start=START)
    finally:
        app_ctx.config["SMS_SIGNATURE"] = "【江苏省肿瘤医院】"

    assert first_cycle(patient)[0].body.startswith("提醒：")


def test_every_planned_message_follows_the_rules(app_ctx: Flask) -> None:
    patients = [
        enrol("JSCH-110", chemo="docetaxel", start=START),
        enrol("JSCH-111", chemo="paclitaxel", start=date(2026, 3, 4)),
        enrol("JSCH-112", chemo="irinotecan", start=date(2026, 3, 16), locale="en"),
    ]

    for patient in patients:
        rows = rows_of(patient, "planned")
        assert len(rows) > 50  # two years of reminders
        per_day = Counter(local(r).date() for r in rows)
        for row in rows:
            when = local(row)
            assert not in_quiet_hours(when, time(21), time(8)), row
            assert row.send_after >= datetime(2026, 2, 28, 16, tzinfo=UTC)
            if per_day[when.date()] > 3:
                assert "over_budget" in row.notes
            assert names_no_drug_or_diagnosis(row.body), row.body
        for a in rows:
            for b in rows:
                if a.id != b.id and a.body == b.body:
                    assert abs(a.send_after - b.send_after) >= timedelta(hours=24)
        assert len({r.dedupe_key for r in rows}) == len(rows)


def test_paclitaxel_premedication_reminder_is_the_evening_before(app_ctx: Flask) -> None:
    patient = enrol("JSCH-120", chemo="paclitaxel", start=START)

    evening = [r for r in first_cycle(patient) if local(r).date() == date(2026, 3, 9)]

    # the 20:00 dose the evening before, reminded at 18:00 (not at the dose time)
    assert [local(r).hour for r in evening] == [18]
    assert "治疗前用药（3月9日周一 20:00）" in evening[0].body


def test_imaging_reminder_carries_preparation_and_no_test_name(app_ctx: Flask) -> None:
    patient = enrol("JSCH-121", start=START)
    ct = next(e for e in patient.events if e.details.get("assessment") == "ct")

    [row] = [r for r in rows_of(patient) if ct.key in r.event_keys]

    assert local(row).date() == ct.date - timedelta(days=2)
    assert "影像检查" in row.body and "请提前4小时禁食，可饮水" in row.body
    assert "CT" not in row.body and names_no_drug_or_diagnosis(row.body)


def test_english_sentences_are_separated_by_spaces(app_ctx: Flask) -> None:
    patient = enrol("JSCH-122", start=START, locale="en")
    ct = next(e for e in patient.events if e.details.get("assessment") == "ct")

    [row] = [r for r in rows_of(patient) if ct.key in r.event_keys]

    day = f"{ct.date:%a}, {ct.date:%b} {ct.date.day}"
    assert f"You have a scan on {day}. Please arrive by 8:00\u202fAM. Do not eat for 4" in row.body
    assert ".." not in row.body and not any(f".{c}" in row.body for c in "ABCDEFGHIJKLMNOPRSTUVWYZ")


def test_patient_time_zone_sets_the_local_send_time(app_ctx: Flask) -> None:
    new_york = ZoneInfo("America/New_York")
    patient = enrol("JSCH-130", start=START, timezone="America/New_York", locale="en")

    cycle = [r for r in rows_of(patient, "planned") if local(r, new_york).date() <= START]

    assert [local(r, new_york).strftime("%m-%d %H:%M") for r in cycle] == [
        "03-08 18:00",
        "03-09 18:00",
        "03-10 08:00",
        "03-10 18:00",
    ]
    # 18:00 in New York on 8 March 2026 is daylight time (UTC-4).
    assert cycle[0].send_after == datetime(2026, 3, 8, 22, tzinfo=UTC)
    assert "8:00\u202fPM dose" in cycle[1].body


def test_detail_titles_in_the_protocol_allows_drug_names(app_ctx: Flask, tmp_path: Path) -> None:
    path = Path(app_ctx.config["PROTOCOL_PATH"])
    detailed = tmp_path / "detailed.yaml"
    detailed.write_text(
        path.read_text(encoding="utf-8").replace("  detail: generic\n", "  detail: titles\n"),
        encoding="utf-8",
    )
    app_ctx.config["PROTOCOL_PATH"] = str(detailed)
    try:
        patient = enrol("JSCH-131", start=START)
    finally:
        app_ctx.config["PROTOCOL_PATH"] = str(path)

    premed = [r for r in first_cycle(patient) if "治疗前用药" in r.body]
    assert premed and all("地塞米松" in r.body for r in premed)


def test_planning_again_changes_nothing(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    before = {(r.dedupe_key, r.status, r.body) for r in rows_of(patient)}

    result = reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="test")
    db.session.commit()

    assert (result.created, result.cancelled, result.updated, result.reactivated) == (0, 0, 0, 0)
    assert result.kept == len(before)
    assert {(r.dedupe_key, r.status, r.body) for r in rows_of(patient)} == before


def test_planning_from_another_day_starts_at_its_local_midnight(app_ctx: Flask) -> None:
    moment = reminders.planning_moment(date(2026, 3, 9))

    assert moment == datetime(2026, 3, 8, 16, tzinfo=UTC)
    assert reminders.planning_moment(None) == utcnow() == FIXED_NOW


def test_planning_on_the_clinic_day_of_the_app_clock_starts_now(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    clock.set(datetime(2027, 2, 5, 23, 30, tzinfo=SHANGHAI))  # Spring Festival eve, late
    assert reminders.planning_moment(date(2027, 2, 5)) == utcnow()
    assert reminders.planning_moment(date(2027, 2, 6)) == datetime(2027, 2, 5, 16, tzinfo=UTC)


# -- rescheduling ------------------------------------------------------------------------------


def _infusion(patient: Patient, cycle: int):
    return next(e for e in patient.events if e.kind == "infusion" and e.cycle == cycle)


def test_rescheduling_cancels_old_reminders_plans_new_ones_and_one_moved_notice(
    app_ctx: Flask,
) -> None:
    patient = enrol(start=START)
    c2 = _infusion(patient, 2)
    old_date = c2.date
    old_rows = {r.id for r in rows_of(patient, "planned") if c2.key in r.event_keys}
    new_date = old_date + timedelta(days=2)

    calendar_service.reschedule_event(
        patient.id, c2.key, new_date, "patient request", actor="user:nurse1", today=TODAY
    )

    rows = rows_of(patient)
    by_id = {r.id: r for r in rows}
    assert old_rows and all(by_id[i].status == "cancelled" for i in old_rows)
    live = [
        r for r in rows if r.status == "planned" and r.kind == "reminder" and c2.key in r.event_keys
    ]
    assert {local(r).date() for r in live} == {new_date - timedelta(days=2), new_date}
    notices = [r for r in rows if r.kind == "moved"]
    assert len(notices) == 1 and notices[0].status == "planned"
    old_text = f"{old_date.month}月{old_date.day}日"
    new_text = f"{new_date.month}月{new_date.day}日"
    assert f"您的治疗已由{old_text}" in notices[0].body
    assert f"改到{new_text}" in notices[0].body
    assert notices[0].body.startswith("【江苏省肿瘤医院】日程变更：")
    assert notices[0].send_after == datetime(2026, 3, 1, 0, tzinfo=UTC)  # 08:00 Shanghai


def test_marking_a_future_event_missed_cancels_its_reminders(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    c2 = _infusion(patient, 2)
    before = [r for r in rows_of(patient, "planned") if r.event_keys == [c2.key]]
    assert before

    calendar_service.set_event_status(
        patient.id, c2.key, "missed", actor="user:nurse1", note="admitted elsewhere", today=TODAY
    )

    still_planned = {r.id for r in rows_of(patient, "planned")}
    assert not any(r.id in still_planned for r in before)
    assert any(r.event_keys == [_infusion(patient, 3).key] for r in rows_of(patient, "planned"))


def test_a_long_cascade_gives_a_short_notice(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    c2 = _infusion(patient, 2)

    calendar_service.reschedule_event(
        patient.id, c2.key, c2.date + timedelta(days=7), "ANC low", actor="cli", today=TODAY
    )

    notice = next(r for r in rows_of(patient) if r.kind == "moved")
    assert len(notice.items) > 10
    assert notice.body.count("改到") <= 2
    assert f"其后另有{len(notice.items) - 2}项日程相应顺延" in notice.body
    assert count_segments(notice.body).segments <= 3


def test_a_second_move_before_the_notice_went_out_leaves_one_notice(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    c2 = _infusion(patient, 2)
    original = c2.date

    for days in (2, 3):
        calendar_service.reschedule_event(
            patient.id,
            c2.key,
            original + timedelta(days=days),
            "patient request",
            actor="user:nurse1",
            today=TODAY,
        )

    notices = [r for r in rows_of(patient) if r.kind == "moved"]
    planned = [r for r in notices if r.status == "planned"]
    assert len(planned) == 1
    final = original + timedelta(days=3)
    assert f"已由{original.month}月{original.day}日" in planned[0].body
    assert f"改到{final.month}月{final.day}日" in planned[0].body


def test_moving_back_to_the_original_date_needs_no_notice_and_revives_reminders(
    app_ctx: Flask,
) -> None:
    patient = enrol(start=START)
    c2 = _infusion(patient, 2)
    original = c2.date
    before = {r.dedupe_key for r in rows_of(patient, "planned") if c2.key in r.event_keys}

    for target in (original + timedelta(days=2), original):
        calendar_service.reschedule_event(
            patient.id, c2.key, target, "patient request", actor="user:nurse1", today=TODAY
        )

    after = {r.dedupe_key for r in rows_of(patient, "planned") if c2.key in r.event_keys}
    assert after == before
    assert [r for r in rows_of(patient, "planned") if r.kind == "moved"] == []


# -- consent, opt-out, invalid number, off study -----------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sms_consent": False}, "no_consent"),
        ({"sms_opted_out_at": datetime(2026, 3, 1, tzinfo=UTC)}, "opted_out"),
        ({"phone_status": "invalid"}, "invalid_number"),
        ({"status": "off_study"}, "off_study"),
    ],
)
def test_nothing_is_planned_or_sent_without_consent_or_to_unreachable_patients(
    app_ctx: Flask, change: dict, reason: str
) -> None:
    patient = enrol(start=START)
    planned = len(rows_of(patient, "planned"))
    for key, value in change.items():
        setattr(patient, key, value)

    result = reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="test")
    db.session.commit()

    assert result.blocked_reason == reason
    assert result.cancelled == planned
    assert rows_of(patient, "planned") == []
    assert {r.error_reason for r in rows_of(patient)} == {reason}


def test_a_row_planned_before_consent_was_withdrawn_is_blocked_at_send_time(
    app_ctx: Flask,
) -> None:
    patient = enrol(start=START)
    patient.sms_opted_out_at = datetime(2026, 3, 1, tzinfo=UTC)
    db.session.commit()  # the outbox was NOT re-planned: the dispatcher must still refuse
    gateway = ConsoleGateway()

    report = Dispatcher(gateway, DispatchSettings(), actor="test").run(
        datetime(2026, 3, 9, 1, tzinfo=UTC)
    )

    assert report.blocked == 1 and report.sent == 0  # the merged message of Mar 8, 18:00
    assert gateway.sent == []
    assert {r.error_reason for r in rows_of(patient, "blocked")} == {"opted_out"}


def test_withdrawal_cancels_every_unsent_message(app_ctx: Flask) -> None:
    patient = enrol(start=START)

    calendar_service.withdraw(
        patient.id, date(2026, 3, 5), actor="user:nurse1", reason="patient withdrew consent"
    )

    assert rows_of(patient, "planned") == []
    assert db.session.scalar(select(func.count(AuditEntry.id))) >= 2


def test_re_consenting_plans_the_reminders_again(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    planned = {r.dedupe_key for r in rows_of(patient, "planned")}
    patient.sms_consent = False
    reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="test")
    patient.sms_consent = True

    result = reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="test")
    db.session.commit()

    assert result.reactivated == len(planned)
    assert {r.dedupe_key for r in rows_of(patient, "planned")} == planned


def test_the_history_records_who_planned_and_cancelled(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    row = first_cycle(patient)[0]
    patient.status = "withdrawn"
    reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="user:nurse1")
    db.session.commit()
    db.session.refresh(row)

    assert [(h.from_status, h.to_status, h.source) for h in row.history] == [
        (None, "planned", "user:nurse1"),
        ("planned", "cancelled", "user:nurse1"),
    ]
