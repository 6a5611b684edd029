"""A year of a large city's 311 requests, bulk-inserted (Core executemany, not the ORM).

Reusable by every benchmark: ``generate(url, count)`` fills an already migrated database
(SQLite or PostgreSQL) with ``count`` requests spread over the last ``days`` days, shaped
like real 311 data so that the dashboards have something to show:

- channels, categories, districts with realistic weights; snow in winter only;
- acknowledgement, routing and resolution times drawn per category around its SLA
  (about 80 % on time), recent requests still open, a backlog that ages;
- ~7 % duplicates linked to an earlier request of the same category, with followers;
- a few hot spots (one street corner, one category, every week) and a category (graffiti)
  whose volume rises over the last three months;
- acknowledgement deliveries for the channels that answer later (e-mail, SMS, …), most of
  them on the citizen's own channel.

Command line: ``python -m tests.bench.generate sqlite:///var/bench.db 1000000``.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shapely.geometry import Point, shape
from sqlalchemy import create_engine, event, func, insert, select

from gateway.models import Citizen, Delivery, Follower, Request
from router.loader import load_rulebook

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = {"web": 26, "phone": 24, "email": 16, "sms": 12, "walk_in": 5, "open311": 9, "api": 3,
            "messenger": 3, "telegram": 2}
SYNC = {"web", "phone", "walk_in", "open311", "api"}
WEIGHTS = {"pothole": 12, "garbage": 10, "recycling": 7, "streetlight": 6, "snow_removal": 9, "noise": 7,
           "graffiti": 4, "parking": 6, "illegal_dumping": 4, "trees": 4, "bulky_items": 4, "sidewalk": 3,
           "water_leak": 3, "parks": 3, "traffic_signal": 2, "abandoned_vehicle": 2, "animals": 2,
           "permit_info": 2, "service_complaint": 1}
OPEN = ("routed", "in_progress", "needs_info", "acknowledged")
CHUNK = 10_000


def generate(url: str, count: int, days: int = 365, seed: int = 311, end: datetime | None = None,
             config: Path = ROOT / "config", quiet: bool = True) -> dict:
    """Insert ``count`` requests ending at ``end`` (now). Returns counts and seconds taken."""
    rng = random.Random(seed)
    book = load_rulebook(config)
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":  # a throwaway benchmark database: speed over durability
        event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA synchronous=OFF"))
    places = _places(config / "districts.geojson")
    categories = [c for c in WEIGHTS if c in book.categories] or list(book.categories)
    hot_spots = _hot_spots(rng, places, categories)
    began = time.perf_counter()
    with engine.begin() as connection:
        first_id = (connection.scalar(select(func.max(Request.id))) or 0) + 1
        citizens = _citizens(connection, rng, max(10, count // 20))
    counters = {"requests": 0, "followers": 0, "deliveries": 0}
    recent: dict[str, list[tuple[int, datetime]]] = {}
    for offset in range(0, count, CHUNK):
        rows, followers, deliveries = [], [], []
        for i in range(offset, min(count, offset + CHUNK)):
            request_id = first_id + i
            created = start + timedelta(seconds=(end - start).total_seconds() * (i + rng.random()) / count)
            row = _request(rng, book, request_id, created, end, categories, places, hot_spots, recent)
            rows.append(row)
            if row["duplicate_of_id"] and citizens:
                followers.append({"request_id": row["duplicate_of_id"], "citizen_id": rng.choice(citizens),
                                  "created_at": created})
            if row["channel"] not in SYNC and row["acknowledged_at"] is not None:
                deliveries.append(_acknowledgement(rng, row))
        with engine.begin() as connection:
            connection.execute(insert(Request), rows)
            if followers:
                followers = list({(f["request_id"], f["citizen_id"]): f for f in followers}.values())
                connection.execute(insert(Follower).prefix_with("OR IGNORE") if engine.dialect.name == "sqlite"
                                   else insert(Follower), _without_existing(connection, followers))
            if deliveries:
                connection.execute(insert(Delivery), deliveries)
        counters["requests"] += len(rows)
        counters["followers"] += len(followers)
        counters["deliveries"] += len(deliveries)
        if not quiet:
            print(f"\r{counters['requests']:>9,} requests", end="", file=sys.stderr, flush=True)
    engine.dispose()
    counters["seconds"] = round(time.perf_counter() - began, 1)
    return counters


def _places(path: Path) -> list[tuple[str, object, tuple]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return [(f["properties"]["code"], shape(f["geometry"]), shape(f["geometry"]).bounds) for f in document["features"]]


def _point(rng: random.Random, places) -> tuple[str, float, float]:
    code, geometry, (west, south, east, north) = rng.choice(places)
    while True:
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        if geometry.contains(Point(lon, lat)):
            return code, round(lat, 6), round(lon, 6)


def _hot_spots(rng, places, categories) -> list[tuple[str, str, float, float]]:
    spots = []
    for category in ("pothole", "illegal_dumping", "noise", "streetlight")[:len(categories)]:
        district, lat, lon = _point(rng, places)
        spots.append((category if category in categories else categories[0], district, lat, lon))
    return spots


def _category(rng: random.Random, created: datetime, end: datetime, categories: list[str]) -> str:
    weights = []
    for code in categories:
        weight = WEIGHTS.get(code, 1)
        if code == "snow_removal" and created.month not in (11, 12, 1, 2, 3):
            weight = 0.05
        if code == "graffiti" and (end - created).days < 90:
            weight *= 1 + 3 * (1 - (end - created).days / 90)  # rising: for the prevention meeting
        weights.append(weight)
    return rng.choices(categories, weights)[0]


def _request(rng, book, request_id, created, end, categories, places, hot_spots, recent) -> dict:
    if rng.random() < 0.03:
        category, district, lat, lon = rng.choice(hot_spots)
        lat, lon = lat + rng.uniform(-0.0003, 0.0003), lon + rng.uniform(-0.0003, 0.0003)
    else:
        category = _category(rng, created, end, categories)
        district, lat, lon = _point(rng, places)
    spec = book.categories[category]
    channel = rng.choices(list(CHANNELS), list(CHANNELS.values()))[0]
    sla = timedelta(hours=spec.sla_hours)
    routed = created + timedelta(seconds=rng.uniform(0.2, 3))
    if channel in SYNC:
        acknowledged = created
    elif rng.random() < 0.92:
        acknowledged = created + timedelta(seconds=rng.lognormvariate(math.log(90), 1.0))
    else:
        acknowledged = None  # no contact point that can be written to
    resolved = created + sla * rng.lognormvariate(math.log(0.45), 0.7)
    duplicate_of = None
    same = recent.setdefault(category, [])
    if same and rng.random() < 0.07:
        master_id, master_created = rng.choice(same[-50:])
        if (created - master_created).days < 14:
            duplicate_of = master_id
    same.append((request_id, created))
    del same[:-200]
    status, resolved_at, closed_at = _outcome(rng, resolved, end, duplicate_of)
    return {
        "id": request_id, "code": f"R-{created.year}-{request_id:07d}", "status": status,
        "kind": spec.kind, "priority": spec.priority, "category": category, "department": spec.department,
        "channel": channel, "language": "fr" if rng.random() < 0.7 else "en", "citizen_id": None,
        "description": "", "lat": lat if rng.random() < 0.8 else None, "lon": lon, "district": district,
        "duplicate_of_id": duplicate_of, "sla_due_at": created + sla, "created_at": created,
        "updated_at": resolved_at or routed, "acknowledged_at": acknowledged, "routed_at": routed,
        "resolved_at": resolved_at, "closed_at": closed_at, "rule": None, "attributes": None,
    }


def _outcome(rng, resolved: datetime, end: datetime, duplicate_of) -> tuple[str, datetime | None, datetime | None]:
    if duplicate_of is not None:
        return "duplicate", None, None
    if resolved > end:
        return rng.choice(OPEN), None, None
    closed = resolved + timedelta(days=rng.uniform(1, 5))
    if closed > end:
        return "resolved", resolved, None
    return "closed", resolved, closed


def _acknowledgement(rng, row: dict) -> dict:
    own = rng.random() < 0.85
    target = row["channel"] if own else ("email" if row["channel"] != "email" else "sms")
    return {"request_id": row["id"], "purpose": "notify", "target": target, "settings": {"kind": "acknowledgement"},
            "idempotency_key": f"{row['code']}:notify:acknowledgement", "state": "delivered", "attempts": 1,
            "next_attempt_at": row["acknowledged_at"], "created_at": row["created_at"],
            "delivered_at": row["acknowledged_at"]}


def _citizens(connection, rng, count: int) -> list[int]:
    now = datetime.now(UTC)
    first = (connection.scalar(select(func.max(Citizen.id))) or 0) + 1
    connection.execute(insert(Citizen), [{"id": first + i, "name": None, "language": "fr", "consent": True,
                                           "created_at": now} for i in range(count)])
    return list(range(first, first + count))


def _without_existing(connection, followers: list[dict]) -> list[dict]:
    if connection.dialect.name == "sqlite":
        return followers
    keys = {(f["request_id"], f["citizen_id"]) for f in followers}
    taken = set(connection.execute(select(Follower.request_id, Follower.citizen_id).where(
        Follower.request_id.in_({k[0] for k in keys}))).all())
    return [f for f in followers if (f["request_id"], f["citizen_id"]) not in taken]


if __name__ == "__main__":
    from gateway.db import upgrade

    target, size = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    upgrade(target)
    print(generate(target, size, quiet=False))
