"""Time per dedup decision as the backlog grows: 10 k, 100 k and 1 M open requests.

    .venv/bin/python -m tests.bench.dedup_decisions [--sizes 10000,100000,1000000]
        [--decisions 1000] [--postgresql | --url URL] [--quick]

Fills a migrated database (SQLite file under var/bench/; --postgresql: a throwaway local
PostgreSQL cluster started for the run; or the PostgreSQL database at --url) with synthetic open requests spread over the sample city (Bellerive's bounds), its
categories and the last 365 days, inserted in bulk (executemany, not the ORM). Then times
``dedup.cross_citizen`` (the production step: index queries + scoring) for new requests at
random places, and reports median, p99 and max per decision plus the process's peak memory.
The database grows from one size to the next, so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from dedup import Report, cross_citizen, load_dedup_rules, stored_keys
from gateway.db import make_engine, upgrade
from gateway.models import Request

ROOT = Path(__file__).resolve().parents[2]
SOUTH, WEST, NORTH, EAST = 45.40, -75.80, 45.48, -75.64  # config/districts.geojson
PHRASES = [
    "gros nid-de-poule devant le {n}, les autos font un écart", "lampadaire éteint depuis trois soirs",
    "les ordures n'ont pas été ramassées cette semaine", "graffitis sur le mur du dépanneur",
    "voiture abandonnée depuis des semaines, pneus crevés", "fuite d'eau de la bouche à clé",
    "branche tombée sur le trottoir", "musique très forte passé 23 h", "pothole in front of {n}",
    "streetlight out at the corner", "car blocking my driveway", "trottoir glacé, pas sablé",
]
NAMES = ["Wellington", "Principale", "Laurier", "Champlain", "Rideau", "Dalhousie", "des Pins",
         "Cartier", "Frontenac", "Saint-Jean", "des Érables", "du Lac", "King", "Elgin", "Bank",
         "Somerset", "Booth", "Preston", "Bronson", "Lyon"]
STREETS = [f"{name} {i}" if i else name for name in NAMES for i in range(30)]  # 600 streets


def rows(start: int, count: int, now: datetime, categories: list[str], rules, rng: random.Random):
    for i in range(start, start + count):
        lat, lon = rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)
        n = rng.randint(1, 999)
        address = f"{n}, rue {rng.choice(STREETS)}"
        cell, street = stored_keys(lat, lon, address, rules)
        created = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        yield {"code": f"B-{i:07d}", "status": "routed", "kind": "service_request", "priority": "routine",
               "category": rng.choice(categories), "channel": "api", "language": "fr",
               "description": rng.choice(PHRASES).format(n=n), "address": address, "lat": lat, "lon": lon,
               "created_at": created, "updated_at": created, "dedup_cell": cell, "dedup_street": street}


def fill(engine, start: int, count: int, now, categories, rules, rng) -> float:
    began = time.perf_counter()
    batch = []
    with engine.begin() as connection:
        for row in rows(start, count, now, categories, rules, rng):
            batch.append(row)
            if len(batch) == 10_000:
                connection.execute(insert(Request), batch)
                batch = []
        if batch:
            connection.execute(insert(Request), batch)
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE requests"))
    return time.perf_counter() - began


def measure(engine, decisions: int, now, categories, rules, rng, compared: list | None = None) -> list[float]:
    timings = []
    with Session(engine) as session:
        for _ in range(decisions):
            n = rng.randint(1, 999)
            report = Report(created_at=now, text=rng.choice(PHRASES).format(n=n), category=rng.choice(categories),
                            lat=rng.uniform(SOUTH, NORTH), lon=rng.uniform(WEST, EAST),
                            address=f"{n}, rue {rng.choice(STREETS)}", language="fr")
            began = time.perf_counter()
            decision = cross_citizen(session, rules, report)
            timings.append((time.perf_counter() - began) * 1000)
            if compared is not None:
                compared.append(decision.compared)
            session.rollback()  # read-only: nothing kept between decisions
    return timings


def plans(engine, now, categories, rules, rng) -> list[str]:
    """The database's plan for each candidate query of one decision (index use, no scan)."""
    from sqlalchemy import event

    statements = []

    def record(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        measure(engine, 1, now, categories, rules, rng)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    found = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = connection.exec_driver_sql(explain + statement, parameters).all()
                found.append(" / ".join(str(row[-1]) if engine.dialect.name == "sqlite" else str(row[0])
                                        for row in rows))
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPU ({model}), Python {platform.python_version()}, {platform.system()}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.dedup_decisions")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--decisions", type=int, default=1000)
    parser.add_argument("--url", default=None, help="a PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument("--postgresql", action="store_true", help="start a throwaway PostgreSQL cluster")
    parser.add_argument("--quick", action="store_true", help="10 k and 100 k only")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 100_000]
    url, server = args.url, None
    if args.postgresql:
        from tests.support.servers import PostgresServer

        server = PostgresServer().start()
        url = server.url
    try:
        run(url, sizes, args.decisions)
    finally:
        if server is not None:
            server.stop()


def run(url: str | None, sizes: list[int], decisions: int) -> None:
    if url is None:
        path = ROOT / "var" / "bench" / "dedup.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    rules = load_dedup_rules(ROOT / "config")
    categories = sorted(rules.categories)
    rng = random.Random(311)
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    print(f"## Dedup decision time ({engine.dialect.name}) — {machine()}\n")
    print("| open requests | insert time | decisions | candidates scored (mean) | median ms | p99 ms | max ms "
          "| peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    loaded = 0
    for size in sizes:
        took = fill(engine, loaded, size - loaded, now, categories, rules, rng)
        loaded = size
        gc.collect()
        measure(engine, 50, now, categories, rules, rng)  # warm the cache
        compared: list[int] = []
        timings = measure(engine, decisions, now, categories, rules, rng, compared)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {size:,} | {took:.0f} s | {len(timings)} | {statistics.mean(compared):.1f} "
              f"| {statistics.median(timings):.2f} "
              f"| {percentile(timings, 0.99):.2f} | {max(timings):.2f} | {peak:.0f} |", flush=True)
    print(f"\nLoad average during the run: {os.getloadavg()[0]:.1f} (other work on the machine competes for "
          f"its {os.cpu_count()} CPU). Query plans of one decision at {loaded:,}:")
    for plan in plans(engine, now, categories, rules, rng):
        print(f"- {plan}")
    engine.dispose()


if __name__ == "__main__":
    main()
