"""Clinic settings every layer reads: the clinic's time zone and the escalation policy."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from app.domain.escalation import EscalationPolicy, WorkingHours


def escalation_policy() -> EscalationPolicy:
    """The ESCALATION_* settings as a policy."""
    config = current_app.config
    return EscalationPolicy(
        red_first=timedelta(minutes=float(config.get("ESCALATION_RED_FIRST_MINUTES", 15))),
        red_repeat=timedelta(minutes=float(config.get("ESCALATION_RED_REPEAT_MINUTES", 15))),
        amber_first=timedelta(hours=float(config.get("ESCALATION_AMBER_HOURS", 4))),
        amber_repeat=timedelta(hours=float(config.get("ESCALATION_AMBER_REPEAT_HOURS", 4))),
        working_hours=WorkingHours.parse(
            str(config.get("ESCALATION_WORKING_HOURS") or "08:00-17:00")
        ),
    )


def clinic_zone() -> ZoneInfo:
    """The clinic's time zone."""
    return ZoneInfo(str(current_app.config.get("CLINIC_TIMEZONE") or "Asia/Shanghai"))
