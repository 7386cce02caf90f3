"""`flask --app app contacts ...`: a patient's contacts and consents (thin: services do it)."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.services.schedule.contacts import list_contacts
from app.services.shared.patient_lookup import PatientNotFound, get_patient

contacts_cli = AppGroup(
    "contacts", help="A patient's contacts (own phone, caregivers) and consents."
)


@contacts_cli.command("list")
@click.argument("study_id", required=False)
@click.option("--all", "all_patients", is_flag=True, help="Every patient's contacts.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--full-numbers", is_flag=True, help="Show whole numbers (masked by default).")
def contacts_list(study_id: str | None, all_patients: bool, fmt: str, full_numbers: bool) -> None:
    """Print STUDY_ID's contacts (or every patient's with --all); json: one object a line."""
    if all_patients == (study_id is not None):
        raise click.UsageError("give a STUDY_ID or --all (not both)")
    if study_id is not None:
        try:
            study_id = get_patient(study_id).study_id
        except PatientNotFound as exc:
            raise click.ClickException(str(exc)) from exc
    for view in list_contacts(study_id, full_phone=full_numbers):
        data = view.to_json()
        if fmt == "json":
            click.echo(json.dumps(data, ensure_ascii=False, sort_keys=True))
            continue
        in_force = sorted(
            {s for c in data["consents"] if not c["withdrawn_at"] for s in c["scopes"]}
        )
        click.echo(
            f"{data['study_id']:<12} {data['position']:>2} {data['relation']:<9} "
            f"{data['name']:<8} {data['phone']:<16} {data['locale']:<3} "
            f"messages={','.join(data['messages']) or '-'} "
            f"consent={','.join(in_force) or '-'}" + (" OPTED-OUT" if data["opted_out"] else "")
        )
