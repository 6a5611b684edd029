"""Times in the database: aware datetimes, stored in UTC on every backend.

``UTCDateTime`` is the column type of every time in gateway/models.py; ``utcnow`` the time
now, as the models and the pipeline write it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


_SQLITE_DATETIME = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


_TEXTS: dict[datetime, str] = {}  # the last UTC times written, and their text
_TEXTS_KEPT = 1024


def _sqlite_utc(value: datetime | None) -> str | None:
    """A time's text, as SQLAlchemy's DATETIME writes it on SQLite. A request's rows carry the
    same few times over and over (its creation, its events', its deliveries'): two thirds of
    a pipeline batch's times were written a moment before, so the last UTC ones' text is
    kept. Only UTC's: two times in one zone that differ only by ``fold`` (an hour that
    repeats when clocks go back) are equal to Python, but are not the same instant."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # less its "+00:00"
    text = _TEXTS.get(value)
    if text is None:
        text = value.isoformat(" ", "microseconds")[:26]
        if len(_TEXTS) >= _TEXTS_KEPT:
            _TEXTS.clear()
        _TEXTS[value] = text
    return text


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def bind_processor(self, dialect):
        """On SQLite, the text SQLAlchemy's DATETIME writes (``YYYY-MM-DD HH:MM:SS.ffffff``,
        naive UTC) made in one call: its own fills a format from a dict of seven fields, and
        a pipeline batch writes 22 times per request. Any other storage format, or
        backend, goes through SQLAlchemy as usual."""
        if dialect.name == "sqlite" and getattr(self.impl_instance.dialect_impl(dialect), "_storage_format",
                                                None) == _SQLITE_DATETIME:
            return _sqlite_utc
        return super().bind_processor(dialect)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value
