"""`flask triage classify`, `flask oncall ...` and `flask alerts escalate`: the replies feature's CLI.

    printf '发烧38.5\\n1\\n' | flask --app app triage classify --lang auto
    flask --app app oncall add --role clinician --name "Dr Wang" --phone 13800138000 \\
        --days daily --hours 08:00-08:00
    flask --app app oncall who [--at 2026-03-02T03:00]
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.domain.dates import DateInputError
from app.domain.oncall import ROTA_ROLES, RotaError
from app.domain.triage import classify, explain
from app.models import utcnow
from app.services.alerts import oncall
from app.services.alerts.escalation import escalate_due
from app.services.shared.date_inputs import any_date_range

triage_cli = AppGroup("triage", help="Check how patients' replies are understood and triaged.")
oncall_cli = AppGroup("oncall", help="View and edit the on-call rota.")
alerts_cli = AppGroup("alerts", help="Alerts from patients' replies.")

CLI_ACTOR = "cli"


def register_triage_commands(app: Flask) -> None:
    """Attach the triage, oncall and alerts command groups."""
    app.cli.add_command(triage_cli)
    app.cli.add_command(oncall_cli)
    app.cli.add_command(alerts_cli)


@triage_cli.command("classify")
@click.option("--lang", type=click.Choice(["zh", "en", "auto"]), default="auto", show_default=True)
def triage_classify(lang: str) -> None:
    """Read one message per line on stdin; print one JSON object per line."""
    stream = sys.stdin
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="replace")  # a line of broken UTF-8 must not stop the run
    for line in stream:
        text = line.rstrip("\r\n")
        click.echo(json.dumps(classify(text, lang=lang), ensure_ascii=False))
    sys.stdout.flush()


@triage_cli.command("explain")
@click.argument("text")
@click.option("--lang", type=click.Choice(["zh", "en", "auto"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def triage_explain(text: str, lang: str, as_json: bool) -> None:
    """Show every step: normalised text, matches with their vocabulary entry, rules, safety net."""
    report = explain(text, lang=lang)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    click.echo(f"original:    {report['original']}")
    for step in report["steps"]:
        click.echo(f"  {step['step']:<26} {step['text']}")
    click.echo(f"language:    {report['language']}    intent: {report['intent']}")
    for match in report["matches"]:
        negated = " (negated)" if match["negated"] else ""
        level = f" level={match['level']}" if match["level"] else ""
        source = f"  [{match['source']}]" if match["source"] else ""
        click.echo(
            f"  match {match['text']!r} -> {match['entry']} {match['kind']}{level}{negated}{source}"
        )
    for symptom in report["symptoms"]:
        click.echo(f"  symptom {symptom['code']} grade {symptom['grade']} ({symptom['evidence']})")
    click.echo(
        f"temperature: {report['temperature_c']}    flags: {', '.join(report['flags']) or '-'}"
    )
    click.echo(f"unread clinical words: {', '.join(report['unread_clinical_words']) or '-'}")
    click.echo("rules fired:")
    for reason in report["rules_fired"]:
        click.echo(f"  {reason}")
    click.echo(f"safety net:  {report['safety_net'] or 'not needed'}")
    click.echo(f"priority:    {report['priority']}")


def _moment(value: str | None) -> datetime:
    if not value:
        return utcnow()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DDTHH:MM, got {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(current_app.config["CLINIC_TIMEZONE"]))
    try:
        any_date_range().check(moment.date(), "--at")
    except DateInputError as exc:
        raise click.BadParameter(str(exc)) from exc
    return moment


@oncall_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def oncall_list(as_json: bool) -> None:
    """Print the rota."""
    rows = [oncall.describe(row) for row in oncall.shifts(active_only=False)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("The rota is empty.")
    for row in rows:
        click.echo(
            f"{row['id']:>4}  {row['role']:<12} {row['name']:<20} {row['phone']:<16} "
            f"{row['weekdays']:<28} {row['hours']}  order {row['priority']}  {row['locale']}"
        )


@oncall_cli.command("add")
@click.option("--role", type=click.Choice(ROTA_ROLES), required=True)
@click.option("--name", required=True)
@click.option("--phone", required=True, help="Mobile number (E.164 or national).")
@click.option(
    "--days",
    "weekdays",
    default="daily",
    show_default=True,
    help="mon-fri, sat,sun, hol (public holidays)...",
)
@click.option("--hours", default="08:00-08:00", show_default=True, help="HH:MM-HH:MM, local.")
@click.option("--priority", default=0, show_default=True, type=int, help="Lower pages first.")
@click.option("--locale", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def oncall_add(
    role: str, name: str, phone: str, weekdays: str, hours: str, priority: int, locale: str
) -> None:
    """Add a rota entry."""
    try:
        row = oncall.add_shift(
            role=role,
            name=name,
            phone=phone,
            weekdays=weekdays,
            hours=hours,
            priority=priority,
            locale=locale,
            actor=CLI_ACTOR,
        )
    except RotaError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"added rota entry {row.id}: {json.dumps(oncall.describe(row), ensure_ascii=False)}")


@oncall_cli.command("remove")
@click.argument("shift_id", type=int)
def oncall_remove(shift_id: int) -> None:
    """Remove a rota entry by id."""
    try:
        oncall.remove_shift(shift_id, actor=CLI_ACTOR)
    except RotaError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"removed rota entry {shift_id}")


@oncall_cli.command("who")
@click.option("--at", "at", help="Local time YYYY-MM-DDTHH:MM (default: now).")
def oncall_who(at: str | None) -> None:
    """Who would be paged, by role, now or at a given time."""
    moment = _moment(at)
    for role in ROTA_ROLES:
        people = oncall.recipients(role, moment)
        names = ", ".join(f"{p.name} {p.phone} ({p.source})" for p in people) or "NOBODY"
        click.echo(f"{role:<12} {names}")


@alerts_cli.command("escalate")
@click.option("--at", "at", help="Local time YYYY-MM-DDTHH:MM (default: now).")
def alerts_escalate(at: str | None) -> None:
    """Run one escalation pass (what the escalation job does every minute)."""
    report = escalate_due(_moment(at), actor=CLI_ACTOR)
    click.echo(report.summary())
