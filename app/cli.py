"""Flask CLI commands: thin wrappers over the services (`flask --app app --help`)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app import clock
from app.cli_contacts import contacts_cli
from app.cli_sms import sms_cli
from app.cli_triage import register_triage_commands
from app.cli_users import register_user_commands
from app.configuration import ConfigurationError
from app.domain import calendar as cal
from app.domain.calendar import PlannedEvent
from app.domain.dates import DateInputError
from app.domain.patients import EnrolmentError, EnrolmentRequest
from app.domain.protocol import Protocol, ProtocolError, load_protocol
from app.services.demo import (
    ensure_demo_rota,
    ensure_demo_staff,
    load_demo_checkins,
    load_demo_data,
)
from app.services.schedule.patients import enrol_patient, list_patients, mask_phone
from app.services.shared.date_inputs import parse_date_input
from app.services.shared.protocols import clinic_working_days, current_protocol

calendar_cli = AppGroup("calendar", help="Preview trial calendars.")
patients_cli = AppGroup("patients", help="Enrol and list patients.")

CLI_ACTOR = "cli"


def register_commands(app: Flask) -> None:
    """Attach every command group to the app."""
    app.cli.add_command(calendar_cli)
    app.cli.add_command(patients_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(sms_cli)
    app.cli.add_command(contacts_cli)
    register_user_commands(app)
    register_triage_commands(app)


def _iso_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_date_input(value, what=param.name or "date")
    except DateInputError as exc:
        raise click.BadParameter(str(exc)) from exc


def _delays(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[tuple[int, int]]:
    parsed = []
    for value in values:
        cycle, sep, days = value.partition(":")
        if not sep or not cycle.strip().isdigit() or not days.strip().lstrip("-").isdigit():
            raise click.BadParameter(f"expected CYCLE:DAYS such as 2:7, got {value!r}")
        parsed.append((int(cycle), int(days)))
    return parsed


def _today() -> date:
    return clock.today_in(ZoneInfo(current_app.config["CLINIC_TIMEZONE"]))


@calendar_cli.command("preview")
@click.option("--pd1", help="PD-1 inhibitor choice (e.g. sintilimab, camrelizumab).")
@click.option("--chemo", help="Chemotherapy choice (e.g. paclitaxel, docetaxel, irinotecan).")
@click.option("--choice", "extra", multiple=True, help="Any other protocol choice as KEY=VALUE.")
@click.option("--start", required=True, callback=_iso_date, help="First infusion, YYYY-MM-DD.")
@click.option("--recurrence", callback=_iso_date, help="Date of recurrence (default: start).")
@click.option("--salvage-start", callback=_iso_date, help="Start salvage chemoradiation on DATE.")
@click.option("--delay", multiple=True, callback=_delays, help="Delay a cycle: CYCLE:DAYS.")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="table")
@click.option("--protocol", "protocol_path", type=click.Path(dir_okay=False), help="Protocol file.")
@click.option("--timezone", default=None, help="Patient time zone (default: the clinic's).")
def calendar_preview(
    pd1: str | None,
    chemo: str | None,
    extra: tuple[str, ...],
    start: date,
    recurrence: date | None,
    salvage_start: date | None,
    delay: list[tuple[int, int]],
    fmt: str,
    protocol_path: str | None,
    timezone: str | None,
) -> None:
    """Print a patient calendar without touching the database."""
    protocol = _protocol_or_exit(protocol_path)
    choices = _choices(pd1, chemo, extra)
    try:
        choices = protocol.validate_choices(choices)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    tz = ZoneInfo(timezone or current_app.config["CLINIC_TIMEZONE"])
    events = build_preview(protocol, choices, start, tz, recurrence, salvage_start, delay)
    if fmt == "json":
        click.echo(json.dumps([e.to_json() for e in events], ensure_ascii=False, indent=2))
    else:
        click.echo(format_table(events))


def build_preview(
    protocol: Protocol,
    choices: dict[str, str],
    start: date,
    tz: ZoneInfo,
    recurrence: date | None,
    salvage_start: date | None,
    delays: list[tuple[int, int]],
) -> list[PlannedEvent]:
    """Generate a calendar and apply the requested delays and salvage, as the services would."""
    working = clinic_working_days()
    events = cal.generate(protocol, choices, start, tz, working, recurrence_date=recurrence)
    today = start
    for cycle, days in delays:
        infusion = _infusion_of_cycle(events, cycle)
        new_date = infusion.date.fromordinal(infusion.date.toordinal() + days)
        change = cal.reschedule(
            protocol,
            events,
            infusion.key,
            new_date,
            f"preview delay {days:+d} d",
            working,
            today=today,
        )
        events = change.events
    if salvage_start is not None:
        events = cal.start_salvage(
            protocol, events, choices, salvage_start, working, today=today
        ).events
    return sorted(events, key=lambda e: (e.date, e.key))


def _infusion_of_cycle(events: list[PlannedEvent], cycle: int) -> PlannedEvent:
    for event in events:
        if event.kind == "infusion" and event.cycle == cycle and event.phase != "salvage":
            return event
    cycles = sorted({e.cycle for e in events if e.kind == "infusion" and e.cycle is not None})
    raise click.UsageError(f"no infusion for cycle {cycle}; cycles are {cycles[0]}-{cycles[-1]}")


def _choices(pd1: str | None, chemo: str | None, extra: tuple[str, ...]) -> dict[str, str]:
    choices: dict[str, str] = {}
    if pd1:
        choices["pd1"] = pd1
    if chemo:
        choices["chemo"] = chemo
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--choice")
        choices[key.strip()] = value.strip()
    return choices


def _protocol_or_exit(path: str | None) -> Protocol:
    try:
        return load_protocol(Path(path)) if path else current_protocol()
    except (ProtocolError, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from exc


def format_table(events: list[PlannedEvent]) -> str:
    """A calendar as a fixed-width table a nurse can read."""
    header = (
        f"{'date':<10}  {'day':<3}  {'phase':<11}  {'cyc':>3}  {'kind':<13}  {'window':<23}  title"
    )
    lines = [header, "-" * len(header)]
    for e in events:
        window = f"{e.window_start:%m-%d}..{e.window_end:%m-%d}"
        title = e.title_en
        notes = []
        if e.moved_from:
            notes.append(f"moved from {e.moved_from.isoformat()}")
        notes.extend(e.flags)
        if e.status != "planned":
            notes.append(e.status)
        suffix = f"  [{'; '.join(notes)}]" if notes else ""
        cycle = "" if e.cycle is None else str(e.cycle)
        lines.append(
            f"{e.date.isoformat():<10}  {e.date:%a}  {e.phase:<11}  {cycle:>3}  {e.kind:<13}  "
            f"{window:<23}  {title}{suffix}"
        )
    lines.append(f"{len(events)} events")
    return "\n".join(lines)


@patients_cli.command("enrol")
@click.option("--study-id", required=True)
@click.option("--initials", required=True)
@click.option(
    "--phone", required=True, help="Mobile number; +86 is assumed without a country code."
)
@click.option("--pd1", required=True)
@click.option("--chemo", required=True)
@click.option("--start", required=True, callback=_iso_date, help="First infusion, YYYY-MM-DD.")
@click.option(
    "--consent-date", required=True, callback=_iso_date, help="Date SMS consent was given."
)
@click.option("--locale", type=click.Choice(["zh", "en"]), default="zh")
@click.option("--timezone", default="Asia/Shanghai")
@click.option("--recurrence", callback=_iso_date, help="Date of the recurrence (required).")
@click.option(
    "--started-before-cadence",
    is_flag=True,
    help="The first infusion is in the past: mark earlier events as not tracked.",
)
@click.option("--shared-phone-reason", default="", help="Why another patient's number is used.")
@click.option(
    "--health-consent/--no-health-consent",
    default=True,
    help="The separate consent to process sensitive health information (check-ins); "
    "--no-health-consent: appointment reminders only.",
)
def patients_enrol(
    study_id: str,
    initials: str,
    phone: str,
    pd1: str,
    chemo: str,
    start: date,
    consent_date: date,
    locale: str,
    timezone: str,
    recurrence: date | None,
    started_before_cadence: bool,
    shared_phone_reason: str,
    health_consent: bool,
) -> None:
    """Enrol a patient and create the calendar."""
    request = EnrolmentRequest(
        study_id=study_id,
        initials=initials,
        phone=phone,
        choices={"pd1": pd1, "chemo": chemo},
        start_date=start,
        sms_consent=True,
        sms_consent_date=consent_date,
        health_consent=health_consent,
        locale=locale,
        timezone=timezone,
        recurrence_date=recurrence,
        started_before_cadence=started_before_cadence,
        shared_phone_reason=shared_phone_reason,
    )
    try:
        patient = enrol_patient(request, actor=CLI_ACTOR, today=_today())
    except EnrolmentError as exc:
        for field, message in exc.errors.items():
            click.echo(f"error: {field}: {message}", err=True)
        raise SystemExit(2) from exc
    click.echo(f"enrolled {patient.study_id} with {len(patient.events)} calendar events")


@patients_cli.command("list")
def patients_list() -> None:
    """List enrolled patients."""
    patients = list_patients()
    for p in patients:
        arm = "+".join(p.choices.get(k, "?") for k in sorted(p.choices))
        click.echo(
            f"{p.study_id:<12} {p.initials:<5} {mask_phone(p.phone_e164):<16} "
            f"{arm:<28} {p.start_date.isoformat()}  {p.status}"
        )
    click.echo(f"{len(patients)} patients")


@click.command("demo")
def demo_command() -> None:
    """Create demo patients (idempotent: existing ones are left alone)."""
    created = load_demo_data(today=_today())
    click.echo(f"demo data ready ({created} new patients)")
    click.echo(f"demo on-call rota ready ({ensure_demo_rota()} new entries)")
    checkins = load_demo_checkins(today=_today())
    click.echo(f"demo check-ins ready ({checkins} new)")
    for account in ensure_demo_staff():
        secret = account.password or "unchanged, reset with flask users reset-password"
        click.echo(f"demo {account.role}: {account.username} / {secret}")
