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
    capped: bool = False
    """True when counting stopped at ``total``: there are more (shown as "10,000+")."""

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
        return self.page < self.pages or self.capped

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
    count_cap: int | None = None,
) -> Page:
    """Run one page of a query in SQL (LIMIT/OFFSET) plus a COUNT; clamp the page number.

    `count_query` is a cheaper query with the same rows (no computed columns) to count.
    `count_cap`: count at most this many rows (or up to the page asked for and one more), so a
    long list is not read to the end to count it; the page is then ``capped`` ("10,000+").
    """
    page = max(1, page)
    counted = (count_query if count_query is not None else query).order_by(None)
    limit = None if count_cap is None else max(count_cap, page * per_page) + 1
    if limit is not None:
        counted = counted.limit(limit)
    total = int(db.session.scalar(select(func.count()).select_from(counted.subquery())) or 0)
    capped = limit is not None and total >= limit
    if capped:
        total = limit - 1
    pages = max(1, math.ceil(total / per_page))
    page = min(page, pages)
    limited = query.limit(per_page).offset((page - 1) * per_page)
    result = db.session.execute(limited)
    items = list(result.scalars()) if scalars else list(result.all())
    return Page(items=items, page=page, per_page=per_page, total=total, capped=capped)
