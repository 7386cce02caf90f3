"""Soak: two web processes and three jobs processes on one PostgreSQL, inbound and outbound SMS
for a bounded time; prints the figures and every broken promise.

Usage:
    python bench/soak.py [--duration 300] [--rate 10] [--patients 200] [--enrolled 20]
        [--wave 2000] [--web 2] [--jobs 3] [--drain 60]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

What runs (the same as tests/integration/test_soak.py, which runs it for ~30 s):
- a throwaway PostgreSQL schema; ``--patients`` patients, ``--enrolled`` of them through the
  enrolment service (calendars, reminders in the outbox) and the rest copies of those with their
  own numbers; a round-the-clock on-call rota (clinician, investigator);
- the fake Twilio (tests/fakes/fake_twilio.py) on loopback, recording when it created each SMS;
- ``--web`` gunicorn servers (one sync worker each, as separate hosts would be) and ``--jobs``
  ``python -m jobs`` processes (dispatch every 2 s, escalation 5 s, check-ins 10 s, reconcile
  5 s), every child's clock ticking from the same instant (CADENCE_CLOCK_AT, a Wednesday 09:00 in
  Nanjing);
- a reminder wave: up to ``--wave`` of the patients' planned reminders are moved to fall due
  over the run (what a morning of reminders looks like to the dispatcher);
- inbound at ``--rate`` signed Twilio webhooks a second, spread over the web servers: check-in
  answers and confirmations, symptoms, red flags in the patient's and in a family member's
  words (zh and en), garbled text, STOP and later START from some patients.

Then it waits for the outbox to drain (``--drain`` seconds at most), stops every process with
SIGTERM and checks: every posted message stored and processed (nothing lost), no SMS created
twice at the provider (fake log against the outbox), every red answered with the emergency reply
and paged to the on-call clinician, at most one alert per message, no SMS to a number after its
STOP was answered (2 s grace for a send already under way) until its START, no traceback in
any process's log. Figures: messages in and out, rates, webhook and red latencies (p50/p99).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.fake_twilio import FakeMessage, FakeTwilio  # noqa: E402
from tests.integration.sms_support import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    subprocess_env,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Every process's clock starts here: a Wednesday morning at the clinic (outside quiet hours).
SOAK_AT = datetime(2026, 3, 4, 9, 0, tzinfo=SHANGHAI)
PUBLIC_BASE_URL = "https://cadence.soak.example"
INBOUND_PATH = "/webhooks/twilio/inbound"
OUR_NUMBER = "+8610655299880"
ON_CALL = {"clinician": "+8613700000001", "investigator": "+8613700000002"}
OPT_OUT_GRACE = 2.0  # seconds: a send claimed just before the STOP was answered may still land
APP = "app:create_app()"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# What patients send, by category. Reds: each must be triaged red whoever writes it.
MIX: dict[str, tuple[float, tuple[str, ...]]] = {
    "confirm": (0.30, ("1", "好的", "收到", "确认", "OK", "yes")),
    "checkin": (0.10, ("F36.8 HB0 D0", "d1s1f0", "没有不舒服", "fine today, no symptoms")),
    "symptom": (
        0.20,
        ("有点恶心", "今天拉了三次", "咳嗽两天了", "I feel a bit tired", "手脚有点麻"),
    ),
    "red_patient": (
        0.08,
        ("发烧39度", "胸口痛", "吐血了", "fever 38.6", "喝水都咽不下去", "I vomited blood"),
    ),
    "red_family": (
        0.07,
        ("我爸发烧39度", "我妈吐血了", "我爸拉了八次还发烧", "my father has a fever of 39.2"),
    ),
    "garbled": (0.10, ("asdfgh", "？？？", "#*1x", "啊啊啊啊", "..", "zzz qqq")),
}
RED = ("red_patient", "red_family")


@dataclass
class Posted:
    """One inbound webhook the load generator sent, and what came back."""

    at: float  # seconds from the start of the load
    sid: str
    sender: str
    body: str
    category: str
    web: int = 0
    status: int = 0
    reply: str = ""
    sent_mono: float = 0.0
    answered_mono: float = 0.0

    @property
    def latency(self) -> float:
        """Seconds from sending the request to its answer."""
        return self.answered_mono - self.sent_mono


@dataclass
class SoakReport:
    """What a soak measured and which promises it found broken (``problems``)."""

    seconds: float = 0.0
    load_seconds: float = 0.0
    posted: list[Posted] = field(default_factory=list)
    outbound_by_kind: Counter[str] = field(default_factory=Counter)
    outbound_total: int = 0
    red_page_latencies: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The figures, one per line."""
        served = [p for p in self.posted if 200 <= p.status < 300]
        reds = [p for p in served if p.category in RED]
        out = [
            f"duration {self.seconds:.1f} s: load {self.load_seconds:.1f} s, then the outbox drained",
            f"inbound posted {len(self.posted)}, answered 2xx {len(served)} "
            f"({len(served) / max(self.load_seconds, 0.001):.1f}/s over the load)",
            "inbound by category: "
            + ", ".join(f"{k} {v}" for k, v in sorted(Counter(p.category for p in served).items())),
            f"outbound created at the provider {self.outbound_total} "
            f"({self.outbound_total / self.seconds:.1f}/s): "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.outbound_by_kind.items())),
            "webhook latency " + _quantiles([p.latency for p in served]),
            f"red reply latency (received -> emergency reply returned, {len(reds)} reds) "
            + _quantiles([p.latency for p in reds]),
            "red page hand-off (received -> page created at the provider) "
            + _quantiles(self.red_page_latencies),
            "rows: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
            f"errors in process logs: {len(self.log_errors)}",
        ]
        return out


def _quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)}"
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms (n={len(values)})"


class TimedFakeTwilio(FakeTwilio):
    """The fake Twilio, noting when (monotonic) it created each message."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.created_mono: dict[str, float] = {}

    def _store(self, form: dict[str, str]) -> FakeMessage:
        message = super()._store(form)
        self.created_mono[message.sid] = time.monotonic()
        return message


# -- data ----------------------------------------------------------------------------------------


def seed(patients: int, *, wave: int, duration: float, enrolled: int = 20) -> list[str]:
    """``patients`` patients: ``enrolled`` through the enrolment service, the rest copies of them
    (see clone_patients); the rota; up to ``wave`` planned reminders moved to fall due over the
    run. In the caller's app context at SOAK_AT; returns the phone numbers."""
    from sqlalchemy import select

    from app.clock import today_in, utcnow
    from app.extensions import db
    from app.models import OnCallShift, OutboxMessage
    from app.services.schedule.patients import enrol_patient
    from tests.support import cohort_enrolment

    today = today_in(SHANGHAI)
    phones = []
    templates = []
    for i in range(min(enrolled, patients)):
        patient = enrol_patient(
            cohort_enrolment(i, f"SOAK-{i:04d}", today),
            actor="soak",
            today=today,
        )
        phones.append(patient.phone_e164)
        templates.append(patient.id)
    phones += clone_patients(templates, range(len(templates), patients))
    for role, phone in ON_CALL.items():
        db.session.add(
            OnCallShift(
                role=role,
                name=role,
                phone_e164=phone,
                weekdays="mon,tue,wed,thu,fri,sat,sun",
                start_time=dtime(8, 0),
                end_time=dtime(8, 0),
                locale="zh",
            )
        )
    now = utcnow()
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == "planned", OutboxMessage.kind == "reminder")
        .order_by(OutboxMessage.send_after, OutboxMessage.id)
        .limit(wave)
    ).all()
    for n, row in enumerate(rows):
        row.send_after = row.due_at = now + timedelta(seconds=duration * n / max(len(rows), 1))
    db.session.commit()
    return phones


def clone_patients(templates: list[int], numbers: range) -> list[str]:
    """Copies of enrolled patients (patient, contacts, consents, calendar, outbox rows), each with
    its own study id and phone number, copied inside PostgreSQL (INSERT .. SELECT); no commit.
    Enrolment plans the outbox one flushed row at a time (about 1.3 s a patient on a busy 2-core
    machine), too slow to enrol hundreds here."""
    from sqlalchemy import insert, literal, select

    from app.extensions import db
    from app.models import CalendarEvent, Contact, ContactConsent, OutboxMessage, Patient

    conn = db.session.connection()

    def copy(model: type, where: Any, **replace: Any) -> None:
        table = model.__table__  # type: ignore[attr-defined]
        names = [c.name for c in table.columns if c.name != "id"]
        columns = [replace[n].label(n) if n in replace else table.c[n] for n in names]
        conn.execute(insert(table).from_select(names, select(*columns).where(where)))

    phones = []
    for n in numbers:
        template = templates[n % len(templates)]
        phone = f"+86139{n:08d}"
        old_phone = select(Patient.phone_e164).where(Patient.id == template).scalar_subquery()
        copy(
            Patient,
            Patient.id == template,
            study_id=literal(f"SOAK-{n:04d}"),
            phone_e164=literal(phone),
        )
        patient_id = conn.scalar(select(Patient.id).where(Patient.study_id == f"SOAK-{n:04d}"))
        same = Contact.phone_e164 == old_phone
        copy(
            Contact,
            (Contact.patient_id == template) & same,
            patient_id=literal(patient_id),
            phone_e164=literal(phone),
        )
        copy(Contact, (Contact.patient_id == template) & ~same, patient_id=literal(patient_id))
        template_contacts = select(Contact.id).where(Contact.patient_id == template)
        copy(
            ContactConsent,
            ContactConsent.contact_id.in_(template_contacts),
            contact_id=twin(ContactConsent.contact_id, patient_id),
        )
        copy(CalendarEvent, CalendarEvent.patient_id == template, patient_id=literal(patient_id))
        copy(
            OutboxMessage,
            OutboxMessage.patient_id == template,
            patient_id=literal(patient_id),
            contact_id=twin(OutboxMessage.contact_id, patient_id),
        )
        phones.append(phone)
    return phones


def twin(column: Any, patient_id: int) -> Any:
    """The contact of copy ``patient_id`` that matches the template's contact ``column``."""
    from sqlalchemy import and_, select

    from app.models import Contact

    new, old = Contact.__table__.alias("new_contact"), Contact.__table__.alias("old_contact")
    same = and_(new.c.relation == old.c.relation, new.c.position == old.c.position)
    return (
        select(new.c.id)
        .select_from(new.join(old, same))
        .where(new.c.patient_id == patient_id, old.c.id == column)
        .scalar_subquery()
    )


def plan_load(phones: list[str], *, duration: float, rate: float, seed_value: int) -> list[Posted]:
    """The inbound messages, each at its second: the mix, plus STOP (and for half START) from
    one patient in ten (who send nothing else)."""
    rng = random.Random(seed_value)
    stoppers = phones[::10]
    talkers = [p for p in phones if p not in set(stoppers)]
    categories = list(MIX)
    weights = [MIX[c][0] for c in categories]
    plan = []
    for n in range(int(duration * rate)):
        category = rng.choices(categories, weights)[0]
        body = rng.choice(MIX[category][1])
        plan.append(Posted(n / rate, "", rng.choice(talkers), body, category))
    for k, phone in enumerate(stoppers):
        stop_at = rng.uniform(0.05, 0.45) * duration
        plan.append(Posted(stop_at, "", phone, ("STOP", "退订")[k % 2], "stop"))
        if k % 2:
            plan.append(Posted(rng.uniform(0.6, 0.9) * duration, "", phone, "START", "start"))
    plan.sort(key=lambda p: p.at)
    for n, posted in enumerate(plan):
        posted.sid = f"SMsoak{seed_value:04d}{n:026d}"
    return plan


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(database_url: str, fake: FakeTwilio) -> dict[str, str]:
    """Settings every child shares: the fake Twilio, the public URL, short job intervals."""
    return subprocess_env(
        database_url,
        fake,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        TWILIO_FROM_NUMBER=OUR_NUMBER,
        SMS_RESPECT_QUIET_HOURS="1",
        JOBS_DISPATCH_SECONDS="2",
        ESCALATION_JOB_SECONDS="5",
        CHECKIN_JOB_SECONDS="10",
        JOBS_RECONCILE_SECONDS="5",
        JOBS_HEARTBEAT_SECONDS="5",
        LOG_LEVEL="WARNING",
    )


@dataclass
class Child:
    """A started process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]


def start(name: str, argv: list[str], env: dict[str, str]) -> Child:
    """Start a child in the project root, output to a temporary file."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by collect_logs after the run
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Child(name, process, log)


def wait_until_up(port: int, child: Child, timeout: float = 90) -> None:
    """Until GET /livez answers 200 (or the child died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited:\n{read_log(child)[-3000:]}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/livez")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} did not start within {timeout:.0f} s")


def stop_all(children: list[Child]) -> None:
    """SIGTERM to every child, then wait (kill after 60 s)."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=10)


def read_log(child: Child) -> str:
    """Everything the child printed."""
    child.log.seek(0)
    return child.log.read().decode(errors="replace")


@contextlib.contextmanager
def running(
    database_url: str, fake: FakeTwilio, web: int, jobs: int
) -> Iterator[tuple[list[int], list[Child]]]:
    """``web`` gunicorn servers and ``jobs`` jobs processes; yields the web ports and the
    children (stopped when the block ends; their logs stay readable)."""
    env = child_env(database_url, fake)
    ports = [free_port() for _ in range(web)]
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    children = [
        start(
            f"web{n}",
            [gunicorn, "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level=warning", APP],
            env,
        )
        for n, port in enumerate(ports)
    ]
    children += [start(f"jobs{n}", [sys.executable, "-m", "jobs"], env) for n in range(jobs)]
    try:
        for port, child in zip(ports, children, strict=False):
            wait_until_up(port, child)
        yield ports, children
    finally:
        stop_all(children)


# -- load ----------------------------------------------------------------------------------------


def drive(plan: list[Posted], ports: list[int], *, connections: int = 8) -> None:
    """Post every planned message at its second (from now), signed, round-robin over ports."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    url = PUBLIC_BASE_URL + INBOUND_PATH
    cursor = iter(range(len(plan)))
    lock = threading.Lock()
    began = time.monotonic()

    def worker() -> None:
        conns: dict[int, http.client.HTTPConnection] = {}
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            posted = plan[index]
            posted.web = index % len(ports)
            form = {
                "MessageSid": posted.sid,
                "AccountSid": ACCOUNT_SID,
                "From": posted.sender,
                "To": OUR_NUMBER,
                "Body": posted.body,
                "NumMedia": "0",
            }
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": validator.compute_signature(url, form),
            }
            delay = began + posted.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            port = ports[posted.web]
            conn = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conns[port] = conn
            posted.sent_mono = time.monotonic()
            try:
                conn.request("POST", INBOUND_PATH, urllib.parse.urlencode(form), headers)
                response = conn.getresponse()
                posted.reply = response.read().decode("utf-8", "replace")
                posted.status = response.status
            except (OSError, http.client.HTTPException) as exc:
                posted.reply = f"{type(exc).__name__}: {exc}"
                conn.close()
                conns.pop(port, None)
            posted.answered_mono = time.monotonic()
        for conn in conns.values():
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drain(deadline_seconds: float, children_started: float) -> None:
    """Wait until nothing is due in the outbox (or the deadline); caller's app context.
    ``children_started`` (monotonic): when the children's clocks started at SOAK_AT."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import OutboxMessage

    until = time.monotonic() + deadline_seconds
    while time.monotonic() < until:
        elapsed = timedelta(seconds=time.monotonic() - children_started)
        children_now = SOAK_AT.astimezone(UTC) + elapsed
        db.session.expire_all()
        busy = db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.status.in_(("claimed", "sending", "unknown"))
                | ((OutboxMessage.status == "planned") & (OutboxMessage.send_after <= children_now))
            )
        )
        db.session.rollback()
        if not busy:
            return
        time.sleep(1)


# -- checks --------------------------------------------------------------------------------------


def check(report: SoakReport, fake: TimedFakeTwilio) -> None:
    """Fill the counts and the problems from the database and the fake's log."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Alert, InboundMessage, OutboxMessage

    db.session.expire_all()
    posted = {p.sid: p for p in report.posted}
    inbound = {r.sid: r for r in db.session.scalars(select(InboundMessage))}
    outbox = list(db.session.scalars(select(OutboxMessage)))
    alerts = list(db.session.scalars(select(Alert)))
    messages = fake.messages
    report.outbound_total = len(messages)
    by_sid = {m.provider_id: m for m in outbox if m.provider_id}
    report.outbound_by_kind = Counter(
        by_sid[m.sid].kind if m.sid in by_sid else "unknown" for m in messages
    )
    report.counts = {
        "inbound stored": len(inbound),
        "alerts": len(alerts),
        "outbox rows": len(outbox),
        "outbox still due": sum(o.status in ("planned", "claimed", "unknown") for o in outbox),
    }
    _check_inbound(report, posted, inbound)
    _check_outbound(report, fake, outbox)
    _check_reds(report, posted, inbound, alerts, outbox, fake)
    _check_opt_outs(report, fake)
    per_message = db.session.execute(
        select(Alert.inbound_message_id, func.count())
        .where(Alert.inbound_message_id.is_not(None))
        .group_by(Alert.inbound_message_id)
        .having(func.count() > 1)
    ).all()
    if per_message:
        report.problems.append(f"{len(per_message)} message(s) raised more than one alert")
    db.session.rollback()


def _check_inbound(report: SoakReport, posted: dict[str, Posted], inbound: dict) -> None:
    failed = [p for p in posted.values() if not 200 <= p.status < 300]
    if failed:
        report.problems.append(
            f"{len(failed)} webhook(s) not answered 2xx, e.g. {failed[0].status} {failed[0].reply[:200]}"
        )
    lost = [sid for sid in posted if sid not in inbound]
    if lost:
        report.problems.append(f"{len(lost)} posted message(s) not stored (lost)")
    unprocessed = [r for r in inbound.values() if r.status != "processed"]
    if unprocessed:
        report.problems.append(
            f"{len(unprocessed)} stored message(s) not processed: "
            + ", ".join(f"{r.sid} {r.status} {r.error}" for r in unprocessed[:3])
        )
    confirmed_red = [
        r for sid, r in inbound.items() if sid in posted and posted[sid].category == "confirm"
    ]
    wrongly = [r for r in confirmed_red if r.priority == "red"]
    if wrongly:
        report.problems.append(f"{len(wrongly)} confirmation(s) triaged red (issue 16)")


def _check_outbound(report: SoakReport, fake: TimedFakeTwilio, outbox: list) -> None:
    messages = fake.messages
    sids = Counter(m.sid for m in messages)
    sent_rows = [o for o in outbox if o.provider_id]
    if len(messages) != len(sent_rows) or set(sids) != {o.provider_id for o in sent_rows}:
        report.problems.append(
            f"provider created {len(messages)} SMS but the outbox records {len(sent_rows)} sent"
        )
    doubles = [o for o in outbox if o.provider_id and sids[o.provider_id] != 1]
    if doubles:
        report.problems.append(f"{len(doubles)} outbox row(s) sent more than once")
    creates = len(fake.create_requests())
    if creates != len(messages):
        report.problems.append(f"{creates} create requests for {len(messages)} messages")


def _check_reds(
    report: SoakReport,
    posted: dict[str, Posted],
    inbound: dict,
    alerts: list,
    outbox: list,
    fake: TimedFakeTwilio,
) -> None:
    alert_by_inbound = {a.inbound_message_id: a for a in alerts if a.inbound_message_id}
    pages = [o for o in outbox if o.kind == "page"]
    for p in (p for p in posted.values() if p.category in RED and p.sid in inbound):
        row = inbound[p.sid]
        if row.priority != "red":
            report.problems.append(f"red not triaged red: {p.body!r} -> {row.priority}")
            continue
        if not row.reply_body or row.reply_body not in _unescape(p.reply) or "120" not in p.reply:
            report.problems.append(f"red without the emergency reply: {p.body!r} -> {p.reply!r}")
        alert = alert_by_inbound.get(row.id)
        mine = [
            o
            for o in pages
            if alert is not None
            and o.dedupe_key.startswith(f"page:alert:{alert.id}:")
            and o.recipient == ON_CALL["clinician"]
        ]
        if alert is None or len(mine) != 1 or not mine[0].provider_id:
            report.problems.append(f"red {p.sid} not paged exactly once to the on-call clinician")
            continue
        created = fake.created_mono.get(mine[0].provider_id)
        if created is not None:
            report.red_page_latencies.append(created - p.sent_mono)


def _unescape(xml: str) -> str:
    from xml.sax.saxutils import unescape

    return unescape(xml, {"&quot;": '"', "&apos;": "'"})


def _check_opt_outs(report: SoakReport, fake: TimedFakeTwilio) -> None:
    windows: dict[str, list[float]] = {}
    for p in report.posted:
        if p.category == "stop":
            windows[p.sender] = [p.answered_mono + OPT_OUT_GRACE, float("inf")]
        elif p.category == "start" and p.sender in windows:
            windows[p.sender][1] = p.sent_mono
    late = [
        m
        for m in fake.messages
        if m.to in windows and windows[m.to][0] < fake.created_mono.get(m.sid, 0) < windows[m.to][1]
    ]
    if late:
        report.problems.append(f"{len(late)} SMS sent to a number after its STOP was answered")


def collect_logs(report: SoakReport, children: list[Child]) -> None:
    """Every traceback or ERROR line any child printed."""
    for child in children:
        for line in read_log(child).splitlines():
            if "Traceback" in line or " ERROR " in line or "CRITICAL" in line:
                report.log_errors.append(f"{child.name}: {line[:300]}")
        child.log.close()
    if report.log_errors:
        report.problems.append(
            f"{len(report.log_errors)} error line(s) in process logs, first: {report.log_errors[0]}"
        )


# -- the whole run -------------------------------------------------------------------------------


def run_soak(
    database_url: str,
    *,
    duration: float,
    rate: float,
    web: int = 2,
    jobs: int = 3,
    drain_seconds: float = 30,
    phones: list[str],
    seed_value: int = 1,
) -> SoakReport:
    """Start the processes, drive the load, drain, stop, check; in the caller's app context
    (seeded already, the app clock at SOAK_AT)."""
    report = SoakReport()
    plan = plan_load(phones, duration=duration, rate=rate, seed_value=seed_value)
    report.posted = plan
    with TimedFakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as fake:
        began = time.monotonic()
        with running(database_url, fake, web, jobs) as (ports, children):
            loaded = time.monotonic()
            drive(plan, ports)
            report.load_seconds = time.monotonic() - loaded
            drain(drain_seconds, began)
            report.seconds = time.monotonic() - loaded
        collect_logs(report, children)
        check(report, fake)
    return report


def main(argv: list[str] | None = None) -> int:
    """Seed a throwaway schema, run the soak, print the figures and the problems."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of inbound load")
    parser.add_argument("--rate", type=float, default=10, help="inbound messages a second")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument(
        "--enrolled", type=int, default=20, help="of them enrolled by the service; the rest copies"
    )
    parser.add_argument("--wave", type=int, default=2000, help="reminders falling due in the run")
    parser.add_argument("--web", type=int, default=2, help="web processes (gunicorn, 1 worker)")
    parser.add_argument("--jobs", type=int, default=3, help="python -m jobs processes")
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait for the outbox")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG))
    args = parser.parse_args(argv)

    from app import create_app
    from app.clock import FrozenClock, using_clock
    from app.extensions import db
    from config import normalise_database_url
    from tests.support import postgres_schema

    print(
        f"soak: {args.web} web + {args.jobs} jobs processes, {args.patients} patients, "
        f"{args.rate:g} inbound/s for {args.duration:g} s, {os.cpu_count()} CPU(s)"
    )
    with (
        postgres_schema(normalise_database_url(args.database_url), "soak") as url,
        using_clock(FrozenClock(SOAK_AT)),
    ):
        app = create_app("test", SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            db.create_all()
            seeding = time.monotonic()
            phones = seed(
                args.patients, wave=args.wave, duration=args.duration, enrolled=args.enrolled
            )
            print(f"seeded in {time.monotonic() - seeding:.1f} s")
            report = run_soak(
                url,
                duration=args.duration,
                rate=args.rate,
                web=args.web,
                jobs=args.jobs,
                drain_seconds=args.drain,
                phones=phones,
            )
            db.session.remove()
            db.engine.dispose()
    for line in report.lines():
        print(line)
    for problem in report.problems:
        print("PROBLEM:", problem)
    print(
        "result:",
        "no problem found" if not report.problems else f"{len(report.problems)} problem(s)",
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
