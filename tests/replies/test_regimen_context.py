"""Triage sees the patient's treatment: drug, phase and days since the last infusion."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Flask

from app.services.conversations.inbound.replies import receive
from app.services.schedule.treatment import treatment_context
from tests.integration.sms_support import enrol
from tests.replies.conftest import alerts, inbound_form

TODAY = date(2026, 3, 6)
START = date(2026, 3, 10)  # a Tuesday: the first infusion


def at(day: date, hour: int = 2) -> datetime:
    """10:00 in Nanjing on ``day``."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_before_the_first_infusion_the_phase_is_unknown(app_ctx: Flask) -> None:
    patient = enrol("JSCH-300", chemo="irinotecan", start=START, today=TODAY)

    context = treatment_context(patient, at(date(2026, 3, 9)))

    assert (context.phase, context.days_since_infusion, context.chemo) == (None, None, None)
    assert context.pd1 == "sintilimab"


def test_four_days_after_an_irinotecan_infusion(app_ctx: Flask) -> None:
    patient = enrol("JSCH-301", chemo="irinotecan", start=START, today=TODAY)

    context = treatment_context(patient, at(date(2026, 3, 14)))

    assert (context.chemo, context.phase, context.days_since_infusion) == (
        "irinotecan",
        "induction",
        4,
    )


def test_first_loose_stools_after_irinotecan_are_amber_but_not_after_docetaxel(
    app_ctx: Flask,
) -> None:
    on_irinotecan = enrol("JSCH-302", chemo="irinotecan", start=START, today=TODAY)
    on_docetaxel = enrol("JSCH-303", chemo="docetaxel", start=START, today=TODAY)
    when = at(date(2026, 3, 14))

    late_diarrhoea = receive(inbound_form(on_irinotecan.phone_e164, "拉肚子了，拉了两次"), when)
    mild = receive(inbound_form(on_docetaxel.phone_e164, "拉肚子了，拉了两次"), when)

    assert late_diarrhoea.priority == "amber"
    assert mild.priority == "green"
    amber = [a for a in alerts() if a.level == "amber"]
    assert [a.patient_id for a in amber] == [on_irinotecan.id]
