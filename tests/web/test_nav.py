"""The navigation can be extended by other features (e.g. the SMS inbox)."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask.testing import FlaskClient
from flask_babel import lazy_gettext as _l
from flask_login import login_user

from app import create_app
from app.services.shared.users import create_user
from app.web.nav import add_nav_item, nav_links
from tests.support import FAST_HASHING


def test_nav_shows_links_by_role(app: Flask, nurse: FlaskClient) -> None:
    html = nurse.get("/").get_data(as_text=True)
    assert 'href="/patients/"' in html and 'href="/calendar/month"' in html
    assert 'href="/admin/users/"' not in html


def test_admin_sees_the_users_link(admin: FlaskClient) -> None:
    assert 'href="/admin/users/"' in admin.get("/").get_data(as_text=True)


def test_a_feature_can_add_a_nav_item(app_ctx: Flask, database_url: str) -> None:
    other = create_app("test", SQLALCHEMY_DATABASE_URI=database_url, **FAST_HASHING)
    bp = Blueprint("inbox_test", __name__)
    bp.add_url_rule("/inbox-test", "index", lambda: "ok")
    other.register_blueprint(bp)
    add_nav_item(other, "inbox_test.index", _l("Inbox"), order=17, badge=lambda: 3)
    with other.app_context():
        user = create_user("nav.tester", display_name="N", role="nurse",
                           password="long-enough-pass", actor="test")  # fmt: skip
        with other.test_request_context("/inbox-test"):
            login_user(user)
            links = nav_links()
    endpoints = [link.endpoint for link in links]
    position = endpoints.index("inbox_test.index")
    assert endpoints.index("main.today") < position < endpoints.index("patients.index")
    inbox = links[position]
    assert (inbox.url, inbox.badge, inbox.active, inbox.label) == ("/inbox-test", 3, True, "Inbox")
    assert not links[0].active
