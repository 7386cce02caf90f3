"""Throughput of the inbound-SMS webhook against a bare insert endpoint, under gunicorn.

Usage:
    python bench/bench_webhook.py [--database sqlite|postgresql] [--database-url URL]
        [--duration 10] [--connections 16] [--workers 4] [--loadgen auto|wrk|python]

Starts the app under gunicorn on 127.0.0.1 (a free port) with a throwaway database (a SQLite file
in WAL mode, or a fresh PostgreSQL schema dropped at the end), enrols 79 patients through the
real enrolment service (calendars and planned reminders in the outbox, first infusions within the
next two weeks, so a confirmation confirms an event) and an on-call rota, and runs with the
production escalation settings (red flags page the on-call clinician at once), then in the same
run drives

- ``POST /webhooks/twilio/inbound``: correctly signed Twilio requests (X-Twilio-Signature from the
  SDK's RequestValidator against the public URL), each with its own MessageSid, a mix of
  confirmations, symptom reports and red flags from the seeded patients: stored, understood,
  acted on (alerts, pages queued in the outbox), answered in TwiML;
- ``POST /bench/bare``: a bare Flask endpoint that only inserts the same form into the same
  table and commits,

with wrk (Debian package; a Lua script walks pre-signed requests) or, without wrk, a bounded
Python load generator (threads, keep-alive HTTP/1.1, loopback only, stops at the time limit or
the request count). The endpoints alternate (bare, webhook, then webhook, bare: ``--rounds``) so
neither always runs on the warmer or fuller database. Only 2xx answers count as served. Prints
served requests/s and p50/p99 latency of both per round, the totals and the ratio (target, issue
18: the webhook reaches >= 0.6 of the bare endpoint). Then, on the same server and database:

- the red path at a fixed rate (``--red-seconds``, 50 inbound messages/s, the same mix, open
  loop): reply latency by category and, for red flags, end to end (planned send -> emergency
  reply returned and the first on-call page handed to the gateway; target p99 < 2 s);
- a breakdown per message (``--breakdown N``, in-process, bench/inbound_breakdown.py): time, SQL
  statements and commits in each pipeline step (store, load, parse, triage, decide, apply,
  alert and audit writes, the page, its hand-off).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUTH_TOKEN = "bench-auth-token"
PUBLIC_BASE_URL = "https://cadence.bench.example"
INBOUND_PATH = "/webhooks/twilio/inbound"
BARE_PATH = "/bench/bare"
OUR_NUMBER = "+8610655299880"
PATIENTS = 79
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The mix: what patients really send most (confirmations), symptom reports, some red flags.
CONFIRMATIONS = ("1", "好的", "收到", "OK", "确认", "好", "yes 1")
SYMPTOMS = (
    "有点恶心",
    "今天拉了五次",
    "咳嗽两天了",
    "I feel a bit tired",
    "没有发烧，胃口一般",
    "手脚有点麻",
    "吃饭有点噎，只能吃软的",
    "threw up twice today",
)
RED_FLAGS = ("发烧39度", "胸口痛", "吐血了", "fever 38.6", "喝水都咽不下去", "拉了八次还发烧")
MIX = (CONFIRMATIONS, 0.5), (SYMPTOMS, 0.35), (RED_FLAGS, 0.15)
CATEGORIES = {CONFIRMATIONS: "confirmation", SYMPTOMS: "symptom", RED_FLAGS: "red flag"}
RED_RATE = 50.0
"""Inbound messages per second of the red-path run (issue 18: p99 < 2 s at 50 msg/s)."""
RED_TARGET_MS = 2000.0


# -- the app under test --------------------------------------------------------------------------


def make_wsgi_app():
    """The Cadence app plus the bare endpoint (gunicorn: 'bench.bench_webhook:make_wsgi_app()')."""
    from flask import Response, request
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from app import create_app
    from app.extensions import csrf, db
    from app.models import InboundMessage

    app = create_app("development")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _tune_sqlite(app)

    @app.post(BARE_PATH)
    @csrf.exempt
    def bare() -> Response:
        """Insert the form into the inbound table and commit: nothing else."""
        form = request.form
        try:
            db.session.execute(
                insert(InboundMessage).values(
                    sid=form.get("MessageSid", ""),
                    from_number=form.get("From", ""),
                    to_number=form.get("To"),
                    body=form.get("Body", ""),
                    received_at=datetime.now(UTC),
                    status="received",
                )
            )
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
        return Response(
            '<?xml version="1.0" encoding="UTF-8"?><Response />', mimetype="application/xml"
        )

    return app


def _tune_sqlite(app) -> None:
    """WAL with synchronous=NORMAL and a busy timeout on every connection (both endpoints)."""
    from sqlalchemy import event

    from app.extensions import db

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def app_env(database_url: str) -> dict[str, str]:
    """Environment of the gunicorn process (and of the seeding app)."""
    env = dict(os.environ)
    env.update(
        {
            "CADENCE_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "bench-secret-key",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "SMS_BACKEND": "console",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


@contextmanager
def throwaway_database(kind: str, pg_url: str) -> Iterator[str]:
    """A SQLite file (WAL) in a temp folder, or a fresh PostgreSQL schema; removed afterwards."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="cadence-bench-"))
        try:
            yield f"sqlite:///{folder / 'bench.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    from config import normalise_database_url
    from tests.support import postgres_schema

    with postgres_schema(normalise_database_url(pg_url), "bench") as url:
        yield url


def seed(database_url: str) -> list[str]:
    """Create the schema, enrol 79 consenting patients (real service), a round-the-clock rota."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import func, select, text

    from app import create_app
    from app.clock import today_in
    from app.extensions import db
    from app.models import CalendarEvent, OnCallShift, OutboxMessage
    from app.services.schedule.patients import enrol_patient
    from tests.support import cohort_enrolment

    app = create_app("test", SQLALCHEMY_DATABASE_URI=database_url)
    today = today_in(ZoneInfo("Asia/Shanghai"))
    phones = []
    with app.app_context():
        if database_url.startswith("sqlite"):
            with db.engine.connect() as conn:
                conn.execute(text("PRAGMA journal_mode=WAL"))
        db.create_all()
        for i in range(PATIENTS):
            patient = enrol_patient(
                cohort_enrolment(i, f"JSCH-{i:03d}", today),
                actor="bench",
                today=today,
            )
            phones.append(patient.phone_e164)
        for role, phone in (("clinician", "+8613700000001"), ("investigator", "+8613700000002")):
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
        db.session.commit()
        events = db.session.scalar(select(func.count()).select_from(CalendarEvent))
        outbox = db.session.scalar(select(func.count()).select_from(OutboxMessage))
        db.engine.dispose()
    print(f"seeded {PATIENTS} patients: {events} calendar events, {outbox} outbox rows")
    return phones


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(database_url: str, port: int, workers: int, threads: int) -> Iterator[None]:
    """gunicorn serving make_wsgi_app() on 127.0.0.1:port until the block ends."""
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
        "--chdir",
        str(ROOT),
        "bench.bench_webhook:make_wsgi_app()",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=app_env(database_url), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_up(port, process, log)
            yield
        finally:
            _stop(process)
            _report_errors(log)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _report_errors(log) -> None:
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    errors = [i for i, line in enumerate(lines) if "Traceback" in line or "ERROR" in line]
    if errors:
        print(f"  gunicorn logged {len(errors)} error(s); the first:")
        first = errors[0]
        print("    " + "\n    ".join(lines[first : first + 40]))


def _wait_until_up(port: int, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError("gunicorn exited:\n" + log.read().decode(errors="replace")[-3000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start within 60 s")


# -- requests ------------------------------------------------------------------------------------


def pick_body(rng: random.Random) -> str:
    """A message from the mix."""
    return pick(rng)[1]


def pick(rng: random.Random) -> tuple[str, str]:
    """(category, text) of a message from the mix."""
    roll = rng.random()
    for choices, share in MIX:
        if roll < share:
            return CATEGORIES[choices], rng.choice(choices)
        roll -= share
    return "confirmation", rng.choice(CONFIRMATIONS)


def signed_requests(
    count: int, phones: list[str], *, path: str, sign: bool, seed_value: int, prefix: str
) -> list[tuple[str, str]]:
    """(urlencoded body, X-Twilio-Signature) pairs, each with its own MessageSid."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    rng = random.Random(seed_value)
    url = PUBLIC_BASE_URL + path
    out = []
    for i in range(count):
        form = {
            "MessageSid": f"SM{prefix}{i:030x}",
            "AccountSid": "AC" + "b" * 32,
            "From": rng.choice(phones),
            "To": OUR_NUMBER,
            "Body": pick_body(rng),
            "NumMedia": "0",
        }
        signature = validator.compute_signature(url, form) if sign else ""
        out.append((urllib.parse.urlencode(form), signature))
    return out


# -- load generators -----------------------------------------------------------------------------


@dataclass
class Result:
    """What one load run measured: ``rps`` counts only 2xx answers (served)."""

    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def served(self) -> int:
        """Requests answered 2xx."""
        return self.requests - self.errors


def run_wrk(
    name: str,
    port: int,
    path: str,
    requests: list[tuple[str, str]],
    duration: int,
    connections: int,
    threads: int,
) -> Result:
    """Drive one endpoint with wrk; a Lua script walks the pre-signed requests, one each."""
    folder = Path(tempfile.mkdtemp(prefix="cadence-wrk-"))
    try:
        data = folder / "requests.lua"
        with data.open("w", encoding="utf-8") as handle:
            handle.write("return {\n")
            for body, signature in requests:
                handle.write(f"{{{_lua(body)},{_lua(signature)}}},\n")
            handle.write("}\n")
        script = folder / "walk.lua"
        script.write_text(
            WRK_SCRIPT.replace("@DATA@", str(data))
            .replace("@PATH@", path)
            .replace("@THREADS@", str(threads))
        )
        completed = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{duration}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _parse_wrk(name, completed.stdout)


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


WRK_SCRIPT = r"""
local requests = dofile("@DATA@")
local counter = 1
local threads = {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  index = id
  step = @THREADS@
  wrapped = 0
end
function request()
  local r = requests[index]
  index = index + step
  if index > #requests then index = id; wrapped = wrapped + 1 end
  return wrk.format("POST", "@PATH@", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = r[2],
  }, r[1])
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("wrapped") end
  io.write(string.format("WRAPPED %d\n", total))
end
"""


def _ms(value: str, unit: str) -> float:
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    return float(value) * scale


def _parse_wrk(name: str, output: str) -> Result:
    latencies = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", output, re.M))

    def pct(p: str) -> float:
        match = re.match(r"([\d.]+)(\w+)", latencies[p])
        assert match
        return _ms(match.group(1), match.group(2))

    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    wrapped = re.search(r"WRAPPED (\d+)", output)
    assert total and rps, output
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    if wrapped and int(wrapped.group(1)):
        print(f"  note: {name}: the request list wrapped {wrapped.group(1)} time(s) (duplicates)")
    seconds = _ms(total.group(2), total.group(3)) / 1000
    requests = int(total.group(1))
    served_rps = (requests - errors) / seconds if seconds else 0.0
    return Result(name, requests, seconds, served_rps, pct("50"), pct("99"), errors)


def run_python(
    name: str,
    port: int,
    path: str,
    requests: list[tuple[str, str]],
    duration: int,
    connections: int,
) -> Result:
    """Bounded Python load generator: `connections` threads, keep-alive, stop at time or count."""
    lock = threading.Lock()
    cursor = iter(range(len(requests)))
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration

    def worker() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        while time.monotonic() < stop_at:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            body, signature = requests[index]
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            }
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body.encode(), headers=headers)
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 300:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    started = time.monotonic()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=duration + 60)
    seconds = time.monotonic() - started
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Result(
        name,
        len(latencies),
        seconds,
        (len(latencies) - errors) / seconds,
        quantiles[49] * 1000,
        quantiles[98] * 1000,
        errors,
    )


# -- the red path at a fixed rate ------------------------------------------------------------------


def run_rate(
    port: int, phones: list[str], rate: float, seconds: int, connections: int = 64
) -> list[tuple[str, str, float, float]]:
    """Open loop: signed webhook requests at ``rate`` per second (the mix) for ``seconds``.

    Returns (sid, category, planned wall-clock send time, latency s from the planned time: a
    request that waits for a free connection counts its wait). -1 latency: not a 2xx answer.
    """
    from concurrent.futures import ThreadPoolExecutor

    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    rng = random.Random(11)
    local = threading.local()
    results: list[tuple[str, str, float, float]] = []
    lock = threading.Lock()

    def send(sid: str, category: str, body: str, planned: float, wall: float) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(
                PUBLIC_BASE_URL + INBOUND_PATH, dict(urllib.parse.parse_qsl(body))
            ),
        }
        try:
            local.conn.request("POST", INBOUND_PATH, body=body.encode(), headers=headers)
            response = local.conn.getresponse()
            response.read()
            ok = 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            local.conn.close()
            del local.conn
            ok = False
        latency = time.perf_counter() - planned if ok else -1.0
        with lock:
            results.append((sid, category, wall, latency))

    total = int(rate * seconds)
    with ThreadPoolExecutor(max_workers=connections) as pool:
        start, wall_start = time.perf_counter() + 0.2, time.time() + 0.2
        for i in range(total):
            category, text = pick(rng)
            sid = f"SMr{i:030x}"
            form = {"MessageSid": sid, "AccountSid": "AC" + "b" * 32, "From": rng.choice(phones),
                    "To": OUR_NUMBER, "Body": text, "NumMedia": "0"}  # fmt: skip
            planned = start + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = urllib.parse.urlencode(form)
            pool.submit(send, sid, category, body, planned, wall_start + i / rate)
    return results


def page_handovers(database_url: str, sids: list[str]) -> dict[str, float]:
    """{sid: wall-clock epoch when the first on-call page for its red alert reached the gateway}."""
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import Alert, InboundMessage, OutboxMessage

    app = create_app("test", SQLALCHEMY_DATABASE_URI=database_url)
    with app.app_context():
        alerts = dict(
            db.session.execute(
                select(Alert.id, InboundMessage.sid)
                .join(InboundMessage, InboundMessage.id == Alert.inbound_message_id)
                .where(Alert.level == "red", InboundMessage.sid.in_(sids))
            ).all()
        )
        pages = db.session.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.sent_at).where(
                OutboxMessage.kind == "page", OutboxMessage.sent_at.is_not(None)
            )
        ).all()
        db.engine.dispose()
    handed: dict[str, float] = {}
    for key, sent_at in pages:
        match = re.search(r"alert:(\d+):0", key or "")
        sid = alerts.get(int(match.group(1))) if match else None
        if sid is not None:
            moment = sent_at.replace(tzinfo=sent_at.tzinfo or UTC).timestamp()
            handed[sid] = min(handed.get(sid, moment), moment)
    return handed


def red_path(port: int, url: str, phones: list[str], seconds: int) -> list[str]:
    """Drive RED_RATE msg/s; print reply latency by category and the red path end to end."""
    sent = run_rate(port, phones, RED_RATE, seconds)
    time.sleep(3)  # let the page threads hand the last pages over
    reds = [r for r in sent if r[1] == "red flag"]
    handed = page_handovers(url, [sid for sid, *_ in reds])
    lines = [f"red path: {len(sent)} webhook requests at {RED_RATE:.0f}/s for {seconds} s (mix)"]
    for category in ("confirmation", "symptom", "red flag"):
        ok = sorted(r[3] for r in sent if r[1] == category and r[3] >= 0)
        failed = sum(1 for r in sent if r[1] == category and r[3] < 0)
        if ok:
            lines.append(
                f"  reply {category:<13} n={len(ok):<5} p50 {_pct(ok, 50) * 1000:7.1f} ms"
                f"  p99 {_pct(ok, 99) * 1000:7.1f} ms  failed {failed}"
            )
    ends = []
    for sid, _, wall, latency in reds:
        if latency < 0 or sid not in handed:
            ends.append(float("inf"))
            continue
        ends.append(max(latency, handed[sid] - wall))
    ends.sort()
    missing = sum(1 for e in ends if e == float("inf"))
    if ends:
        p99 = _pct(ends, 99) * 1000
        verdict = "met" if p99 < RED_TARGET_MS else "NOT met"
        lines.append(
            f"  red end to end (emergency reply returned and page handed to the gateway): "
            f"n={len(ends)} p50 {_pct(ends, 50) * 1000:.1f} ms p99 {p99:.1f} ms, "
            f"{missing} without a page or reply (target p99 < {RED_TARGET_MS:.0f} ms: {verdict})"
        )
    return lines


def _pct(values: list[float], p: int) -> float:
    """The p-th percentile of sorted values (nearest rank)."""
    index = min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))
    return values[index]


def breakdown(database_url: str, phones: list[str], count: int) -> list[str]:
    """Per message: time, SQL statements and commits by pipeline step (bench/inbound_breakdown)."""
    from bench import inbound_breakdown

    os.environ.update(app_env(database_url))
    from app import create_app

    app = create_app("development", SQLALCHEMY_DATABASE_URI=database_url)
    if database_url.startswith("sqlite"):
        _tune_sqlite(app)
    rng = random.Random(5)
    forms = []
    for i in range(count + 30):  # the first 30 warm up, unmeasured
        category, text = pick(rng)
        form = {"MessageSid": f"SMk{i:030x}", "From": rng.choice(phones), "To": OUR_NUMBER,
                "Body": text, "NumMedia": "0"}  # fmt: skip
        forms.append((category, form))
    tallies = inbound_breakdown.run(app, forms)
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()
    return inbound_breakdown.report(tallies)


# -- main ----------------------------------------------------------------------------------------


def count_rows(database_url: str) -> dict[str, int]:
    """Rows written by the run (inbound by status, alerts, pages queued)."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import Alert, InboundMessage, OutboxMessage

    app = create_app("test", SQLALCHEMY_DATABASE_URI=database_url)
    with app.app_context():
        by_status = dict(
            db.session.execute(
                select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
            ).all()
        )
        alerts = db.session.scalar(select(func.count()).select_from(Alert)) or 0
        pages = (
            db.session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "page")
            )
            or 0
        )
        db.engine.dispose()
    return {
        **{f"inbound {k}": int(v) for k, v in by_status.items()},
        "alerts": int(alerts),
        "pages": int(pages),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG),
        help="PostgreSQL server to make a throwaway schema in",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint and round")
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds; the endpoints' order alternates"
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--requests", type=int, default=60000, help="pre-signed requests per run")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--breakdown", type=int, default=300, help="messages profiled in-process (0: skip)"
    )
    parser.add_argument(
        "--red-seconds", type=int, default=10, help="seconds of the 50 msg/s red-path run (0: skip)"
    )
    args = parser.parse_args(argv)
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    print(
        f"database {args.database}, gunicorn {args.workers} worker(s) x {args.threads} "
        f"thread(s), {args.connections} connections, {args.duration} s per endpoint, "
        f"load generator {loadgen}"
    )
    with throwaway_database(args.database, args.database_url) as url:
        phones = seed(url)
        port = free_port()
        endpoints = {
            "bare insert": (BARE_PATH, False, "b"),
            "inbound webhook": (INBOUND_PATH, True, "f"),
        }
        with gunicorn(url, port, args.workers, args.threads):
            for path, sign, prefix in endpoints.values():
                warm = signed_requests(
                    300, phones, path=path, sign=sign, seed_value=2, prefix="w" + prefix
                )
                run_python("warm-up", port, path, warm, 5, 4)
            results: list[tuple[int, Result]] = []
            for round_no in range(args.rounds):
                order = list(endpoints.items())
                if round_no % 2:
                    order.reverse()
                for name, (path, sign, prefix) in order:
                    reqs = signed_requests(
                        args.requests,
                        phones,
                        path=path,
                        sign=sign,
                        seed_value=1 + round_no,
                        prefix=f"{prefix}{round_no}",
                    )
                    if loadgen == "wrk":
                        threads = min(4, args.connections)
                        result = run_wrk(
                            name, port, path, reqs, args.duration, args.connections, threads
                        )
                    else:
                        result = run_python(name, port, path, reqs, args.duration, args.connections)
                    results.append((round_no, result))
            red_lines = red_path(port, url, phones, args.red_seconds) if args.red_seconds else []
        rows = count_rows(url)
        profile = breakdown(url, phones, args.breakdown) if args.breakdown else []
    print(
        f"\n{'round':<6}{'endpoint':<18}{'requests':>10}{'served/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'non-2xx':>8}"
    )
    for round_no, r in results:
        print(
            f"{round_no:<6}{r.name:<18}{r.requests:>10}{r.rps:>10.1f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}{r.errors:>8}"
        )
    totals = {}
    for name in endpoints:
        mine = [r for _, r in results if r.name == name]
        totals[name] = sum(r.served for r in mine) / sum(r.seconds for r in mine)
        print(f"{name}: {totals[name]:.1f} served/s over {len(mine)} round(s)")
    bare, full = totals["bare insert"], totals["inbound webhook"]
    ratio = full / bare if bare else 0.0
    print(
        "\nmeasured: the signed inbound webhook (store, understand, act, answer) against "
        "a bare insert of the same form into the same table, same server, alternating order"
    )
    print(
        f"ratio webhook / bare: {ratio:.2f} (target >= 0.60: {'met' if ratio >= 0.6 else 'NOT met'})"
    )
    print("rows: " + ", ".join(f"{k} {v}" for k, v in sorted(rows.items())))
    for line in [*red_lines, *profile]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
