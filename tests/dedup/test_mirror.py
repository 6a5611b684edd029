"""The requests a pipeline worker holds in memory for dedup's search, on SQLite
(dedup/mirror.py): it finds what the statement finds, as the table changes, and when it
cannot be caught up it is loaded again rather than wrong."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dedup import Report, stored_keys
from dedup.early import search_early
from dedup.index import search
from dedup.mirror import Mirror
from gateway.models import OPEN_STATUSES, Request, RequestChange, utcnow

from .test_candidates import RULES, TEXT, WELLINGTON, scatter

REPORTS = [(category, address) for category in ["pothole", "snow_removal", "parking", None]
           for address in ["145 rue Wellington", None]]


def loaded(engine, seed: int, count: int) -> tuple[random.Random, Mirror]:
    """``count`` requests filed, and a mirror loaded with them."""
    chance, mirror = random.Random(seed), Mirror()
    file(engine, chance, count)
    with engine.connect() as connection:
        mirror.catch_up(connection, RULES)
    return chance, mirror


def file(engine, chance, count, first=0, **kwargs) -> None:
    with Session(engine) as session:
        scatter(session, chance, count, first, **kwargs)
        session.commit()


def report(category, address, when=None) -> Report:
    return Report(created_at=when or utcnow(), text=TEXT, category=category, lat=WELLINGTON[0],
                  lon=WELLINGTON[1], address=address, language="fr")


def same_as_the_statement(connection, mirror: Mirror, rules=RULES, when=None) -> int:
    """Every report's search in the mirror against the statement; the rows compared."""
    compared = 0
    for category, address in REPORTS:
        wanted = search(connection, report(category, address, when), rules)
        found = mirror.search(report(category, address, when), rules)
        assert found is not False, "searched by the statement"
        assert found.full == wanted.full, (category, address)
        if not wanted.full:
            assert set(found.rows) == set(wanted.rows), (category, address)
            assert all(tuple(getattr(found.rows[i], c) for c in wanted.rows[i]._mapping) == tuple(wanted.rows[i])
                       for i in found.rows)  # the rows as they are now: status, place, category
        compared += len(wanted.rows)
    return compared


def test_the_mirror_finds_what_the_statement_finds_as_requests_are_filed_changed_and_deleted(engine):
    chance, mirror = random.Random(311), Mirror()
    rules = RULES.model_copy(update={"max_candidates": 5000})  # no LIMIT reached: every matching row
    with Session(engine) as session:
        scatter(session, chance, 600)
        session.commit()
    with engine.connect() as connection:
        mirror.catch_up(connection, rules)
        assert same_as_the_statement(connection, mirror, rules) >= 100
    with Session(engine) as session:  # another worker, an agent, the retention job
        ids = session.scalars(select(Request.id)).all()
        session.execute(update(Request).where(Request.id.in_(ids[:40])).values(status="closed"))
        session.execute(update(Request).where(Request.id.in_(ids[40:80])).values(
            lat=WELLINGTON[0] + 0.05, dedup_cell=stored_keys(WELLINGTON[0] + 0.05, WELLINGTON[1], None, RULES)[0]))
        session.execute(update(Request).where(Request.id.in_(ids[80:120])).values(category="pothole"))
        session.execute(update(Request).where(Request.id.in_(ids[120:160])).values(dedup_street=None, address=None))
        session.execute(delete(Request).where(Request.id.in_(ids[160:200])))
        scatter(session, chance, 100, first=600)
        session.commit()
    with engine.connect() as connection:
        last = mirror.catch_up(connection, rules)
        assert last == connection.scalar(select(RequestChange.id).order_by(RequestChange.id.desc()).limit(1))
        assert same_as_the_statement(connection, mirror, rules) >= 100
        assert not set(ids[160:200]) & set(mirror.rows)


def test_a_search_cut_by_its_limit_is_full_in_the_mirror_too(engine):
    chance, mirror = random.Random(1535), Mirror()
    rules = RULES.model_copy(update={"max_candidates": 8})
    with Session(engine) as session:
        scatter(session, chance, 400)
        session.commit()
    with engine.connect() as connection:
        mirror.catch_up(connection, rules)
        same_as_the_statement(connection, mirror, rules)
        assert mirror.search(report(None, "145 rue Wellington"), rules).full  # and so made again inside the lock


def test_a_log_pruned_past_the_mirror_loads_it_again(engine):
    """Entries the mirror has not applied were pruned (a worker idle while others filed more
    than the log keeps): the requests they named are still found."""
    chance, mirror = loaded(engine, 7, 200)
    file(engine, chance, 200, first=200)
    with Session(engine) as session:
        newest = session.scalar(select(RequestChange.id).order_by(RequestChange.id.desc()).limit(1))
        session.execute(delete(RequestChange).where(RequestChange.id < newest))
        session.commit()
    with engine.connect() as connection:
        mirror.catch_up(connection, RULES)
        same_as_the_statement(connection, mirror)
        assert {f"R-{i}" for i in range(200, 400)} & {row.code for row in mirror.rows.values()}


def test_a_log_begun_again_loads_the_mirror_again(engine):
    """The log emptied, and its ids given again from 1 (a restored copy, a migration run
    again): what the mirror applied no longer says where it stands."""
    chance, mirror = loaded(engine, 8, 300)
    with Session(engine) as session:
        session.execute(delete(RequestChange))
        session.execute(delete(Request).where(Request.id > 100))
        session.commit()
        scatter(session, chance, 150, first=300)  # ids 1 to 150 of the new log: all below the mirror's last
        session.commit()
    with engine.connect() as connection:
        mirror.catch_up(connection, RULES)
        same_as_the_statement(connection, mirror)
        assert {row.code for row in mirror.rows.values()} <= {f"R-{i}" for i in range(100)} | \
            {f"R-{i}" for i in range(300, 450)}


def test_a_report_older_than_the_mirror_holds_is_searched_by_the_statement(engine):
    """Requests filed 60 to 100 days ago are beyond the mirror (30-day windows, and a day);
    a report received 70 days ago (an e-mail stored late, a replay) still finds them."""
    chance, mirror = random.Random(9), Mirror()
    with Session(engine) as session:
        scatter(session, chance, 300, days=40, now=utcnow() - timedelta(days=60))
        scatter(session, chance, 50, first=300, days=1)
        session.commit()
    then = utcnow() - timedelta(days=70)
    with engine.connect() as connection:
        since = mirror.catch_up(connection, RULES)
        assert mirror.search(report("pothole", "145 rue Wellington", then), RULES) is False
        wanted = search(connection, report("pothole", "145 rue Wellington", then), RULES)
        from dedup.early import Since
        early = search_early(connection, report("pothole", "145 rue Wellington", then), RULES, Since(since),
                             OPEN_STATUSES, mirror)
    assert set(early.found.rows) == set(wanted.rows) and len(wanted.rows) >= 5
    assert all(row.created_at >= mirror.horizon for row in mirror.rows.values())


@pytest.mark.parametrize("loaded_with", ["requests", "nothing"])
def test_the_mirror_lets_go_of_requests_older_than_any_search_reaches(engine, loaded_with):
    """As the days go by, requests filed before the longest window (and a day) leave the
    mirror: what it holds stays what a month of requests is; also when it was loaded on a
    new database, before any request was filed."""
    chance, mirror = random.Random(10), Mirror()
    start = utcnow() - timedelta(days=90)
    if loaded_with == "nothing":
        with engine.connect() as connection:
            mirror.catch_up(connection, RULES)
    file(engine, chance, 100, days=2, now=start)
    with engine.connect() as connection:
        mirror.catch_up(connection, RULES)
    assert len(mirror.rows) >= 80
    file(engine, chance, 100, first=100, days=2, now=start + timedelta(days=45))  # a month and a half later
    with engine.connect() as connection:
        mirror.catch_up(connection, RULES)
        assert not {f"R-{i}" for i in range(100)} & {row.code for row in mirror.rows.values()}
        assert len(mirror.rows) >= 80
        same_as_the_statement(connection, mirror, when=start + timedelta(days=45))


def test_a_catching_up_that_fails_halfway_loads_the_mirror_again_next_time(engine):
    chance, mirror = loaded(engine, 11, 200)
    file(engine, chance, 100, first=200)

    class Failing:
        def __init__(self, connection):
            self.connection, self.calls = connection, 0

        def execute(self, *args):
            self.calls += 1
            if self.calls == 2:  # the log read, the bounds not yet
                raise OSError("disk I/O error")
            return self.connection.execute(*args)

    with engine.connect() as connection:
        with pytest.raises(OSError):
            mirror.catch_up(Failing(connection), RULES)
        assert mirror.last is None and not mirror.rows
        mirror.catch_up(connection, RULES)
        same_as_the_statement(connection, mirror)
        assert len({row.code for row in mirror.rows.values()} & {f"R-{i}" for i in range(200, 300)}) >= 60


def test_the_mirror_holds_every_column_the_search_reads():
    from dedup.index import searched_columns
    from dedup.mirror import Held

    assert set(Held.__slots__) == {column.key for column in searched_columns()}
