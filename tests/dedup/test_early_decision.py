"""Dedup's decision made before SQLite's write lock (dedup/early.py ``Early.decision``): inside
the lock it is the decision a search made there gives. When nothing the search found, or
would find now, changed since, it is the one made before the lock; otherwise it is made again
on the rows as they are now."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from dedup import Report, stored_keys
from dedup.early import before_lock, search_early
from dedup.index import candidates
from dedup.mirror import Mirror
from dedup.scoring import decide
from gateway.models import OPEN_STATUSES, Request, utcnow

from .test_candidates import RULES, TEXT, WELLINGTON, scatter

FAR = (WELLINGTON[0] + 0.05, WELLINGTON[1] + 0.05)  # 6 km away: no search around the spot reaches it
RULES_ALL = RULES.model_copy(update={"max_candidates": 5000})  # no search cut by its LIMIT


def reports() -> list[Report]:
    chance = random.Random(7)
    categories = sorted(RULES.categories) + [None]
    return [Report(created_at=utcnow(), text=TEXT, category=chance.choice(categories),
                   lat=WELLINGTON[0] + chance.uniform(-0.001, 0.001), lon=WELLINGTON[1] + chance.uniform(-0.001, 0.001),
                   address=chance.choice(["145 rue Wellington", None]), language="fr") for _ in range(24)]


def searched_among(engine, seed: int, mirrored: bool) -> list:
    """300 requests filed around the spot; then each report's search and decision, made as a
    batch makes them before the lock (``mirrored``: in a worker's mirror, else by the
    statement)."""
    with Session(engine) as session:
        scatter(session, random.Random(seed), 300)
        session.commit()
    mirror = Mirror() if mirrored else None
    with engine.connect() as connection:
        since = before_lock(connection, mirror, RULES_ALL)
        return [search_early(connection, report, RULES_ALL, since, OPEN_STATUSES, mirror) for report in reports()]


def as_if_searched_inside(session, report: Report):
    return decide(report, candidates(session, report, RULES_ALL, OPEN_STATUSES), RULES_ALL)


def decided_inside(session, searched: list) -> int:
    """Each report's decision inside the batch's transaction, checked against a search made
    there; how many differ from the decision made before the lock."""
    changed = 0
    for early in searched:
        decided = early.decision(session, early.report, RULES_ALL, OPEN_STATUSES)
        assert decided == as_if_searched_inside(session, early.report), early.report
        changed += decided != early.decided
    return changed


def filed(session, where, code: str, category: str = "pothole", address: str | None = None) -> None:
    cell, street = stored_keys(*where, address, RULES_ALL)
    session.add(Request(code=code, status="routed", channel="api", category=category, description=TEXT,
                        lat=where[0], lon=where[1], address=address, dedup_cell=cell, dedup_street=street,
                        created_at=utcnow()))


@pytest.mark.parametrize("mirrored", [True, False], ids=["mirror", "statement"])
def test_writes_elsewhere_leave_the_decision_made_before_the_lock(engine, mirrored):
    searched = searched_among(engine, 311, mirrored)
    assert {early.decided.action for early in searched} >= {"link", "new"}  # decisions worth comparing
    with Session(engine) as session:  # another worker's batch, meanwhile: requests far away
        for i in range(30):
            filed(session, FAR, f"FAR-{i}", address=f"{i} chemin d'Aylmer")
        session.commit()

    with Session(engine) as session:  # the batch's transaction
        assert decided_inside(session, searched) == 0
        assert all(early.decision(session, early.report, RULES_ALL, OPEN_STATUSES) is early.decided  # not made again
                   for early in searched)


def closed(session, ids):
    session.execute(update(Request).where(Request.id.in_(ids)).values(status="closed"))


def moved_away(session, ids):  # an agent corrects their place
    cell, _ = stored_keys(*FAR, None, RULES_ALL)
    session.execute(update(Request).where(Request.id.in_(ids)).values(lat=FAR[0], lon=FAR[1], dedup_cell=cell,
                                                                     dedup_street=None, address=None))


def filed_near(session, ids):
    for i, category in enumerate(sorted(RULES.categories)):
        filed(session, (WELLINGTON[0] + 0.0002, WELLINGTON[1]), f"NEW-{i}", category, "151 rue Wellington")


@pytest.mark.parametrize("mirrored", [True, False], ids=["mirror", "statement"])
@pytest.mark.parametrize("write", [closed, moved_away, filed_near])
def test_writes_near_the_reports_are_seen_as_a_search_inside_the_lock_sees_them(engine, mirrored, write):
    searched = searched_among(engine, 1535, mirrored)
    with Session(engine) as session:  # meanwhile, the requests the reports were most like
        best = {(early.decided.master or early.decided.suggestions[0]).candidate_id for early in searched
                if early.decided.action != "new"}
        write(session, best)
        session.commit()

    with Session(engine) as session:  # the writes change what many reports are decided on
        assert decided_inside(session, searched) >= len(searched) // 3


@pytest.mark.parametrize("mirrored", [True, False], ids=["mirror", "statement"])
def test_a_request_the_batch_wrote_before_a_message_is_seen_by_it(engine, mirrored):
    searched = searched_among(engine, 1535, mirrored)
    with Session(engine) as session:  # the batch's transaction: its first message filed a request at the spot
        filed(session, WELLINGTON, "OWN", None, "145 rue Wellington")
        assert decided_inside(session, searched) >= len(searched) // 3
        session.rollback()
