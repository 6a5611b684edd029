"""Times are stored in UTC, as the same text whichever way a row is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

from gateway.utc import UTCDateTime

MONTREAL = ZoneInfo("America/Montreal")
TIMES = [
    datetime(2026, 11, 24, 13, 5, 33, 123456, tzinfo=UTC),
    datetime(2026, 11, 24, 13, 5, 33, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 3, 8, 1, 59, 59, 999999, tzinfo=MONTREAL),  # the hour before the spring change
    datetime(2026, 3, 8, 3, 0, tzinfo=MONTREAL),
    datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=MONTREAL),  # the autumn's repeated hour, second time
    datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # a new year in UTC
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year of three digits
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    None,
]


def test_sqlite_text_is_the_one_sqlalchemys_datetime_writes():
    dialect = sqlite.dialect()
    column_type = UTCDateTime().dialect_impl(dialect)  # as SQLAlchemy asks it for its processor
    fast = column_type.bind_processor(dialect)
    usual = TypeDecorator.bind_processor(column_type, dialect)  # the aware value made UTC, then DATETIME's
    assert fast is not None and fast is not usual
    for value in TIMES:
        assert fast(value) == usual(value), value
    assert fast(TIMES[2]) == "2026-03-08 06:59:59.999999"
    assert fast(TIMES[1]) == "2026-11-24 13:05:33.000000"


def test_a_time_written_again_or_one_python_finds_equal_gets_its_own_text():
    """The last times' text is kept: a time written again is the same text, and the hour that
    repeats in autumn (equal to Python in one zone, an hour apart) is not taken for the other."""
    dialect = sqlite.dialect()
    column_type = UTCDateTime().dialect_impl(dialect)
    fast = column_type.bind_processor(dialect)
    first, second = (datetime(2026, 11, 1, 1, 30, fold=fold, tzinfo=MONTREAL) for fold in (0, 1))
    in_utc = [value.astimezone(UTC) for value in (first, second)]
    for value in [*in_utc, first, second, *in_utc, second, first, *TIMES, *reversed(TIMES)]:
        assert fast(value) == TypeDecorator.bind_processor(column_type, dialect)(value), value
    assert [fast(v) for v in (first, second)] == ["2026-11-01 05:30:00.000000", "2026-11-01 06:30:00.000000"]


def test_a_naive_time_is_refused_on_every_path():
    naive = datetime(2026, 11, 24, 13, 5)
    column_type = UTCDateTime().dialect_impl(sqlite.dialect())
    for processor in (column_type.bind_processor(sqlite.dialect()),
                      TypeDecorator.bind_processor(column_type, sqlite.dialect())):
        with pytest.raises(ValueError, match="naive datetime"):
            processor(naive)


def test_a_time_written_is_read_back_the_same(runtime):
    from sqlalchemy import text

    from gateway.models import InboundMessage

    at = datetime(2026, 3, 8, 1, 59, 59, 999999, tzinfo=MONTREAL)
    with runtime.db.session() as session:
        message = InboundMessage(channel="web_form", provider_id="times:1", body=b"{}", received_at=at)
        session.add(message)
        session.commit()
        stored = message.id
    with runtime.db.session() as session:
        assert session.get(InboundMessage, stored).received_at == at
        if runtime.db.engine.dialect.name == "sqlite":
            raw = session.execute(text("SELECT received_at FROM inbound_messages WHERE id = :id"), {"id": stored})
            assert raw.scalar() == "2026-03-08 06:59:59.999999"
