"""A reusable generator of realistic load: real Boston 311 requests replayed, repeated and
shifted in time and space into the sample city, up to 1 M of them.

Request ``i`` is real record ``i % len(records)`` in repetition ``i // len(records)``: the
citizen's own words are kept; the place is moved from Boston into Bellerive's districts (with
a little jitter per repetition, and the house number shifted); the time is spread over one
year in order; about four in five carry a fictional example.org sender (a few hundred
thousand distinct citizens at 1 M, some writing several times), the rest are anonymous.

    from tests.bench.replay import documents, insert_inbound
    ids = insert_inbound(engine, 100_000)      # bulk INSERTs of stored web_form messages

Reads the whole of /work/shared/data/311/ when present, else tests/fixtures/bench/.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

# ../shared/data/311 next to the checkout; a git worktree (/work/wt/<name>) finds the same folder.
SHARED = next((folder / "shared" / "data" / "311" for folder in Path(__file__).resolve().parents[3:]
               if (folder / "shared" / "data" / "311").is_dir()),
              Path(__file__).resolve().parents[3] / "shared" / "data" / "311")
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "bench" / "boston_sample.json"
BOSTON = (-71.20, -70.98, 42.22, 42.40)  # lon min/max, lat min/max of the records
CITY = (-75.795, -75.645, 45.405, 45.475)  # inside Bellerive's districts (config/districts.geojson)
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
CHANNEL = "web_form"


def records() -> list[dict]:
    """The real records with a description, in their original order."""
    files = sorted(SHARED.glob("*.json")) if SHARED.is_dir() else [SAMPLE]
    found = []
    for path in files:
        found += [r for r in json.loads(path.read_text(encoding="utf-8")) if (r.get("description") or "").strip()]
    return found


def _move(lon: float | None, lat: float | None, rng: random.Random) -> tuple[float | None, float | None]:
    if lon is None or lat is None:
        return None, None
    x = (min(max(lon, BOSTON[0]), BOSTON[1]) - BOSTON[0]) / (BOSTON[1] - BOSTON[0])
    y = (min(max(lat, BOSTON[2]), BOSTON[3]) - BOSTON[2]) / (BOSTON[3] - BOSTON[2])
    jitter = 0.0015
    lon = CITY[0] + x * (CITY[1] - CITY[0]) + rng.uniform(-jitter, jitter)
    lat = CITY[2] + y * (CITY[3] - CITY[2]) + rng.uniform(-jitter, jitter)
    return round(min(max(lon, CITY[0]), CITY[1]), 6), round(min(max(lat, CITY[2]), CITY[3]), 6)


def _address(address: str | None, repetition: int) -> str | None:
    if not address:
        return None
    street = address.split(",")[0][:200]
    return re.sub(r"^(\d+)", lambda m: str(int(m.group(1)) + 2 * repetition), street)


def document(record: dict, i: int, count: int, rng: random.Random) -> dict:
    """Request ``i`` of ``count`` as the gateway's own submission document."""
    lon, lat = _move(record.get("long"), record.get("lat"), rng)
    citizen = {}
    if rng.random() < 0.8:
        citizen = {"name": None, "email": f"citizen{rng.randrange(max(count // 3, 1))}@example.org"}
    location = {"lat": lat, "lon": lon, "address": _address(record.get("address"), i)}
    return {"channel": "web", "description": record["description"].strip()[:10_000],
            "citizen": citizen, "location": location}


def documents(count: int, seed: int = 311, year: int | None = None) -> Iterator[tuple[bytes, datetime]]:
    """``count`` (JSON body, received at) pairs, in time order: the first ``count`` of a year
    of ``year`` requests (default: ``count``, the whole year)."""
    base = records()
    rng = random.Random(seed)
    year = max(year or count, 1)
    step = timedelta(days=365) / year
    for i in range(count):
        record = base[i % len(base)]
        body = json.dumps(document(record, i // len(base), year, rng), ensure_ascii=False).encode()
        yield body, YEAR_START + step * i


def insert_inbound(engine: Engine, count: int, batch: int = 5_000, seed: int = 311, tag: str = "gen",
                   year: int | None = None) -> list[int]:
    """Store ``count`` generated messages as received (not yet processed), by bulk INSERTs:
    the first ``count`` of a year of ``year`` (default: ``count``). Returns their ids, in
    order. ``tag`` keeps provider ids unique across calls."""
    from gateway.models import InboundMessage

    table = InboundMessage.__table__
    rows: list[dict] = []
    with engine.begin() as connection:
        first = connection.scalar(select(table.c.id).order_by(table.c.id.desc()).limit(1)) or 0
        for i, (body, received) in enumerate(documents(count, seed, year)):
            rows.append({"channel": CHANNEL, "provider_id": f"{tag}:{seed}:{i}", "body": body,
                         "content_type": "application/json", "headers": {}, "received_at": received,
                         "state": "received", "attempts": 0})
            if len(rows) == batch:
                connection.execute(insert(table), rows)
                rows = []
        if rows:
            connection.execute(insert(table), rows)
        return list(connection.scalars(select(table.c.id).where(table.c.id > first).order_by(table.c.id)))
