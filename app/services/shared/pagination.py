"""A page of query results, for lists that must stay quick with thousands of rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from app.extensions import db


@dataclass(frozen=True)
class Page:
    """One page of results and what the pager needs."""

    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        """True when there is a previous page."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """True when there is a next page."""
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        """1-based index of the first item shown."""
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        """1-based index of the last item shown."""
        return min(self.total, self.page * self.per_page)


def paginate(
    query: Select[Any],
    page: int,
    per_page: int,
    *,
    scalars: bool = True,
    count_query: Select[Any] | None = None,
) -> Page:
    """Run one page of a query in SQL (LIMIT/OFFSET) plus a COUNT; clamp the page number.

    `count_query` is a cheaper query with the same rows (no computed columns) to count.
    """
    counted = (count_query if count_query is not None else query).order_by(None).subquery()
    total = db.session.scalar(select(func.count()).select_from(counted))
    total = int(total or 0)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    limited = query.limit(per_page).offset((page - 1) * per_page)
    result = db.session.execute(limited)
    items = list(result.scalars()) if scalars else list(result.all())
    return Page(items=items, page=page, per_page=per_page, total=total)
