"""The dedup index and candidate queries on PostgreSQL (production), migrated by Alembic."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from dedup import Report, cross_citizen, load_dedup_rules, stored_keys
from gateway.db import upgrade
from gateway.models import Request, utcnow

from .replay import ROOT


def test_candidates_and_decision_on_postgresql(postgres_server):
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS dedup_test"))
        connection.execute(text("CREATE DATABASE dedup_test"))
    admin.dispose()
    url = postgres_server.url.rsplit("/", 1)[0] + "/dedup_test"
    upgrade(url)
    rules = load_dedup_rules(ROOT / "config")
    engine = create_engine(url)
    now = utcnow()
    try:
        with Session(engine) as session:
            for i, (lat, lon, address, status) in enumerate([
                (45.4405, -75.7190, "145, rue Wellington", "routed"),  # the master
                (45.4470, -75.7190, "610, rue Wellington", "routed"),  # same words, 700 m away
                (None, None, "147 rue Wellington", "resolved"),  # closed: not a candidate
            ]):
                cell, street = stored_keys(lat, lon, address, rules)
                session.add(Request(code=f"R-PG-{i}", status=status, channel="api", category="pothole",
                                    description="Gros nid-de-poule devant chez moi, les autos font un écart",
                                    lat=lat, lon=lon, address=address, dedup_cell=cell, dedup_street=street,
                                    created_at=now - timedelta(hours=i + 1)))
            session.commit()
            report = Report(created_at=now, text="Gros nid-de-poule devant chez moi, les autos font un écart",
                            category="pothole", lat=45.44052, lon=-75.71905, address="145 Wellington",
                            language="fr")
            decision = cross_citizen(session, rules, report)
            assert decision.action == "link" and decision.master.code == "R-PG-0"
            assert decision.compared == 1
            address_only = Report(created_at=now, text=report.text, category="pothole", address="145 Wellington")
            assert cross_citizen(session, rules, address_only).master.code == "R-PG-0"
    finally:
        engine.dispose()
