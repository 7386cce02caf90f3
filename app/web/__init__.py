"""The nurses' web UI: blueprints, sign-in plumbing, navigation, templates helpers."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from app.web import audit, auth, calendar, exports, main, patients, users
from app.web.alerts import register_alerts
from app.web.bulk import register_bulk
from app.web.checkin_features import register_checkin_features
from app.web.contacts import register_contacts
from app.web.errors import init_error_pages
from app.web.message_log import register_message_log
from app.web.nav import add_nav_item
from app.web.provider_webhooks import register_provider_webhooks
from app.web.security import init_security
from app.web.templating import init_templating, render_time_filters
from app.web.webhooks import register_webhooks


def register_blueprints(app: Flask) -> None:
    """Register every blueprint of the web UI and the pieces they share."""
    init_security(app)
    init_templating(app)
    init_error_pages(app)
    for module in (auth, main, patients, calendar, audit, exports, users):
        app.register_blueprint(module.bp)
    register_message_log(app)
    register_webhooks(app)
    register_provider_webhooks(app)
    register_alerts(app)
    register_checkin_features(app)
    register_bulk(app)
    register_contacts(app)
    add_nav_item(app, "main.today", _l("Today"), order=10)
    add_nav_item(app, "patients.index", _l("Patients"), order=20, blueprint="patients")
    add_nav_item(app, "calendar.month", _l("Calendar"), order=30)
    add_nav_item(app, "audit.index", _l("Audit log"), order=80, permission="audit.view")
    add_nav_item(app, "users.index", _l("Users"), order=90, permission="users.manage")
    render_time_filters(app)
