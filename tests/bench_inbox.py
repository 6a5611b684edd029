"""The inbox with a million requests: how long each page takes (figures in docs/benchmarks.md).

    .venv/bin/python -m tests.bench_inbox [--rows 1000000] [--db /tmp/inbox-1m.db]

Builds (once, then reuses) a migrated SQLite database with ``--rows`` requests spread over
two years — statuses, channels, categories, departments, districts, priorities and SLA dates
in realistic proportions, one citizen in three with an e-mail and a phone — then times the
inbox's pages through the real Flask app with a signed-in agent (median of 5 runs, ms).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway import create_app
from gateway.db import upgrade
from tests.support.staff import PASSWORD, make_user, sign_in

ROOT = Path(__file__).resolve().parent.parent
STREETS = ["rue Wellington", "rue King", "rue Principale", "avenue des Érables", "Maple Avenue", "rue des Pins",
           "boulevard du Lac", "chemin de la Rivière", "rue Notre-Dame", "Elm Street"]
SENTENCES = ["Nid-de-poule profond devant le {n}, {s}", "Lampadaire éteint au {n} {s}",
             "The street light at {n} {s} is out", "Graffiti sur le mur du {n}, {s}",
             "Ordures non ramassées devant le {n} {s}", "Water leaking from the hydrant at {n} {s}",
             "Dead raccoon near {n} {s}", "Déneigement oublié sur {s}", "Arbre tombé sur le trottoir, {n} {s}",
             "Loud music every night at {n} {s}"]
STATUSES = ["closed"] * 55 + ["resolved"] * 20 + ["routed"] * 12 + ["in_progress"] * 8 + ["acknowledged"] * 2 + \
           ["needs_info", "duplicate", "rejected"]
CHANNELS = ["phone"] * 35 + ["web"] * 20 + ["email"] * 15 + ["sms"] * 15 + ["walk_in"] * 5 + ["messenger"] * 5 + \
           ["telegram"] * 3 + ["api"] * 2
FMT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores datetimes in SQLite
PRIORITIES = ["routine"] * 85 + ["urgent"] * 5 + ["deferrable"] * 10


def build(path: Path, rows: int, book) -> None:
    upgrade(f"sqlite:///{path}")
    rng = random.Random(311)
    categories = list(book.categories.values())
    districts = list(book.areas.districts) + [None]
    now = datetime.now(UTC)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    citizens = rows // 3
    db.executemany("INSERT INTO citizens (id, language, preferred_channel, consent, created_at) VALUES (?, 'fr', 'email', 1, ?)",
                   ((i, now.strftime(FMT)) for i in range(1, citizens + 1)))
    db.executemany("INSERT INTO contact_points (citizen_id, kind, value, undeliverable, opted_out, created_at) "
                   "VALUES (?, ?, ?, 0, 0, ?)",
                   (row for i in range(1, citizens + 1) for row in (
                       (i, "email", f"citoyen{i}@example.org", now.strftime(FMT)),
                       (i, "phone", f"+1819{5550000 + i:07d}"[:12], now.strftime(FMT)))))

    def requests():
        for i in range(1, rows + 1):
            category = rng.choice(categories)
            created = now - timedelta(seconds=(rows - i) * (2 * 365 * 86400 / rows) + rng.random())
            status = rng.choice(STATUSES)
            text = rng.choice(SENTENCES).format(n=rng.randint(1, 999), s=rng.choice(STREETS))
            yield (i, f"R-{created.year}-{i:07d}", status, rng.choice(PRIORITIES), category.code, category.department,
                   rng.choice(CHANNELS), "fr", rng.randint(1, citizens) if rng.random() < 0.6 else None, text,
                   rng.choice(districts), created.strftime(FMT), (created + timedelta(hours=category.sla_hours)).strftime(FMT),
                   created.strftime(FMT))

    db.executemany(
        "INSERT INTO requests (id, code, status, priority, category, department, channel, language, citizen_id, "
        "description, district, created_at, sla_due_at, updated_at, kind) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,'service_request')",
        requests())
    db.commit()
    db.execute("ANALYZE")
    db.close()


def timed(client, url: str, runs: int = 5) -> tuple[float, float, str]:
    """(first view, median of the next runs) in ms: the first one counts the matches, the
    next ones find that count in the per-process cache, as an agent turning pages does."""
    samples, body = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        body = response.get_data(as_text=True)
    return samples[0], statistics.median(samples[1:] or samples), body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/inbox-1m.db"))
    args = parser.parse_args()
    settings = {"GATEWAY_CONFIG_DIR": str(ROOT / "config"), "GATEWAY_SECRET_KEY": "bench", "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_INLINE_JOBS": False, "DATABASE_URL": f"sqlite:///{args.db}", "GATEWAY_INBOX_COUNTS_SECONDS": 30}
    if not args.db.exists():
        start = time.perf_counter()
        build(args.db, args.rows, create_app({**settings, "DATABASE_URL": "sqlite://"}).extensions["runtime"].rules.current)
        print(f"built {args.rows:,} requests in {time.perf_counter() - start:.0f} s ({args.db.stat().st_size / 1e6:.0f} MB)")
    app = create_app(settings)
    runtime = app.extensions["runtime"]
    client = app.test_client()
    email = f"bench{int(time.time())}@bellerive.example.org"
    make_user(runtime, "agent", email)
    sign_in(client, email, PASSWORD)

    from gateway.inbox import queries

    start = time.perf_counter()
    with runtime.db.session() as db:
        queries.facet_counts.compute(db)
    print(f"{'per-filter counts, computed (cached 30 s afterwards)':58} {(time.perf_counter() - start) * 1000:8.0f} ms")
    print(f"{'page':58} {'first':>8}    {'again':>8}")
    cases = [
        ("first page, open requests, newest first", "/inbox/"),
        ("first page, all statuses", "/inbox/?status=all"),
        ("most urgent first", "/inbox/?sort=urgent"),
        ("channel = sms", "/inbox/?channel=sms"),
        ("department + priority urgent", "/inbox/?department=travaux_publics&priority=urgent"),
        ("SLA breached", "/inbox/?sla=breached"),
        ("district + category, all statuses", "/inbox/?status=all&district=centre&category=pothole"),
        ("search: tracking code", f"/inbox/?q=R-2026-{args.rows - 10:07d}&status=all"),
        ("search: citizen's e-mail", "/inbox/?q=citoyen4242@example.org&status=all"),
        ("search: citizen's phone", "/inbox/?q=819-555-4242&status=all"),
        ("search: street (common word)", "/inbox/?q=Wellington"),
        ("search: two words", "/inbox/?q=raccoon+Elm&status=all"),
        ("search: word found nowhere (scans everything)", "/inbox/?q=introuvable&status=all"),
        ("poll for new requests", f"/inbox/poll?since={args.rows - 5}"),
    ]
    for label, url in cases:
        first, again, _ = timed(client, url)
        print(f"{label:58} {first:8.0f} ms {again:8.0f} ms")
    url, depth = "/inbox/?status=all", min(200, args.rows // 50 - 1)
    for _ in range(depth):  # deep pages: keyset pagination costs what page 1 costs
        _, _, body = timed(client, url, runs=1)
        url = body.split('rel="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    first, again, _ = timed(client, url)
    print(f"{f'page {depth + 1} of all statuses (keyset)':58} {first:8.0f} ms {again:8.0f} ms")


if __name__ == "__main__":
    main()
