"""The inbox's list: filters, search, keyset pagination and per-filter counts.

Built to stay fast with a million requests (figures in docs/benchmarks.md, "Inbox"):
- pages are read by keyset — (created_at, id) for "newest", (priority, created_at, id) for
  "most urgent" — never with OFFSET, so page 2 000 costs what page 1 costs;
- every filter column has an index that starts with it and ends with created_at;
- the number of matches is counted up to COUNT_CAP ("1 000+"), never over the whole table;
- the counts shown next to each filter come from indexed GROUP BYs, cached a few seconds per
  process (GATEWAY_INBOX_COUNTS_SECONDS): they are a guide, not an audit figure.

Priorities sort by name in the right order: urgent > routine > deferrable.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal, or_, select, tuple_, union
from sqlalchemy.orm import aliased, lazyload

from normalizer.phone import to_e164

from ..ids import database_id
from ..models import (
    OPEN_STATUSES,
    REQUEST_STATUSES,
    ContactPoint,
    DedupSuggestion,
    GivenCode,
    Request,
    utcnow,
)

PAGE_SIZE = 50
COUNT_CAP = 1_000
DUE_SOON = timedelta(hours=4)
SORTS = ("newest", "urgent")
SLA_FILTERS = ("due_soon", "breached")
DUPLICATE_FILTERS = ("linked", "originals", "suggested")
CODE = re.compile(r"^[A-Za-z]{1,3}-\d{4}-\d{4,8}$")


@dataclass(frozen=True)
class Filters:
    """What the agent asked for, read from the query string (unknown values are ignored)."""

    status: str = "open"  # "open", "all" or one status
    channel: str = ""
    category: str = ""
    department: str = ""
    priority: str = ""
    district: str = ""
    sla: str = ""
    duplicates: str = ""
    mine: str = ""
    q: str = ""
    sort: str = "newest"
    after: str = ""  # the keyset cursor of the next page

    @classmethod
    def from_args(cls, args) -> Filters:
        values = {f.name: (args.get(f.name) or "").strip()[:200] for f in fields(cls)}
        if values["status"] not in (*REQUEST_STATUSES, "open", "all"):
            values["status"] = "open"
        if values["sort"] not in SORTS:
            values["sort"] = "newest"
        if values["sla"] not in SLA_FILTERS:
            values["sla"] = ""
        if values["duplicates"] not in DUPLICATE_FILTERS:
            values["duplicates"] = ""
        values["mine"] = "1" if values["mine"] else ""
        return cls(**values)

    def args(self, **changes) -> dict:
        """Query-string arguments for a link; changing a filter goes back to the first page."""
        changed = replace(self, **changes) if changes else self
        if changes and "after" not in changes:
            changed = replace(changed, after="")
        defaults = Filters()
        return {f.name: getattr(changed, f.name) for f in fields(self)
                if getattr(changed, f.name) != getattr(defaults, f.name)}


@dataclass
class Page:
    rows: list[Request]
    next_cursor: str | None
    total: int  # capped at COUNT_CAP + 1
    capped: bool = field(default=False)


def conditions(filters: Filters, user_id: int | None, now: datetime, region: str, sees_contacts: bool) -> list:
    """The WHERE clauses for ``filters``."""
    where = []
    if filters.status == "open":
        where.append(Request.status.in_(OPEN_STATUSES))
    elif filters.status != "all":
        where.append(Request.status == filters.status)
    for name in ("channel", "category", "department", "priority", "district"):
        value = getattr(filters, name)
        if value:
            where.append(getattr(Request, name) == value)
    if filters.sla == "breached":
        where += [Request.status.in_(OPEN_STATUSES), Request.sla_due_at < now]
    elif filters.sla == "due_soon":
        where += [Request.status.in_(OPEN_STATUSES), Request.sla_due_at >= now, Request.sla_due_at < now + DUE_SOON]
    if filters.duplicates == "linked":
        where.append(Request.duplicate_of_id.is_not(None))
    elif filters.duplicates == "originals":
        where.append(has_duplicates())
    elif filters.duplicates == "suggested":
        where.append(has_pending_suggestion())
    if filters.mine:
        where.append(assigned_to(user_id or -1))
    if filters.q:
        where.append(search_condition(filters.q, region, sees_contacts))
    return where


def assigned_to(user_id: int):
    """Through the assignee's index whatever else is asked: most requests are assigned to
    nobody, so SQLite's statistics (without STAT4) make that index look useless."""
    mine = aliased(Request)
    return Request.id.in_(select(mine.id).where(mine.assigned_to_id == user_id))


def has_duplicates():
    """Requests that others are linked to. An IN over the (small, indexed) set of linked
    requests: a correlated EXISTS made SQLite scan the table once per row."""
    linked = aliased(Request)
    return Request.id.in_(select(linked.duplicate_of_id).where(linked.duplicate_of_id.is_not(None)))


def has_pending_suggestion():
    """Requests with a possible duplicate waiting for an agent (an indexed, small set)."""
    return Request.id.in_(select(DedupSuggestion.request_id).where(DedupSuggestion.state == "pending"))


def search_condition(text: str, region: str, sees_contacts: bool):
    """A tracking code, a citizen's e-mail or phone (for roles that may see them), or words
    found in the subject, the description or the address (every word must appear)."""
    text = text.strip()
    if CODE.match(text):  # or the code a message was given before it joined this request (gateway/tracking.py)
        # One IN over a UNION, not an OR: PostgreSQL turns it into a join on the two indexes
        # (an OR with a subquery would filter every request).
        return Request.id.in_(union(select(Request.id).where(Request.code == text.upper()),
                                    select(GivenCode.request_id).where(GivenCode.code == text.upper())))
    if sees_contacts and "@" in text and " " not in text:
        return Request.citizen_id.in_(_citizens_with("email", text.lower()))
    phone = to_e164(text, region) if sees_contacts and re.fullmatch(r"[+\d\s().-]{7,}", text) else None
    if phone:
        return Request.citizen_id.in_(_citizens_with("phone", phone))
    words = [w for w in re.split(r"\s+", text) if w][:6]
    return and_(*[
        or_(Request.description.ilike(pattern), Request.subject.ilike(pattern), Request.address.ilike(pattern))
        for pattern in (f"%{_escape_like(w)}%" for w in words)
    ])


def _citizens_with(kind: str, value: str):
    return select(ContactPoint.citizen_id).where(ContactPoint.kind == kind, ContactPoint.value == value)


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_page(session, filters: Filters, where: list, size: int = PAGE_SIZE, counts: CountCache | None = None,
              count_key: str = "") -> Page:
    """One page of requests after ``filters.after``, and the (capped) number of matches,
    kept in ``counts`` under ``count_key`` so that turning pages does not count again."""
    stmt = select(Request).where(*where).options(lazyload(Request.citizen))  # rows show no citizen
    cursor = decode_cursor(filters.after, filters.sort)
    if filters.sort == "urgent":
        stmt = stmt.order_by(Request.priority.desc(), Request.created_at.desc(), Request.id.desc())
        if cursor:
            stmt = stmt.where(tuple_(Request.priority, Request.created_at, Request.id) < tuple_(*cursor))
    else:
        stmt = stmt.order_by(Request.created_at.desc(), Request.id.desc())
        if cursor:
            stmt = stmt.where(tuple_(Request.created_at, Request.id) < tuple_(*cursor))
    rows = list(session.scalars(stmt.limit(size + 1)))
    next_cursor = encode_cursor(rows[size - 1], filters.sort) if len(rows) > size else None
    # a first page that is not full holds every match: no second pass (a search found nowhere
    # would otherwise read the whole table twice)
    if cursor is None and len(rows) <= size:
        total = len(rows)
    elif counts is not None:
        total = counts.get(count_key, lambda: capped_count(session, where))
    else:
        total = capped_count(session, where)
    return Page(rows=rows[:size], next_cursor=next_cursor, total=total, capped=total > COUNT_CAP)


def reports_again(session, rows) -> dict[int, int]:
    """{request id: how many other citizens' reports are linked to it as duplicates} for the
    listed ``rows``: one grouped look-up on the duplicates' index. A problem many reported is
    seen as such in the list."""
    ids = [r.id for r in rows]
    if not ids:
        return {}
    return dict(session.execute(select(Request.duplicate_of_id, func.count()).where(Request.duplicate_of_id.in_(ids))
                                .group_by(Request.duplicate_of_id)).all())


def capped_count(session, where: list, cap: int = COUNT_CAP) -> int:
    """How many requests match, counting at most ``cap`` + 1 of them."""
    inner = select(literal(1)).select_from(Request).where(*where).limit(cap + 1).subquery()
    return session.scalar(select(func.count()).select_from(inner))


def newer_than(session, where: list, last_id: int, limit: int = PAGE_SIZE) -> list[Request]:
    """Requests created since the page was shown (for the inbox's polling)."""
    stmt = select(Request).options(lazyload(Request.citizen)).where(*where, Request.id > last_id).order_by(Request.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def encode_cursor(row: Request, sort: str) -> str:
    parts = [row.created_at.isoformat(), str(row.id)]
    if sort == "urgent":
        parts.insert(0, row.priority)
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode_cursor(raw: str, sort: str) -> tuple | None:
    """The keyset values of a cursor, or None for the first page or a tampered cursor."""
    if not raw:
        return None
    try:
        parts = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split("|")
        if sort == "urgent":
            priority, created, ident = parts
            return priority, datetime.fromisoformat(created), database_id(ident)
        created, ident = parts
        return datetime.fromisoformat(created), database_id(ident)
    except (ValueError, UnicodeDecodeError):
        return None


class CountCache:
    """Counts kept ``ttl`` seconds per process: a guide for agents, not an audit figure."""

    MAX_KEYS = 2000

    def __init__(self, ttl: float = 30.0):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, object]] = {}

    def get(self, key: str, compute):
        with self._lock:
            hit = self._cache.get(key)
            if hit and time.monotonic() < hit[0]:
                return hit[1]
        value = compute()
        with self._lock:
            if len(self._cache) >= self.MAX_KEYS:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.ttl, value)
        return value


class FacetCounts:
    """Counts shown next to each filter, from one indexed GROUP BY per filter."""

    FACETS = ("status", "channel", "category", "department", "priority", "district")

    def compute(self, session, seen: list | None = None) -> dict:
        """``seen``: the conditions on what the user may see (permissions.scope)."""
        now = utcnow()
        seen = list(seen or [])
        counts: dict[str, dict] = {}
        for facet in self.FACETS:
            column = getattr(Request, facet)
            counts[facet] = dict(session.execute(select(column, func.count()).where(*seen).group_by(column)).all())
        counts["status"]["open"] = sum(counts["status"].get(s, 0) for s in OPEN_STATUSES)
        counts["status"]["all"] = sum(v for k, v in counts["status"].items() if k in REQUEST_STATUSES)
        open_ = Request.status.in_(OPEN_STATUSES)
        counts["sla"] = {
            "breached": capped_count(session, [*seen, open_, Request.sla_due_at < now]),
            "due_soon": capped_count(session, [*seen, open_, Request.sla_due_at >= now,
                                               Request.sla_due_at < now + DUE_SOON]),
        }
        counts["duplicates"] = {
            "linked": capped_count(session, [*seen, Request.duplicate_of_id.is_not(None)]),
            "originals": capped_count(session, [*seen, has_duplicates()]),
            "suggested": capped_count(session, [*seen, has_pending_suggestion()]),
        }
        return counts


facet_counts = FacetCounts()
cached_counts = CountCache()
