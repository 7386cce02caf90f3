"""The main navigation: a list of items that any feature can extend with add_nav_item()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request, url_for
from flask_login import current_user

from app.services.shared.users import has_permission

NAV_KEY = "cadence.nav"


@dataclass(frozen=True)
class NavItem:
    """One link of the main navigation."""

    endpoint: str
    label: Any
    order: int = 100
    permission: str | None = None
    blueprint: str | None = None
    badge: Callable[[], int | None] | None = None


@dataclass(frozen=True)
class NavLink:
    """A navigation item resolved for the current request."""

    url: str
    label: str
    active: bool
    badge: int | None
    endpoint: str


def add_nav_item(
    app: Flask,
    endpoint: str,
    label: Any,
    *,
    order: int = 100,
    permission: str | None = None,
    blueprint: str | None = None,
    badge: Callable[[], int | None] | None = None,
) -> None:
    """Add a link to the main navigation (label: a lazy_gettext string; lower order comes first).

    `permission` hides the link from roles without it; `blueprint` marks the link active on every
    page of that blueprint (default: the endpoint's blueprint); `badge` returns a count or None.
    """
    items: list[NavItem] = app.extensions.setdefault(NAV_KEY, [])
    items[:] = [item for item in items if item.endpoint != endpoint]
    items.append(
        NavItem(
            endpoint=endpoint,
            label=label,
            order=order,
            permission=permission,
            blueprint=blueprint or endpoint.partition(".")[0],
            badge=badge,
        )
    )
    items.sort(key=lambda item: (item.order, item.endpoint))


def nav_links() -> list[NavLink]:
    """The navigation items the signed-in user may see, with the active one marked."""
    if not current_user.is_authenticated:
        return []
    links = []
    for item in current_app.extensions.get(NAV_KEY, []):
        if item.permission and not has_permission(current_user.role, item.permission):
            continue
        links.append(
            NavLink(
                url=url_for(item.endpoint),
                label=str(item.label),
                active=request.blueprint == item.blueprint,
                badge=item.badge() if item.badge else None,
                endpoint=item.endpoint,
            )
        )
    return links
