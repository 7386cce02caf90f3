"""`flask --app app sms ...`: preview, plan, send what is due, reconcile (thin: services do it)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup

from app.domain.dates import DateInputError
from app.models import OutboxMessage, utcnow
from app.services.alerts.alerts import alert_replan_failure
from app.services.conversations.inbound.replies import InvalidInbound
from app.services.conversations.inbound.simulate import simulate_inbound
from app.services.messaging import dispatch, outbox, reminders, replan_workers
from app.services.shared.date_inputs import any_date_range
from app.services.shared.job_locks import single_run
from app.services.shared.patient_lookup import PatientNotFound, get_patient
from app.sms import TemplateCatalogue, provider_rules, template_catalogue
from app.sms.templates import PROVIDERS, TemplateError

sms_cli = AppGroup("sms", help="Preview, plan, send and reconcile SMS reminders.")

CLI_ACTOR = "cli"


def _clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("CLINIC_TIMEZONE", "Asia/Shanghai"))


def _iso_moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO date-time; without an offset it is clinic time."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"expected an ISO date-time such as 2026-03-02T08:00, got {value!r}"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_clinic_tz())
    try:
        any_date_range().check(moment.date(), param.name or "date")
    except DateInputError as exc:
        raise click.BadParameter(str(exc)) from exc
    return moment


def format_message(row: OutboxMessage, tz: ZoneInfo) -> str:
    """One message for the terminal: local send time, status, segments, then the body."""
    when = row.send_after.astimezone(tz).strftime("%Y-%m-%d %a %H:%M")
    notes = f"  [{', '.join(row.notes)}]" if row.notes else ""
    head = f"{when}  {row.kind:<8} {row.status:<10} {row.segments} seg {row.encoding}{notes}"
    return f"{head}\n    {row.body}"


@sms_cli.command("preview")
@click.argument("patient")
@click.option("--limit", default=10, show_default=True, help="How many messages to show.")
@click.option("--replan", is_flag=True, help="Re-plan the patient's outbox first (commits).")
def sms_preview(patient: str, limit: int, replan: bool) -> None:
    """Show PATIENT's next planned messages exactly as they will be sent."""
    try:
        found = get_patient(patient)
    except PatientNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    if replan:
        result = reminders.replan_patient(found.id, now=utcnow(), source=CLI_ACTOR)
        click.echo(f"re-planned: {result.created} new, {result.cancelled} cancelled")
    reason = reminders.blocked_reason(found)
    tz = ZoneInfo(found.timezone)
    click.echo(f"{found.study_id}  locale {found.locale}  time zone {found.timezone}")
    if reason:
        click.echo(f"no SMS may be sent to this patient: {reason}")
    rows = outbox.next_planned(found.id, limit=limit)
    for row in rows:
        click.echo(format_message(row, tz))
    click.echo(f"{len(rows)} planned message(s) shown")


@sms_cli.command("plan")
@click.argument("patient", required=False)
@click.option("--all", "all_patients", is_flag=True, help="Re-plan every patient.")
@click.option(
    "--force",
    is_flag=True,
    help="With --all: re-plan patients whose planning inputs did not change too.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --all: processes sharing the patients (each its own database connection).",
)
def sms_plan(patient: str | None, all_patients: bool, force: bool, workers: int) -> None:
    """Re-plan the outbox of PATIENT (or --all) from now: idempotent.

    --all skips patients whose calendar, flags, contacts, rules and outbox are as at their last
    plan (nothing would change); --force re-plans them as well. --workers N splits --all over
    N processes (PostgreSQL: they write at once; SQLite: their writes take turns).
    """
    if all_patients:
        with single_run(reminders.REPLAN_ALL_JOB) as mine:
            if not mine:
                raise click.ClickException(
                    "the daily re-plan (job sms-replan) is running in another process: "
                    "try again when it has finished"
                )
            _plan_all(force, workers)
        return
    if not patient:
        raise click.UsageError("give a PATIENT or --all")
    try:
        result = reminders.replan_patient(patient, now=utcnow(), source=CLI_ACTOR)
    except PatientNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{result.created} new, {result.updated} updated, {result.reactivated} planned again, "
        f"{result.cancelled} cancelled, {result.kept} unchanged"
        + (f" (blocked: {result.blocked_reason})" if result.blocked_reason else "")
    )


def _plan_all(force: bool, workers: int) -> None:
    """``sms plan --all``: every patient, with a progress bar and the totals."""
    total = reminders.patients_to_replan()
    with click.progressbar(
        length=total, label="Re-planning", show_pos=True, show_eta=True, file=sys.stderr
    ) as bar:
        totals = replan_workers.replan_all_in_workers(
            workers=workers,
            now=utcnow(),
            source=CLI_ACTOR,
            on_failure=alert_replan_failure,
            progress=bar.update,
            skip_unchanged=not force,
        )
    click.echo(
        f"{totals['patients']} patients: {totals['created']} new, "
        f"{totals['cancelled']} cancelled, {totals['skipped']} unchanged (skipped)"
    )
    if totals["failed"]:
        raise click.ClickException(
            f"{totals['failed']} patient(s) could not be re-planned (see the log and the "
            "triage inbox)"
        )


@sms_cli.command("send-due")
@click.option("--now", callback=_iso_moment, help="Send what is due at this ISO time (clinic).")
@click.option("--dry-run", is_flag=True, help="List what is due; send nothing.")
@click.option("--limit", type=int, help="Send at most this many.")
def sms_send_due(now: datetime | None, dry_run: bool, limit: int | None) -> None:
    """Send every message that is due, through the configured gateway."""
    moment = now or utcnow()
    if dry_run:
        rows = dispatch.due_messages(moment, limit=limit)
        tz = _clinic_tz()
        for row in rows:
            click.echo(f"{row.patient.study_id:<12} " + format_message(row, tz))
        click.echo(f"{len(rows)} message(s) due; nothing sent (dry run)")
        return
    total = dispatch.count_due(moment)
    if limit is not None:
        total = min(total, limit)
    with click.progressbar(length=total, label="Sending", show_pos=True) as bar:
        report = dispatch.dispatch_due(now, actor=CLI_ACTOR, limit=limit, progress=bar.update)
    click.echo(report.summary())


@sms_cli.command("reconcile")
def sms_reconcile() -> None:
    """Settle messages whose sending is unclear by asking the provider (before any resend)."""
    report = dispatch.reconcile(source=CLI_ACTOR)
    click.echo(report.summary())


@sms_cli.command("status")
def sms_status() -> None:
    """How many messages are in each status."""
    counts = outbox.status_counts()
    for status, count in sorted(counts.items()):
        click.echo(f"{status:<12} {count}")


@sms_cli.command("health")
def sms_health() -> None:
    """Exit 1 when sending lags (due > 5 min unsent: is a jobs process running?) or is stuck."""
    report = outbox.health()
    for key, value in report.to_json().items():
        click.echo(f"{key:<20} {value}")
    if not report.healthy:
        raise SystemExit(1)


templates_cli = AppGroup("templates", help="Approved SMS templates (Tencent Cloud, Alibaba Cloud).")
sms_cli.add_command(templates_cli)


def _catalogue() -> TemplateCatalogue:
    """The configured template file, or a clear ClickException."""
    try:
        return template_catalogue(current_app.config)
    except TemplateError as exc:
        raise click.ClickException(str(exc)) from exc


@templates_cli.command("check")
@click.option(
    "--provider",
    "providers",
    multiple=True,
    type=click.Choice(PROVIDERS),
    help="Check for this provider only (default: both).",
)
def templates_check(providers: tuple[str, ...]) -> None:
    """Check every template against each provider's rules; exit 1 with the list of problems."""
    catalogue = _catalogue()
    problems = [
        problem
        for provider in providers or PROVIDERS
        for problem in catalogue.check(provider_rules(current_app.config, provider))
    ]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{len(catalogue.templates)} templates pass for {', '.join(providers or PROVIDERS)}")


@templates_cli.command("export")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS))
@click.option("--format", "fmt", default="csv", type=click.Choice(["csv"]), show_default=True)
def templates_export(provider: str, fmt: str) -> None:
    """Write the approval sheet (template text, type, purpose, example) as CSV to stdout."""
    click.echo(_catalogue().export_csv(provider), nl=False)


@sms_cli.command("simulate-inbound")
@click.option("--from", "sender", required=True, help="The sender's number (E.164 or local).")
@click.option("--body", required=True, help="The message text.")
@click.option("--at", "at", callback=_iso_moment, help="When it arrives (ISO; default now).")
@click.option("--allow-production", is_flag=True, help="Run even when CADENCE_ENV=production.")
def sms_simulate_inbound(
    sender: str, body: str, at: datetime | None, allow_production: bool
) -> None:
    """Run an inbound SMS through the webhook's path (no signature); print one JSON object.

    It is stored, interpreted and acted on like a real message (alerts, pages, opt-outs).
    """
    if current_app.config.get("CADENCE_ENV") == "production" and not allow_production:
        raise click.UsageError(
            "refused: CADENCE_ENV=production (a simulated message acts on real patients); "
            "add --allow-production if you mean it"
        )
    try:
        outcome = simulate_inbound(sender, body, now=at or utcnow())
    except InvalidInbound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(outcome, ensure_ascii=False, sort_keys=True))
