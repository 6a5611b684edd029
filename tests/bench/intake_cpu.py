"""Intake CPU harnesses (not part of `make bench`): the CPU one webhook costs, measured in one
process (``cpu_in_process``), through gunicorn at a fixed rate (``served_fixed_rate``), and the
database part alone on PostgreSQL (``database_part``). The steady figures on a shared machine.

    python -m tests.bench.intake --cpu 2000 [--db postgres] [--channel telegram] [--gap 5] [--profile out.prof]
    python -m tests.bench.intake --served 3 [--rate 200] [--base var/base]
    python -m tests.bench.intake --database-part 20
    python -m tests.bench.intake --cpu 400 --channel telegram --variants MODULE [MODULE …] [--rounds 12]

(``python -m tests.bench.intake_cpu`` takes the same options.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .common import fresh_dir
from .intake import CHANNELS, Served, Target, gateway_env, measure, start_bare, start_gateway

# --- CPU per webhook through gunicorn at a fixed rate (not part of `make bench`) --------------------

def served_fixed_rate(rate: float = 200, seconds: int = 6, rounds: int = 3, base: Path | None = None,
                      channel: str = "twilio_sms", workers: int = 1) -> dict:
    """Workers' CPU per stored webhook through `gateway serve` (1 worker, the production gunicorn
    settings, SQLite FULL, RqQueue on a real redis-server) at a fixed offered rate, next to the
    bare endpoint under the same settings (and ``base``, another checkout, if given); targets
    alternated round by round, so the shared machine's load falls on all of them alike.
    ``channel``: an SMS by default; ``workers``: gunicorn's, for the gateways and the bare endpoint.

    ``python -m tests.bench.intake --served 3 [--rate 200] [--base var/base] [--channel telegram]
    [--workers 2]``"""
    from tests.support.servers import RedisServer, free_port

    folder = fresh_dir("intake-served")
    redis = RedisServer(folder).start()
    servers: list[Served] = []
    try:
        targets = []
        for label, code in [("gateway", None)] + ([("base", base)] if base else []):
            url = f"sqlite:///{folder / f'{label}.db'}"
            (folder / label).mkdir()
            served = start_gateway(url, redis.url, free_port(), folder / label, workers=workers,
                                   code=code.resolve() if code else None)
            servers.append(served)
            targets.append(Target(label, served, url, "inbound_messages", f"WHERE channel = '{channel}'",
                                  CHANNELS[channel].path, CHANNELS[channel].header))
        path = folder / "bare.db"
        bare = start_bare(f"sqlite-full:{path}", free_port(), folder, workers=workers)
        servers.append(bare)
        targets.append(Target("bare", bare, f"sqlite:///{path}", "hits", "", "/hit", ""))

        def lines_for(target: Target, count: int, tag: str):
            if target.table == "hits":
                return [("", f"MessageSid={tag}{i}&Body=x") for i in range(count)]
            return CHANNELS[channel].signed(f"http://127.0.0.1:{target.served.port}", count,
                                            f"{target.served.port}{tag}")

        results = _Quiet()
        for target in targets:  # warm-up: imports, lingua's models, pools
            measure(results, target, lines_for, folder, 2, 16, rate, "w")
        cpu: dict[str, list[float]] = {t.label: [] for t in targets}
        for round_ in range(rounds):
            for target in targets:
                figures = measure(results, target, lines_for, folder, seconds, 16, rate, f"r{round_}")
                cpu[target.label].append(round(figures["cpu_ms"], 2))
                print(f"  round {round_} {target.label}: {figures['cpu_ms']:.2f} ms CPU per stored request, "
                      f"{figures['ok_per_s']:.0f}/s, p99 {figures['p99_us'] / 1000:.1f} ms, {figures['check']}",
                      flush=True)
        return {"rate": rate, "seconds": seconds, "cpu_ms": cpu, "notes": results.notes}
    finally:
        for served in servers:
            served.stop()
        redis.stop()


class _Quiet:
    def __init__(self):
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


# --- CPU per webhook in one process (profiling; not part of `make bench`) ------------------------

def cpu_in_process(count: int, database: str = "sqlite", profile: Path | None = None,
                   channel: str = "twilio_sms", gap_ms: float = 0) -> dict:
    """CPU time per signed SMS webhook through the production app (create_app, RqQueue on a real
    redis-server, durable SQLite or PostgreSQL) driven by Flask's test client, next to the bare
    endpoint driven the same way. Same code as `gateway serve` minus gunicorn's HTTP parsing.

    ``gap_ms``: idle time after each request, as between requests arriving at a fixed rate (at
    200/s a worker idles ~4 ms between two): the CPU then runs each request from cold caches.

    ``python -m tests.bench.intake --cpu 2000 [--db postgres] [--channel telegram] [--gap 5] [--profile out.prof]``"""
    import cProfile

    from gateway.app import create_app
    from gateway.db import upgrade
    from tests.support.servers import PostgresServer, RedisServer

    from . import bare_app

    folder = fresh_dir(f"intake-cpu-{database}")
    redis = RedisServer(folder).start()
    postgres = PostgresServer(durable=True).start() if database == "postgres" else None
    try:
        if postgres is not None:
            import psycopg

            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres", autocommit=True) as c:
                c.execute("CREATE DATABASE bare")
                c.execute("CREATE DATABASE gateway")
            url = f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/gateway"
            bare_target = f"postgresql://postgres@127.0.0.1:{postgres.port}/bare"
        else:
            url, bare_target = f"sqlite:///{folder / 'gateway.db'}", f"sqlite-full:{folder / 'bare.db'}"
        upgrade(url)
        public = "http://127.0.0.1:8311"
        env = gateway_env(url, redis.url, 8311, folder / "data")
        app = create_app({k: v for k, v in env.items() if k != "WEB_CONCURRENCY"})
        sms = CHANNELS[channel]
        lines = sms.signed(public, count * (2 if profile else 1) + 200, "cpu")
        client = app.test_client()

        def post(signature: str, body: str):
            answer = client.post(sms.path, data=body, headers={sms.header: signature}, content_type=sms.content_type)
            assert answer.status_code == 200, answer.data
            if gap_ms:
                time.sleep(gap_ms / 1000)

        for signature, body in lines[:200]:  # warm-up: imports, lingua's models, pools
            post(signature, body)
        chunks = []  # CPU per webhook over runs of 100: the best and the median resist the other tenants
        start = time.process_time()
        for at in range(200, 200 + count, 100):
            chunk_start = time.process_time()
            for signature, body in lines[at:min(at + 100, 200 + count)]:
                post(signature, body)
            chunks.append((time.process_time() - chunk_start) / (min(at + 100, 200 + count) - at) * 1000)
        gateway_ms = (time.process_time() - start) / count * 1000
        if profile:  # a second batch under the profiler (CPU time), not counted above
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for signature, body in lines[200 + count:]:
                post(signature, body)
            profiler.disable()
            profiler.dump_stats(str(profile))
        retry_start = time.process_time()
        for signature, body in lines[200:200 + count // 4]:  # provider retries: same MessageSid
            post(signature, body)
        retry_ms = (time.process_time() - retry_start) / (count // 4) * 1000

        bare_app.create_schema(bare_target)
        bare = bare_app.create_bare_app(bare_target).test_client()
        for i in range(200):
            bare.post("/hit", data=f"MessageSid=w{i}&Body=x", content_type="application/x-www-form-urlencoded")
        start = time.process_time()
        for i in range(count):
            bare.post("/hit", data=f"MessageSid=b{i}&Body=x", content_type="application/x-www-form-urlencoded")
            if gap_ms:
                time.sleep(gap_ms / 1000)
        bare_ms = (time.process_time() - start) / count * 1000
        if "webhook_push" in app.extensions:  # the jobs still lingering in the pusher
            app.extensions["webhook_push"].flush()
        app.extensions["runtime"].jobs.shutdown()
        app.extensions["database"].engine.dispose()
        return {"database": database, "channel": channel, "requests": count, "gap_ms": gap_ms, "gateway_cpu_ms": round(gateway_ms, 3),
                "gateway_cpu_ms_best_100": round(min(chunks), 3),
                "gateway_cpu_ms_median_100": round(sorted(chunks)[len(chunks) // 2], 3),
                "gateway_retry_cpu_ms": round(retry_ms, 3), "bare_cpu_ms": round(bare_ms, 3)}
    finally:
        redis.stop()
        if postgres is not None:
            postgres.stop()


def database_part(rounds: int = 20) -> dict:
    """The database part of an SMS webhook on a durable PostgreSQL, thread CPU per webhook over
    runs of 100 (best, median): the production statements (the open-conversation SELECT and
    ``insert_inbound``) through ``gateway.intake.write`` ("intake": its pool, no pre-ping,
    autocommit), interleaved with the same statements the way round 4 ran them ("pinged": the
    main engine's pre-pinged pool, one transaction, commit).
    ``python -m tests.bench.intake --database-part 20``"""
    import statistics
    import types

    import psycopg

    from gateway.db import Database, upgrade
    from gateway.intake import insert_inbound, write
    from gateway.webhooks.twilio import _OPEN_CONVERSATION
    from tests.support.servers import PostgresServer

    postgres = PostgresServer(durable=True).start()
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE gateway")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/gateway"
        upgrade(url)
        database = Database()
        database.init_app(types.SimpleNamespace(config={"DATABASE_URL": url}, extensions={}))
        runtime, sent = types.SimpleNamespace(db=database), iter(range(10**9))

        def work(connection):
            n = next(sent)
            connection.execute(_OPEN_CONVERSATION, {"phone": f"+1514555{n % 100:04d}", "sid": ""}).all()
            return insert_inbound(connection, "twilio_sms", f"SM{n}", b"x" * 700, "application/x-www-form-urlencoded",
                                  {"x-gateway-answered": "acknowledged"}, "R-2026-1234567")

        def pinged():
            with database.engine.connect() as connection:
                work(connection)
                connection.commit()

        ways = {"pinged": pinged, "intake": lambda: write(runtime, work)}
        runs: dict[str, list[float]] = {name: [] for name in ways}
        for way in ways.values():
            for _ in range(200):
                way()
        for _ in range(rounds):
            for name, way in ways.items():
                start = time.thread_time()
                for _ in range(100):
                    way()
                runs[name].append((time.thread_time() - start) * 10)
        database.engine.dispose()
        return {name: {"best_ms": round(min(values), 3), "median_ms": round(statistics.median(values), 3)}
                for name, values in runs.items()}
    finally:
        postgres.stop()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=cpu_in_process.__doc__)
    parser.add_argument("--cpu", type=int, default=2000)
    parser.add_argument("--db", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--channel", default="twilio_sms", choices=sorted(CHANNELS))
    parser.add_argument("--gap", type=float, default=0, help="idle milliseconds between requests (as at a fixed rate)")
    parser.add_argument("--served", type=int, metavar="ROUNDS", help=served_fixed_rate.__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--workers", type=int, default=1, help="with --served: gunicorn's workers")
    parser.add_argument("--base", type=Path, help="with --served: another checkout to serve alternately")
    parser.add_argument("--database-part", type=int, metavar="ROUNDS", help=database_part.__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", metavar="MODULE",
                        help="with --cpu N: variants compared run by run in one process (intake_variants.py)")
    parser.add_argument("--rounds", type=int, default=12, help="with --variants")
    options = parser.parse_args()
    if options.variants:
        from .intake_variants import compare

        print(json.dumps(compare(options.channel, options.cpu, options.rounds, options.variants)))
    elif options.database_part:
        print(json.dumps(database_part(options.database_part)))
    elif options.served:
        print(json.dumps(served_fixed_rate(options.rate, rounds=options.served, base=options.base,
                                              channel=options.channel, workers=options.workers)))
    else:
        print(json.dumps(cpu_in_process(options.cpu, options.db, options.profile, options.channel, options.gap)))


if __name__ == "__main__":
    main()
