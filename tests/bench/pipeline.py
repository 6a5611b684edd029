"""Pipeline: normalize → dedup → route → outbox for replayed real requests, end to end and per step.

The replay generator (``replay.py``) stores N requests (bulk INSERTs; 1 M in a full run); then
worker processes take them through the pipeline for a fixed time, as the RQ workers would
(ids only, the database re-read, durable commits): ``gateway.batch.process_batch`` with
GATEWAY_PIPELINE_BATCH ids at a time (what ``jobs.process_inbound`` runs: one transaction and
one commit per batch, a SAVEPOINT per message), and, for comparison, one message per
transaction (``process_inbound``: what the API and forms run, and what the job ran before batches). Each step is timed inside the
workers by wrapping the functions the pipeline calls; what is left (claim, events, commit) is
reported as "the rest". The CPU time of each worker process is measured too
(``time.process_time``): on a shared machine it is the steadier figure. On SQLite, how long
each batch holds the write lock (webhooks storing messages wait for it) is measured too.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

from sqlalchemy import create_engine, func, select

from .common import fresh_dir, median, peak_rss_mb, section

# Grouped as the issue names them: what each wrapped function belongs to.
STEPS = {
    "parse + normalize": ("normalize",),
    "citizen identity + conversation": ("resolve_citizen", "find_conversation"),
    "route": ("decide",),
    "dedup": ("same_citizen", "cross_citizen"),
    "request rows": ("_create_request",),
    "outbox (sink + acknowledgement)": ("queue_fresh", "add_delivery", "notify"),
}


def _worker(url: str, ids: list[int], seconds: float, batch: int, out) -> None:
    import os

    from gateway import batch as batches  # not ``batch``: the size given is named so
    from gateway import create_app, pipeline
    from normalizer.language import warm

    app = create_app({"DATABASE_URL": url, "GATEWAY_INLINE_JOBS": False, "REDIS_URL": None,
                      "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_SECRET_KEY": "bench"})
    runtime = app.extensions["runtime"]
    spent: Counter = Counter()
    for names in STEPS.values():
        for name in names:
            setattr(pipeline, name, _timed(getattr(pipeline, name), name, spent))
    holds = _watch_write_lock(runtime.db.engine)
    pipeline.process_inbound(runtime, ids[0])  # warm: rules, templates, connections
    warm()  # lingua's models, as the production worker loads them when it starts
    spent.clear()
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    for start in range(1, len(ids), batch):
        chunk = ids[start:start + batch]
        if batch == 1:  # one transaction per message: the API's path, and the job's before batches
            pipeline.process_inbound(runtime, chunk[0])
        else:
            batches.process_batch(runtime, chunk, len(chunk))
        done += len(chunk)
        if time.perf_counter() > deadline:
            break
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    out.put({"done": done, "elapsed": elapsed, "cpu": cpu, "spent": dict(spent),
             "peak_mb": peak_rss_mb(os.getpid()), "holds": holds})


def _watch_write_lock(engine) -> list[float]:
    """Seconds each batch held SQLite's write lock: from its BEGIN IMMEDIATE's return (the
    lock taken, not the wait for it) until its connection went back to the pool (committed).
    Webhooks storing messages wait that long."""
    from sqlalchemy import event

    holds: list[float] = []
    began: list[float] = []

    @event.listens_for(engine, "after_cursor_execute")
    def begin(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("BEGIN IMMEDIATE"):
            began.append(time.perf_counter())

    @event.listens_for(engine, "checkin")
    def released(*args):
        if began:
            holds.append(time.perf_counter() - began.pop())

    return holds


def _timed(function, name: str, spent: Counter):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start

    return timed


def process(url: str, ids: list[int], workers: int, seconds: float, batch: int) -> list[dict]:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as RQ workers are
    out = context.Queue()
    processes = [context.Process(target=_worker, args=(url, ids[i::workers], seconds, batch, out))
                 for i in range(workers)]
    for p in processes:
        p.start()
    reports = [out.get(timeout=seconds + 600) for _ in processes]
    for p in processes:
        p.join()
    return reports


def run(results, quick: bool, requests: int | None, databases: list[str]) -> None:
    from gateway.db import upgrade
    from gateway.settings import DEFAULTS
    from tests.support.servers import PostgresServer

    from .replay import insert_inbound

    section("pipeline: normalize → dedup → route → outbox on replayed Boston requests")
    count = requests or (20_000 if quick else 1_000_000)
    seconds = 20 if quick else 60
    folder = fresh_dir("pipeline")
    # Each run's requests table grows from empty to tens of thousands of rows within a minute,
    # a growth a city's table sees over weeks, with autovacuum (every minute by default)
    # re-analyzing it many times on the way. Checking every second keeps the statistics as
    # current here: with those of the empty table, the plans PostgreSQL caches for dedup's
    # candidate statement read the whole growing table (server CPU per request 3.5 against
    # 1.7 ms, `python -m tests.bench.pipeline --cpu 4000 --postgres`, benchmarks.md).
    postgres = PostgresServer(durable=True, settings={"autovacuum_naptime": "1s"}).start() \
        if "postgres" in databases else None
    try:
        urls = {}
        if "sqlite" in databases:
            urls["sqlite"] = f"sqlite:///{folder / 'gateway.db'}"
        if postgres is not None:
            urls["postgres"] = postgres.url
        for label, url in urls.items():
            upgrade(url)
            engine = create_engine(url)
            started = time.perf_counter()
            ids = insert_inbound(engine, count, tag=label)
            generated = time.perf_counter() - started
            results.add("pipeline", f"{label}: generator, {count:,} stored requests (bulk INSERT)",
                        round(count / generated), "rows/s")
            if label == "postgres":  # what an operator does after a bulk load; else autovacuum does it during the runs
                started = time.perf_counter()
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE")
                results.add("pipeline", "postgres: VACUUM ANALYZE after the bulk load",
                            round(time.perf_counter() - started, 1), "s")
            batch = DEFAULTS["GATEWAY_PIPELINE_BATCH"]
            runs = [(1, 1, 0), (1, batch, 1), (2, batch, 2)]  # workers, batch, quarter of the ids
            for workers, size, quarter in runs:
                share = ids[quarter * len(ids) // 4:(quarter + 1) * len(ids) // 4 if quarter < 2 else None]
                reports = process(url, share, workers, seconds, size)
                _report(results, f"{label}, {workers} worker{'s' if workers > 1 else ''}, "
                        f"{'1 message' if size == 1 else f'batches of {size}'} per transaction", reports)
            _check(results, label, engine)
            engine.dispose()
    finally:
        if postgres is not None:
            postgres.stop()


def _report(results, label: str, reports: list[dict]) -> None:
    done = sum(r["done"] for r in reports)
    elapsed = median([r["elapsed"] for r in reports])
    rate = done / elapsed
    results.add("pipeline", f"{label}: end to end", round(rate, 1), "requests/s")
    results.add("pipeline", f"{label}: a year of New York (2.5 M) would take", round(2_500_000 / rate / 3600, 1), "h")
    spent = Counter()
    for r in reports:
        spent.update(r["spent"])
    per_request = {step: sum(spent.get(n, 0.0) for n in names) / done * 1000 for step, names in STEPS.items()}
    total = sum(r["elapsed"] for r in reports) / done * 1000
    cpu = sum(r["cpu"] for r in reports) / done * 1000
    results.add("pipeline", f"{label}: worker CPU per request", f"{cpu:.2f} ms ({1000 / cpu:,.0f}/s per core)", "")
    for step, ms in per_request.items():
        results.add("pipeline", f"{label}: {step}", f"{ms:.2f} ms ({1000 / ms if ms else 0:,.0f}/s)", "")
    rest = total - sum(per_request.values())
    results.add("pipeline", f"{label}: claim + events + commit (the rest)", f"{rest:.2f} ms ({1000 / rest:,.0f}/s)", "")
    holds = sorted(h for r in reports for h in r.get("holds", []))
    if holds:
        results.add("pipeline", f"{label}: SQLite write lock held per batch, median / p95",
                    f"{median(holds) * 1000:.0f} / {holds[int(len(holds) * 0.95)] * 1000:.0f} ms", "")
    results.add("pipeline", f"{label}: peak RSS per worker", f"{max(r['peak_mb'] or 0 for r in reports):.0f}", "MiB")


def _check(results, label: str, engine) -> None:
    """Every processed message became exactly one request or joined one; nothing doubled."""
    from gateway.models import Delivery, InboundMessage, Request

    with engine.connect() as connection:
        processed = connection.scalar(select(func.count()).select_from(InboundMessage).where(
            InboundMessage.state == "processed"))
        linked = connection.scalar(select(func.count(func.distinct(InboundMessage.id))).where(
            InboundMessage.request_id.is_not(None)))
        requests = connection.scalar(select(func.count()).select_from(Request))
        deliveries = connection.scalar(select(func.count()).select_from(Delivery))
        keys = connection.scalar(select(func.count(func.distinct(Delivery.idempotency_key))))
    results.add("pipeline", f"{label}: processed / requests created / joined", f"{processed:,} / {requests:,} / "
                f"{processed - requests:,}")
    results.add("pipeline", f"{label}: deliveries queued (distinct keys)", f"{deliveries:,} ({keys:,})")
    if linked != processed or keys != deliveries:
        results.note(f"pipeline {label}: {processed - linked} processed without a request, "
                     f"{deliveries - keys} deliveries doubled")


def cpu_in_process(count: int, profile: bool = False, postgres: bool = False, year: int | None = None,
                   warm: int = 0, statements: bool = False, variants: str | None = None) -> None:
    """`python -m tests.bench.pipeline --cpu N`: N replayed messages stored in a fresh SQLite
    database (``--postgres``: a fresh durable PostgreSQL), then ``process_batch`` over them in
    batches of GATEWAY_PIPELINE_BATCH, in this process: its CPU per request (this process's
    only: PostgreSQL's own CPU is not counted), how long each batch held the write lock and
    the CPU spent while holding it (SQLite), and the SQL statements per request
    (``--profile``: cProfile's top). ``--year 1000000 --warm 10000``: the messages are the
    first of a year of 1 M (as dense in time as the full benchmark's), and the first 10,000
    are processed before the measure (the open requests dedup then compares with, as in the
    full benchmark after its first seconds). With ``--postgres``, the server's CPU per request
    (every PostgreSQL process of this machine, from /proc) is printed too; ``--statements``
    adds pg_stat_statements' ten costliest statements of the measured part.

    ``--variants MODULE``: two variants of the code compared in this one process, so that the
    machine's changing speed falls on both alike. MODULE (importable, e.g. from a scratch
    folder on PYTHONPATH) defines ``toggle(variant)``, which puts variant "A" or "B" in place
    (by replacing functions); it is imported before the gateway starts. The batches alternate
    A B B A A B …, and each variant's CPU per request and CPU under the write lock are printed."""
    from tests.support.servers import PostgresServer

    extension = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track_planning": "on"}
    server = PostgresServer(durable=True, settings=extension if statements else None).start() if postgres else None
    try:
        url = server.url if server else f"sqlite:///{fresh_dir('pipeline-cpu') / 'gateway.db'}"
        _cpu_in_process(url, count, profile, year, warm, statements, variants)
    finally:
        if server is not None:
            server.stop()


def _cpu_in_process(url: str, count: int, profile: bool, year: int | None, warm: int, top: bool,
                    variants: str | None) -> None:
    import cProfile
    import importlib
    import pstats

    from sqlalchemy import event

    from gateway import batch, create_app, pipeline
    from gateway.db import upgrade
    from gateway.settings import DEFAULTS
    from normalizer.language import warm as load_languages

    from .replay import insert_inbound

    toggle = importlib.import_module(variants).toggle if variants else None
    upgrade(url)
    engine = create_engine(url)
    if top:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    ids = insert_inbound(engine, warm + count + 1, year=year)
    runtime = create_app({"DATABASE_URL": url, "GATEWAY_INLINE_JOBS": False, "REDIS_URL": None,
                          "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_SECRET_KEY": "bench"}).extensions["runtime"]
    pipeline.process_inbound(runtime, ids[0])  # warm: rules, templates, connections
    load_languages()  # lingua's models, as the production worker loads them when it starts
    size = DEFAULTS["GATEWAY_PIPELINE_BATCH"]
    for start in range(1, warm + 1, size):  # the open requests already there
        batch.process_batch(runtime, ids[start:min(start + size, warm + 1)], size)
    ids = ids[warm:]
    holds = _watch_write_lock(runtime.db.engine)
    locked_cpu: list[float] = []
    statements = [0]

    @event.listens_for(runtime.db.engine, "after_cursor_execute")
    def counted(connection, cursor, statement, parameters, context, executemany):
        statements[0] += 1
        if statement.startswith("BEGIN IMMEDIATE"):
            locked_cpu.append(-time.process_time())

    @event.listens_for(runtime.db.engine, "checkin")
    def released(*args):
        if locked_cpu and locked_cpu[-1] < 0:
            locked_cpu[-1] += time.process_time()

    profiler = cProfile.Profile() if profile else None
    if top:
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT pg_stat_statements_reset()")
    server = _server_cpu() if url.startswith("postgresql") else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    by_variant: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}  # (CPU, CPU under the lock) per batch
    for n, start in enumerate(range(1, len(ids), size)):
        variant = "ABBA"[n % 4]
        if toggle:
            toggle(variant)
        before, spent = len(locked_cpu), time.process_time()
        batch.process_batch(runtime, ids[start:start + size], size)
        by_variant[variant].append((time.process_time() - spent, sum(locked_cpu[before:])))
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    server = _server_cpu() - server if server is not None else None
    lock = (f"write lock held per batch: median {median(holds) * 1000:.0f} ms, CPU while held: median "
            f"{median(locked_cpu) * 1000:.0f} ms; ") if holds else ""
    print(f"{url.split(':')[0]}, {count} requests, batches of {size}: CPU {cpu / count * 1000:.2f} ms per request "
          f"(wall {wall / count * 1000:.2f} ms); "
          f"{lock}{statements[0] / count:.1f} SQL statements per request"
          + (f"; PostgreSQL's CPU {server / count * 1000:.2f} ms per request" if server is not None else ""))
    for variant, spent in by_variant.items() if toggle else ():
        print(f"  variant {variant}: {len(spent)} batches, CPU {sum(c for c, _ in spent) / len(spent) / size * 1000:.3f} "
              f"ms per request; CPU under the write lock per batch: mean {sum(h for _, h in spent) / len(spent) * 1000:.2f}"
              f" ms, median {median([h for _, h in spent]) * 1000:.2f} ms")
    if top:
        _print_statements(engine, count)
    engine.dispose()
    if profiler:
        profiler.dump_stats(fresh_dir("pipeline-profile") / "pipeline.prof")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def _server_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on this machine (the benchmark's
    server is the only one running), from /proc: backends, WAL writer, checkpointer,
    autovacuum."""
    import os
    from pathlib import Path

    ticks = 0
    for process in Path("/proc").iterdir():
        try:
            if process.name.isdigit() and (process / "comm").read_text().startswith("postgres"):
                fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:  # ended meanwhile
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def _print_statements(engine, count: int) -> None:
    with engine.connect() as connection:
        total = connection.exec_driver_sql(
            "SELECT sum(calls), sum(total_exec_time), sum(total_plan_time) FROM pg_stat_statements").one()
        top = connection.exec_driver_sql(
            "SELECT calls, total_exec_time + total_plan_time, rows, "
            "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
            "ORDER BY 2 DESC LIMIT 10").all()
    print(f"pg_stat_statements: {total[0] / count:.1f} executions per request, executing {total[1] / count:.2f} ms "
          f"and planning {total[2] / count:.2f} ms per request; the ten costliest:")
    for calls, spent, rows, query in top:
        print(f"  {calls:>7,} calls {spent / count:6.3f} ms/request {rows:>8,} rows  {query}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.bench.pipeline", description=cpu_in_process.__doc__)
    parser.add_argument("--cpu", type=int, default=1000, help="requests to process in this process")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 40 (cumulative)")
    parser.add_argument("--postgres", action="store_true", help="on a fresh PostgreSQL instead of SQLite")
    parser.add_argument("--year", type=int, help="the messages are the first of a year of this many (default: N)")
    parser.add_argument("--warm", type=int, default=0, help="messages processed before the measure")
    parser.add_argument("--statements", action="store_true", help="with --postgres: pg_stat_statements' top 10")
    parser.add_argument("--variants", metavar="MODULE", help="two variants compared batch by batch: MODULE.toggle")
    arguments = parser.parse_args()
    cpu_in_process(arguments.cpu, arguments.profile, arguments.postgres, arguments.year, arguments.warm,
                   arguments.statements, arguments.variants)
