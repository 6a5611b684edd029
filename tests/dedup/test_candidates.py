"""Which open requests dedup compares a new one with (dedup/index.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from dedup import Report, cross_citizen, load_dedup_rules, stored_keys
from gateway.models import Request, utcnow

from .replay import ROOT

RULES = load_dedup_rules(ROOT / "config")
TEXT = "Gros nid-de-poule devant chez moi, les autos font un écart"
WELLINGTON = (45.4405, -75.7190)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, migrated_sqlite):
    if request.param == "sqlite":
        shutil.copy(migrated_sqlite, tmp_path / "gateway.db")
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    yield engine
    engine.dispose()


def store(session, code, where, address, hours_ago, description=TEXT):
    lat, lon = where
    cell, street = stored_keys(lat, lon, address, RULES)
    session.add(Request(code=code, status="routed", channel="api", category="pothole", description=description,
                        lat=lat, lon=lon, address=address, dedup_cell=cell, dedup_street=street,
                        created_at=utcnow() - timedelta(hours=hours_ago)))


def scatter(session, chance, count, first=0, days=40, now=None):
    """``count`` requests of every category and none, over 400 m around the spot, some on its
    street, some without coordinates, up to ``days`` old."""
    categories = sorted(RULES.categories)
    now = now or utcnow()
    for i in range(first, first + count):
        where = (WELLINGTON[0] + chance.uniform(-0.0018, 0.0018), WELLINGTON[1] + chance.uniform(-0.0025, 0.0025))
        address = chance.choice([f"{100 + 2 * i} rue Wellington", f"{i} rue Bank", None])
        located = where if chance.random() < 0.9 else (None, None)
        cell, street = stored_keys(*located, address, RULES)
        session.add(Request(code=f"R-{i}", status="routed", channel="api",
                            category=chance.choice(categories + [None]), description=TEXT,
                            lat=located[0], lon=located[1], address=address, dedup_cell=cell,
                            dedup_street=street, created_at=now - timedelta(hours=chance.uniform(0, days * 24))))


def new_report(where=WELLINGTON, address="145 Wellington") -> Report:
    return Report(created_at=utcnow(), text=TEXT, category="pothole", lat=where[0], lon=where[1],
                  address=address, language="fr")


def test_a_near_report_is_found_when_newer_ones_crowd_the_cells_around(engine):
    """Ten newer potholes 130 m away share the cells searched around the new one; with room
    for five candidates, the one at the very spot must still be among them."""
    rules = RULES.model_copy(update={"max_candidates": 5})
    with Session(engine) as session:
        store(session, "R-SPOT", WELLINGTON, "145, rue Wellington", hours_ago=5)
        for i in range(10):
            store(session, f"R-FAR-{i}", (WELLINGTON[0], WELLINGTON[1] + 0.00167), f"{20 + i} rue Bank", hours_ago=i / 10)
        session.commit()
        decision = cross_citizen(session, rules, new_report())
    assert decision.action == "link" and decision.master.code == "R-SPOT"
    assert decision.compared == 1  # the ten are beyond the pothole's radius: not compared at all


@pytest.mark.parametrize("off", [0.001, 0.004], ids=["110 m", "445 m"])
def test_a_report_whose_gps_is_off_is_still_found_by_its_address(engine, off):
    """Same house, GPS fix 110 m off (in the cells searched around) or 445 m off (beyond
    them): compared by address, and linked."""
    with Session(engine) as session:
        store(session, "R-OFF", (WELLINGTON[0] + off, WELLINGTON[1]), "145, rue Wellington", hours_ago=2)
        store(session, "R-OTHER", (WELLINGTON[0] + off, WELLINGTON[1]), "12 rue Bank", hours_ago=1)
        session.commit()
        decision = cross_citizen(session, RULES, new_report())
    assert decision.action == "link" and decision.master.code == "R-OFF"
    assert "compared by address" in decision.master.notes and decision.compared == 1


def test_an_uncategorized_report_is_compared_with_each_category_as_far_as_that_one_reaches(engine):
    """Not yet categorized (triage), "the street is not cleared" 300 m from an open snow
    removal complaint (400 m radius) is suggested as its duplicate; a pothole 300 m away
    (40 m) is not compared."""
    text = "La rue Wellington n'est pas déneigée depuis hier, impossible de sortir la voiture"
    with Session(engine) as session:
        for code, category in (("R-SNOW", "snow_removal"), ("R-HOLE", "pothole")):
            lat, lon = WELLINGTON[0] + 0.0027, WELLINGTON[1]  # 300 m north
            cell, _ = stored_keys(lat, lon, None, RULES)
            session.add(Request(code=code, status="routed", channel="api", category=category, description=text,
                                lat=lat, lon=lon, dedup_cell=cell, created_at=utcnow() - timedelta(hours=3)))
        session.commit()
        report = Report(created_at=utcnow(), text=text, category=None, lat=WELLINGTON[0], lon=WELLINGTON[1],
                        language="fr")
        decision = cross_citizen(session, RULES, report)
    assert decision.action == "suggest" and [s.code for s in decision.suggestions] == ["R-SNOW"]
    assert decision.compared == 1


def test_open_requests_all_around_a_cells_corner_are_found(engine):
    """A new pothole a metre from the corner of four grid cells: the eight open ones 35 m
    around it, in each of the four cells, are all compared (the pothole's radius is 40 m);
    those 45 m away are found too far, and those in cells the radius does not reach are
    not read at all."""
    from dedup.geo import CELL_LAT, CELL_LON

    corner = (round(WELLINGTON[0] / CELL_LAT) * CELL_LAT + 0.00001, round(WELLINGTON[1] / CELL_LON) * CELL_LON + 0.00001)
    metre_lat, metre_lon = 1 / 111_195, 1 / (111_195 * 0.7015)
    directions = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]
    with Session(engine) as session:
        for distance in (35, 45, 250):
            for n, (dy, dx) in enumerate(directions):
                scale = distance / (dy * dy + dx * dx) ** 0.5
                where = (corner[0] + dy * scale * metre_lat, corner[1] + dx * scale * metre_lon)
                store(session, f"R-{distance}-{n}", where, None, hours_ago=1 + n)
        session.commit()
        cells = {r.dedup_cell for r in session.query(Request).filter(Request.code.like("R-35-%"))}
        decision = cross_citizen(session, RULES, new_report(where=corner, address=None))
    assert len(cells) == 4  # the eight near ones are spread over the four cells of the corner
    assert decision.compared == 8  # every one within 40 m; none of those 45 m or 250 m away
    assert decision.suggestions and all(s.code.startswith("R-35-") for s in decision.suggestions)


def test_what_a_search_finds_is_exactly_the_rows_its_condition_in_python_matches(engine):
    """``Search.matches`` (the search's condition for one row, used to catch up with the
    requests written after an early search, dedup/early.py) against the statement itself:
    600 requests of every category, and uncategorized ones, scattered over 400 m around,
    some on the report's street, up to 40 days old; reports of several categories and none.
    Every row the statement returns matches, and every row that matches is returned."""
    import random

    from dedup.index import search, searched_columns

    rules = RULES.model_copy(update={"max_candidates": 5000})  # no LIMIT reached: every matching row
    chance = random.Random(311)
    with Session(engine) as session:
        scatter(session, chance, 600)
        session.commit()
        everything = session.connection().execute(select(*searched_columns())).all()
        for category in ["pothole", "snow_removal", "parking", None]:
            for address in ["145 rue Wellington", None]:
                report = Report(created_at=utcnow(), text=TEXT, category=category, lat=WELLINGTON[0],
                                lon=WELLINGTON[1], address=address, language="fr")
                found = search(session.connection(), report, rules)
                matching = {row.id for row in everything if found.matches(row)}
                assert set(found.rows) == matching, (category, address)
                assert len(matching) >= 3  # the comparison is not between two empty sets
