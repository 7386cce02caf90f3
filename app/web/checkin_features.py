"""Wiring of the check-in features: the patient link page, the triage inbox, conversations,
symptom trends on the patient page and the metrics page."""

from __future__ import annotations

from flask import Flask


def register_checkin_features(app: Flask) -> None:
    """Register the blueprints, navigation items and template helpers of the check-in features."""
    from app.web.checkin_link import register_checkin_link

    register_checkin_link(app)
