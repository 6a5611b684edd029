"""Dashboard pages against a year of a large city (1 M requests): each must render in < 1 s.

``python -m tests.bench.dashboard [DATABASE_URL] [COUNT]``: generates the data once (kept in
var/bench-dashboard.db, reused while it holds COUNT requests), then times every page and CSV
through the real app (Flask test client: templates, i18n, queries; no network), three runs
after a warm-up, and reports the median. Exit status 1 when a page takes a second or more.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select

from gateway import create_app
from gateway.auth import add_user
from gateway.db import upgrade
from gateway.models import Request, User

from .generate import generate

ROOT = Path(__file__).resolve().parents[2]
LIMIT_SECONDS = 1.0
PAGES = ["/dashboard/", "/dashboard/?by=category", "/dashboard/delays", "/dashboard/recurring",
         "/dashboard/channels", "/dashboard/?unit=week&start={year_ago}", "/dashboard/report?month={last_month}",
         "/dashboard/delays.csv?table=delays_by_category", "/dashboard/?district=centre&department=travaux_publics"]


def prepare(url: str, count: int) -> None:
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        present = connection.scalar(select(func.count()).select_from(Request))
    engine.dispose()
    if present < count:
        print(f"generating {count - present:,} requests into {url} …", file=sys.stderr)
        print(generate(url, count - present, quiet=False), file=sys.stderr)


def run(url: str, count: int) -> list[tuple[str, float]]:
    prepare(url, count)
    app = create_app({"DATABASE_URL": url, "GATEWAY_INLINE_JOBS": False, "GATEWAY_SECRET_KEY": "bench",
                      "WTF_CSRF_ENABLED": False, "GATEWAY_LOG_LEVEL": "WARNING"})
    app.config["WTF_CSRF_ENABLED"] = False
    runtime = app.extensions["runtime"]
    with runtime.db.session() as session:
        exists = session.scalar(select(User.id).where(User.email == "bench@example.org"))
    if exists is None:
        add_user(runtime, "bench@example.org", "manager", "bench-password-1")
    client = app.test_client()
    client.post("/inbox/login", data={"email": "bench@example.org", "password": "bench-password-1"})
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    values = {"year_ago": (now - timedelta(days=364)).date().isoformat(),
              "last_month": (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")}
    from gateway.dashboard import rollup

    with runtime.db.engine.connect() as connection:
        rollup.refresh(connection, (now - timedelta(days=800)).date())
    began = time.perf_counter()
    client.get(PAGES[5].format(**values))
    timings = [("(first year view, building the roll-up of two years)", time.perf_counter() - began)]
    for template in PAGES:
        path = template.format(**values)
        client.get(path)  # warm-up: templates compiled, caches filled
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            response = client.get(path)
            runs.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}")
        timings.append((path, statistics.median(runs)))
    runtime.jobs.shutdown()
    return timings


def main(argv: list[str]) -> int:
    url = argv[0] if argv else f"sqlite:///{ROOT / 'var' / 'bench-dashboard.db'}"
    count = int(argv[1]) if len(argv) > 1 else 1_000_000
    timings = run(url, count)
    print(f"\nDashboards, {count:,} requests, {url.split('://')[0]}: median of 3 (limit {LIMIT_SECONDS:.1f} s)")
    for path, seconds in timings:
        verdict = "    " if not path.startswith("/") else "OK  " if seconds < LIMIT_SECONDS else "SLOW"
        print(f"  {seconds * 1000:7.0f} ms  {verdict}  {path}")
    return 0 if all(seconds < LIMIT_SECONDS for path, seconds in timings if path.startswith("/")) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
