"""Metrics from a known data set, with expected values computed by hand (see the comments)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.domain import metrics as m

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=SHANGHAI)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def checkin(pid: str, day: int, status: str) -> m.CheckinRecord:
    return m.CheckinRecord(pid, date(2025, 3, day), status)


CHECKINS = [
    # P-001: due 4 (answered, answered, partial, missed), responded 3, completed 2
    checkin("P-001", 3, "answered"),
    checkin("P-001", 7, "answered"),
    checkin("P-001", 14, "partial"),
    checkin("P-001", 24, "missed"),
    checkin("P-001", 28, "pending"),
    # P-002: due 2 (missed, missed), responded 0; the cancelled one does not count
    checkin("P-002", 3, "missed"),
    checkin("P-002", 7, "missed"),
    checkin("P-002", 14, "cancelled"),
    # P-003: nothing due yet
    checkin("P-003", 28, "pending"),
    # P-004: due 3, all answered
    checkin("P-004", 3, "answered"),
    checkin("P-004", 7, "answered"),
    checkin("P-004", 14, "answered"),
]


def alert(aid, level, ack=None, resolved=None, pid="P-001") -> m.AlertRecord:
    return m.AlertRecord(
        aid,
        pid,
        level,
        T0,
        None if ack is None else T0 + minutes(ack),
        None if resolved is None else T0 + minutes(resolved),
    )


ALERTS = [
    alert(1, "red", ack=5, resolved=30),
    alert(2, "red", ack=15, resolved=120),
    alert(3, "amber", ack=60, resolved=300),
    alert(4, "amber", ack=None, resolved=180),  # resolved without acknowledgement: ack = 180
    alert(5, "amber", ack=20, resolved=None),  # open
    alert(6, "green"),  # open, never acknowledged
    alert(7, "red", ack=10, resolved=45),
    alert(8, "amber", ack=-5, resolved=50),  # acknowledged "before" it was raised: clock error
    alert(9, "info", ack=120, resolved=120),
]


# --------------------------------------------------------------------------- check-ins


def test_response_rate_per_patient() -> None:
    rates = m.response_rates(CHECKINS)
    assert list(rates) == ["P-001", "P-002", "P-003", "P-004"]
    p1, p2, p3, p4 = rates.values()
    assert (p1.due, p1.responded, p1.completed) == (4, 3, 2)
    assert (p1.rate, p1.completion_rate) == (0.75, 0.5)
    assert (p2.due, p2.rate, p2.completion_rate) == (2, 0.0, 0.0)
    assert (p3.due, p3.rate, p3.completion_rate) == (0, None, None)
    assert (p4.rate, p4.completion_rate) == (1.0, 1.0)


def test_overall_response_rate_is_pooled() -> None:
    overall = m.overall_response_rate(CHECKINS)
    assert overall.patient_id is None
    assert (overall.due, overall.responded, overall.completed) == (9, 6, 5)
    assert overall.rate == pytest.approx(6 / 9)
    assert overall.completion_rate == pytest.approx(5 / 9)
    assert overall.rate != pytest.approx((0.75 + 0.0 + 1.0) / 3)  # not the mean of patients


def test_no_check_ins_at_all() -> None:
    assert m.response_rates([]) == {}
    assert m.overall_response_rate([]).rate is None


def test_unknown_check_in_status_is_refused() -> None:
    with pytest.raises(ValueError, match="check-in status must be one of"):
        m.CheckinRecord("P-001", date(2025, 3, 3), "done")


# --------------------------------------------------------------------------- alerts


def test_alerts_by_level() -> None:
    assert m.alerts_by_level(ALERTS) == {"red": 3, "amber": 4, "green": 1, "info": 1}
    assert m.alerts_by_level([]) == {"red": 0, "amber": 0, "green": 0}


def test_time_to_acknowledge() -> None:
    # valid: 5, 15, 60, 180 (resolution), 20, 10, 120 -> sorted 5 10 15 20 60 120 180
    stats = m.time_to_acknowledge(ALERTS)
    assert (stats.count, stats.pending, stats.excluded) == (7, 1, 1)
    assert stats.median == minutes(20)
    assert stats.p90 == minutes(180)  # rank ceil(0.9 x 7) = 7


def test_time_to_resolve() -> None:
    # 30, 120, 300, 180, 45, 50, 120 -> sorted 30 45 50 120 120 180 300; open: alerts 5 and 6
    stats = m.time_to_resolve(ALERTS)
    assert (stats.count, stats.pending, stats.excluded) == (7, 2, 0)
    assert stats.median == minutes(120)
    assert stats.p90 == minutes(300)


def test_times_by_level() -> None:
    metrics = m.alert_metrics(ALERTS)
    red_ack, red_resolve = metrics.acknowledge_by_level["red"], metrics.resolve_by_level["red"]
    assert (red_ack.median, red_ack.p90) == (minutes(10), minutes(15))  # 5 10 15
    assert (red_resolve.median, red_resolve.p90) == (minutes(45), minutes(120))  # 30 45 120
    amber_ack = metrics.acknowledge_by_level["amber"]
    assert (amber_ack.count, amber_ack.excluded) == (3, 1)
    assert (amber_ack.median, amber_ack.p90) == (minutes(60), minutes(180))  # 20 60 180
    amber_resolve = metrics.resolve_by_level["amber"]
    assert (amber_resolve.median, amber_resolve.pending) == (minutes(180), 1)  # 50 180 300
    green = metrics.acknowledge_by_level["green"]
    assert (green.count, green.median, green.p90, green.pending) == (0, None, None, 1)


def test_alert_metrics_summary() -> None:
    metrics = m.alert_metrics(ALERTS)
    assert (metrics.total, metrics.open) == (9, 2)
    assert metrics.by_level["amber"] == 4
    assert metrics.acknowledge == m.time_to_acknowledge(ALERTS)
    assert metrics.resolve == m.time_to_resolve(ALERTS)


def test_even_number_of_durations_takes_the_mean_of_the_middle_two() -> None:
    alerts = [alert(i, "red", ack=a) for i, a in enumerate([10, 40, 20, 30])]
    stats = m.time_to_acknowledge(alerts)
    assert stats.median == minutes(25)
    assert stats.p90 == minutes(40)  # rank ceil(3.6) = 4


def test_times_work_across_time_zones() -> None:
    created = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    record = m.AlertRecord(1, "P-001", "red", created, T0 + minutes(7), None)
    assert m.time_to_acknowledge([record]).median == minutes(7)


def test_mixing_naive_and_aware_datetimes_is_refused() -> None:
    record = m.AlertRecord(42, "P-001", "red", T0, datetime(2025, 3, 3, 10, 0), None)
    with pytest.raises(ValueError, match="alert 42: mixes time-zone-aware and naive"):
        m.time_to_acknowledge([record])


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        (list(range(1, 11)), 90, 9),
        (list(range(1, 21)), 90, 18),
        (list(range(1, 8)), 90, 7),
        ([5], 90, 5),
        ([3, 1, 2], 50, 2),
        ([1, 2, 3, 4], 50, 2),
        (list(range(1, 11)), 100, 10),
        (list(range(1, 11)), 10, 1),
        (list(range(1, 101)), 90, 90),
    ],
)
def test_nearest_rank_percentile(values: list[int], percent: float, expected: int) -> None:
    assert m.percentile_nearest_rank(values, percent) == expected


def test_percentile_and_median_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="no values"):
        m.percentile_nearest_rank([], 90)
    with pytest.raises(ValueError, match="percent must be in"):
        m.percentile_nearest_rank([1], 0)
    with pytest.raises(ValueError, match="no values"):
        m.median([])


def test_median() -> None:
    assert m.median([3, 1, 2]) == 2
    assert m.median([4, 1, 3, 2]) == 2.5
    assert m.median([minutes(1), minutes(4)]) == timedelta(seconds=150)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (minutes(45), "45 min"),
        (minutes(125.9), "2 h 05 min"),
        (timedelta(days=3, hours=4, minutes=10), "3 d 4 h"),
        (timedelta(0), "0 min"),
    ],
)
def test_format_duration(value: timedelta | None, text: str) -> None:
    assert m.format_duration(value) == text
