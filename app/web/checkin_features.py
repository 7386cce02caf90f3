"""Wiring of the check-in features: the patient link page, the triage inbox, conversations,
symptom trends on the patient page and the metrics page."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from app.web.checkin_link import register_checkin_link
from app.web.checkin_panels import register_checkin_panels
from app.web.conversation import register_conversation
from app.web.inbox import register_inbox
from app.web.metrics import register_metrics
from app.web.nav import add_nav_item


def register_checkin_features(app: Flask) -> None:
    """Register the blueprints, navigation items and template helpers of the check-in features."""
    register_checkin_link(app)
    register_checkin_panels(app)
    register_conversation(app)
    register_inbox(app)
    register_metrics(app)
    add_nav_item(app, "metrics.index", _l("Metrics"), order=70, permission="patients.view")
