"""Deliveries: outbox jobs per second through RQ to a local stand-in sink (a real SMTP server).

A few replayed requests go through the pipeline for real; their deliveries (e-mail to the
department, acknowledgement e-mail to the citizen) are cloned into N pending outbox rows with
distinct idempotency keys, enqueued on a real redis-server as the pipeline's job enqueues
them (one job per GATEWAY_DELIVERY_BATCH deliveries), and sent by `gateway worker
--burst` processes (RQ SimpleWorker: jobs run in the worker process, no fork per job) to an
aiosmtpd server on loopback (in this process: it competes with the workers for the cores; it
keeps the raw messages, parsed after the run).
Throughput is N over the time between the first and the last ``delivered_at``, and N over the
time from the first delivery to the exit of the last worker (every queued job done, including
those that found nothing left to send), so worker start-up is not counted. The workers' CPU
(user + system, /proc and wait4) from the first delivery to their exit, per delivery, is the
figure the machine's load does not distort much; each worker's peak RSS is measured too.
Afterwards every row must be delivered and the SMTP server must hold N messages with N
distinct Message-IDs.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, func, insert, select

from .common import BIN, ROOT, cpu_seconds, fresh_dir, peak_rss_mb, section


def raw_smtp_server():
    """The SMTP stand-in (aiosmtpd on loopback), keeping each message's bytes: the tests'
    server parses every message with the email package (~1 ms of CPU each, on the cores the
    workers need); here they are checked after the run (``distinct_messages``)."""
    from tests.support.servers import SmtpServer

    class RawSmtpServer(SmtpServer):
        async def handle_DATA(self, server, session, envelope):
            with self._lock:
                self.messages.append(envelope.content)
            return "250 Message accepted"

    return RawSmtpServer().start()


def distinct_messages(messages: list[bytes]) -> int:
    """Messages with distinct Message-IDs, each a complete MIME message: a message sent
    twice counts once."""
    import email
    from email import policy

    ids = {str(email.message_from_bytes(raw, policy=policy.default)["Message-ID"]) for raw in messages}
    return len(ids - {"None"})


def prepare(url: str, count: int) -> None:
    """N pending deliveries, cloned from the real ones of a few processed requests."""
    from gateway import create_app, pipeline
    from gateway.models import Delivery

    from .replay import insert_inbound

    app = create_app({"DATABASE_URL": url, "GATEWAY_INLINE_JOBS": False, "REDIS_URL": None,
                      "GATEWAY_LOG_LEVEL": "WARNING"})
    runtime = app.extensions["runtime"]
    for inbound_id in insert_inbound(runtime.db.engine, 40, tag="deliveries"):
        pipeline.process_inbound(runtime, inbound_id)
    table = Delivery.__table__
    with runtime.db.engine.begin() as connection:
        # The e-mails only: the replayed rules also route some requests to Slack, which has no
        # stand-in here (its deliveries would go dead at once and distort the rate).
        originals = connection.execute(select(table.c.request_id, table.c.purpose, table.c.target, table.c.settings)
                                       .where(table.c.target.in_(("email_smtp", "email")))).all()
        connection.execute(table.delete())
        rows = [{"request_id": o.request_id, "purpose": o.purpose, "target": o.target, "settings": o.settings,
                 "idempotency_key": f"bench:{i}", "state": "pending", "attempts": 0}
                for i, o in ((i, originals[i % len(originals)]) for i in range(count))]
        for start in range(0, count, 5000):
            connection.execute(insert(table), rows[start:start + 5000])
    runtime.jobs.shutdown()
    runtime.db.engine.dispose()


def enqueue_all(url: str, redis_url: str) -> int:
    """Enqueue the pending deliveries as the pipeline's job does (jobs.enqueue_deliveries: one
    ``deliver_batch`` job per GATEWAY_DELIVERY_BATCH deliveries)."""
    from types import SimpleNamespace

    from gateway import jobs
    from gateway.models import Delivery
    from gateway.queue import RqQueue
    from gateway.settings import DEFAULTS

    engine = create_engine(url)
    with engine.connect() as connection:
        ids = list(connection.scalars(select(Delivery.id).where(Delivery.state == "pending").order_by(Delivery.id)))
    engine.dispose()
    queue = RqQueue(redis_url)
    jobs.enqueue_deliveries(SimpleNamespace(settings=DEFAULTS, jobs=queue), ids)
    queue.shutdown()
    return len(ids)


def work(url: str, redis_url: str, smtp_port: int, workers: int, folder) -> tuple[float, list[float], list, float]:
    """Run ``workers`` burst workers to the end: (wall seconds, peak RSS MiB of each, for each
    worker its CPU seconds (user + system) sampled as [(wall-clock time, CPU)], the last sample
    being the exact total from wait4; wall-clock time when the last one exited)."""
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "SMTP_HOST": "127.0.0.1",
           "SMTP_PORT": str(smtp_port), "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_SECRET_KEY": "bench",
           "GATEWAY_PUBLIC_URL": "http://127.0.0.1:8311", "PYTHONPATH": str(ROOT)}  # for warm_worker
    started = time.monotonic()
    logs = [(folder / f"worker-{i}.log").open("wb") for i in range(workers)]
    processes = [subprocess.Popen([str(BIN / "gateway"), "worker", "--burst"], env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT) for log in logs]
    # VmHWM read while they run: a child's ru_maxrss would count the bench process it was forked
    # from before exec. CPU from wait4's rusage: exact, including the last moments.
    peaks = [0.0] * workers
    status: dict[int, int] = {}
    cpu: list[list[tuple[float, float]]] = [[] for _ in processes]
    ended = 0.0
    while len(status) < workers:
        for i, process in enumerate(processes):
            if i in status:
                continue
            peaks[i] = max(peaks[i], peak_rss_mb(process.pid) or 0.0)
            try:
                cpu[i].append((time.time(), cpu_seconds(process.pid)))
            except (OSError, IndexError):
                pass  # exiting: wait4 gives the total below
            pid, code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                status[i], ended = os.waitstatus_to_exitcode(code), time.time()
                process.returncode = status[i]
                cpu[i].append((ended, usage.ru_utime + usage.ru_stime))
        time.sleep(0.02)
    for log in logs:
        log.close()
    if any(status.values()):
        raise RuntimeError(f"a worker failed; see {folder}")
    return time.monotonic() - started, peaks, cpu, ended


def delivered(url: str) -> tuple[int, datetime | None, float, int]:
    """(delivered rows, first ``delivered_at``, seconds from the first to the last delivery,
    rows not delivered)."""
    from gateway.models import Delivery

    engine = create_engine(url)
    with engine.connect() as connection:
        done, first, last = connection.execute(select(func.count(), func.min(Delivery.delivered_at),
                                                      func.max(Delivery.delivered_at))
                                               .where(Delivery.state == "delivered")).one()
        other = connection.scalar(select(func.count()).select_from(Delivery).where(Delivery.state != "delivered"))
    engine.dispose()
    if isinstance(first, str):  # SQLite without type information in aggregates
        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return done, first, (last - first).total_seconds() if done else 0.0, other


def cpu_after(samples: list[tuple[float, float]], moment: float) -> float:
    """CPU seconds a worker spent after ``moment`` (its start-up and runtime build before)."""
    before = [cpu for at, cpu in samples if at <= moment]
    return samples[-1][1] - (before[-1] if before else 0.0)


def warm_up(redis_url: str, workers: int) -> None:
    """One warm-up job per worker, queued first: each builds its worker's runtime as a first
    job does, then waits for the other workers' (``warm_worker``), so every worker takes exactly
    one (a worker busy with its own cannot take another's) and all start the deliveries at once
    with their runtime built: none is counted. (A plain job per worker let a worker that started
    first take them all; the others then built their runtime during the deliveries.)"""
    from gateway.queue import RqQueue

    queue = RqQueue(redis_url)
    queue.redis.delete(_WARM)
    for _ in range(workers):
        queue.queue.enqueue_call("tests.bench.deliveries.warm_worker", args=(workers,), timeout=300, result_ttl=0)
    queue.shutdown()


_WARM = "bench:deliveries:warm"


def warm_worker(workers: int) -> None:
    """Run by a bench worker (RQ): build its runtime, then wait (up to a minute) until
    ``workers`` workers have built theirs."""
    from rq import get_current_job

    from gateway import jobs

    jobs.rq_entry("fetch_attachment", 0)  # no such attachment: builds the runtime, does nothing
    redis = get_current_job().connection
    redis.incr(_WARM)
    deadline = time.monotonic() + 60
    while int(redis.get(_WARM) or 0) < workers and time.monotonic() < deadline:
        time.sleep(0.005)


def run(results, quick: bool, databases: list[str]) -> None:
    from gateway.db import upgrade
    from tests.support.servers import PostgresServer, RedisServer

    section("deliveries: outbox → RQ SimpleWorker → local SMTP server")
    count = 500 if quick else 2_000
    folder = fresh_dir("deliveries")
    redis = RedisServer(folder).start()
    smtp = raw_smtp_server()
    postgres = PostgresServer(durable=True).start() if "postgres" in databases else None
    try:
        for label in databases:
            for workers in (1, 2):
                if label == "postgres":
                    url = f"{postgres.url.rsplit('/', 1)[0]}/d{workers}"
                    _create_database(postgres, f"d{workers}")
                else:
                    url = f"sqlite:///{folder / f'deliveries-{workers}.db'}"
                upgrade(url)
                prepare(url, count)
                smtp.messages.clear()
                warm_up(redis.url, workers)
                queued = enqueue_all(url, redis.url)
                own = time.process_time()
                wall, peaks, cpu, ended = work(url, redis.url, smtp.port, workers, folder)
                own = time.process_time() - own  # the SMTP stand-in's thread, and this loop's polling
                done, first, span, other = delivered(url)
                began = first.replace(tzinfo=UTC).timestamp() if done else ended
                to_end = ended - began
                name = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
                results.add("deliveries", f"{name}: jobs/s (first to last delivery)", round(done / span, 1), "jobs/s")
                results.add("deliveries", f"{name}: jobs/s (first delivery to last job done)",
                            round(done / to_end, 1), "jobs/s")
                results.add("deliveries", f"{name}: worker CPU per delivery (first delivery to exit)",
                            round(sum(cpu_after(samples, began) for samples in cpu) / done * 1000, 2), "ms")
                results.add("deliveries", f"{name}: bench process CPU per delivery (SMTP stand-in)",
                            round(own / done * 1000, 2), "ms")
                results.add("deliveries", f"{name}: wall time incl. worker start-up", round(wall, 1), "s")
                results.add("deliveries", f"{name}: peak RSS per worker", f"{max(peaks):.0f}", "MiB")
                distinct = distinct_messages(smtp.messages)
                exact = done == queued == len(smtp.messages) == distinct and other == 0
                results.add("deliveries", f"{name}: {queued:,} queued, all delivered once",
                            "yes" if exact else f"NO ({done} delivered, {len(smtp.messages)} e-mails, "
                                                f"{distinct} distinct, {other} left)")
    finally:
        smtp.stop()
        redis.stop()
        if postgres is not None:
            postgres.stop()


def _create_database(postgres, name: str) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")


def cpu_in_process(count: int, database: str | None = None, profile: bool = False) -> None:
    """`python -m tests.bench.deliveries --cpu N [--db postgres|URL] [--profile]`: the CPU of the
    delivery jobs in this process (one thread, no RQ) over N prepared deliveries to a local SMTP
    server, enqueued as the pipeline does (``jobs.enqueue_deliveries``: one ``deliver_batch``
    job per batch): the worker thread's CPU per delivery, the whole process's (with the SMTP
    stand-in's thread), the SQL statements and commits per delivery (``--profile``: cProfile's
    top for the worker thread). ``--db postgres`` starts a throwaway PostgreSQL (fsync on)."""
    import cProfile
    import pstats

    from sqlalchemy import event

    from gateway import create_app, jobs
    from gateway.db import upgrade
    from gateway.models import Delivery

    postgres = None
    if database == "postgres":
        from tests.support.servers import PostgresServer

        postgres = PostgresServer(durable=True).start()
        url = postgres.url
    else:
        url = database or f"sqlite:///{fresh_dir('deliveries-cpu') / 'cpu.db'}"
    try:
        upgrade(url)
        prepare(url, count)
        smtp = raw_smtp_server()
        app = create_app({"DATABASE_URL": url, "GATEWAY_INLINE_JOBS": False, "REDIS_URL": None,
                          "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp.port, "GATEWAY_LOG_LEVEL": "WARNING"})
        runtime = app.extensions["runtime"]
        with runtime.db.engine.connect() as connection:
            ids = list(connection.scalars(select(Delivery.id).order_by(Delivery.id)))
        queued: list[tuple[str, int]] = []
        runtime.jobs.enqueue = lambda job, item_id: queued.append((job, item_id))
        jobs.enqueue_deliveries(runtime, ids)
        counts = {"statements": 0, "commits": 0}

        @event.listens_for(runtime.db.engine, "before_cursor_execute")
        def counted(*args):
            counts["statements"] += 1

        @event.listens_for(runtime.db.engine, "commit")
        def committed(*args):
            counts["commits"] += 1

        profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not waits
        thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        rounds: list[float] = []  # CPU per delivery of each run of 5 jobs (100 deliveries): the machine is
        while queued:  # shared, and the quietest rounds show what the code costs
            before, sent = time.thread_time(), len(smtp.messages)
            for _ in range(5):
                if queued:
                    job, item_id = queued.pop(0)
                    jobs.JOBS[job](runtime, item_id)
            if (sent := len(smtp.messages) - sent) >= 50:
                rounds.append((time.thread_time() - before) / sent)
        if profiler:
            profiler.disable()
        thread, process, wall = time.thread_time() - thread, time.process_time() - process, time.perf_counter() - wall
        with runtime.db.engine.connect() as connection:
            done = connection.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "delivered"))
        smtp.stop()
        runtime.jobs.shutdown()
        runtime.db.engine.dispose()
    finally:
        if postgres is not None:
            postgres.stop()
    n = len(ids)
    print(f"{url.split(':', 1)[0]}: {done}/{n} delivered, {distinct_messages(smtp.messages)} distinct e-mails; "
          f"CPU per delivery: {thread / n * 1000:.2f} ms (this thread), {process / n * 1000:.2f} ms (with the SMTP "
          f"stand-in); {counts['statements'] / n:.2f} SQL statements and {counts['commits'] / n:.2f} commits "
          f"per delivery (SQLAlchemy's count; a SQLite BEGIN is not one); {n / wall:.0f}/s")
    if rounds:
        rounds.sort()
        print(f"  this thread's CPU per delivery over runs of 5 jobs: best {rounds[0] * 1000:.2f} ms, median "
              f"{rounds[len(rounds) // 2] * 1000:.2f} ms ({len(rounds)} runs)")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.bench.deliveries", description=cpu_in_process.__doc__)
    parser.add_argument("--cpu", type=int, default=500, help="deliveries to send in this process")
    parser.add_argument("--db", default=None,
                        help="'postgres' (a throwaway server), a database URL, or a fresh SQLite file (default)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top (the worker thread)")
    arguments = parser.parse_args()
    cpu_in_process(arguments.cpu, arguments.db, arguments.profile)
