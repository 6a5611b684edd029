"""Intake while the pipeline works through a backlog (SQLite): a city's worst day is both.

The gateway as in production on SQLite (`gateway serve`: gunicorn 2 × 4, SQLite FULL, a real
redis-server) with pipeline workers (`gateway worker`, RQ) working through a backlog of
replayed messages stored beforehand; signed Twilio SMS webhooks at a fixed offered rate from
wrk meanwhile, and citizens submitting on the API (the path of the web form and the counter,
which answer once the request is made) at ``--forms`` per second. Reported: accepted/s, p50 /
p90 / p99 of the SMS answers and of the submissions', how many messages the pipeline
processed meanwhile, and the check that every answered webhook is stored exactly once.
``--base``: another checkout served the same way, rounds alternated (before / after).

    python -m tests.bench.intake_busy [--rate 200] [--forms 4] [--seconds 15] [--rounds 2] [--workers 1] [--base DIR]

Part of `make bench` (``--only intake``: one round, this checkout, 1 and 2 workers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from .common import BIN, ROOT, fresh_dir, section
from .intake import CHANNELS, Served, checked, count_rows, gateway_env, intact, start_gateway, wrk
from .replay import insert_inbound

BACKLOG = 8_000  # more than the pipeline gets through during a round, on this machine
API_TOKEN = "bench-api-token-0123456789"


def run_busy(rate: float = 200, seconds: int = 15, rounds: int = 2, workers: tuple[int, ...] = (1,),
             base: Path | None = None, backlog: int = BACKLOG, forms: float = 4) -> list[dict]:
    """One dict per round, target and number of pipeline workers."""
    from tests.support.servers import RedisServer, free_port

    folder = fresh_dir("intake-busy")
    redis = RedisServer(folder).start()
    targets: list[tuple[str, Served, str, dict]] = []
    found: list[dict] = []
    try:
        for index, (label, code) in enumerate([("gateway", None)] + ([("base", base)] if base else [])):
            (folder / label).mkdir()
            url = f"sqlite:///{folder / label / 'gateway.db'}"
            redis_url = f"{redis.url.rsplit('/', 1)[0]}/{index}"  # each its own queue
            served = start_gateway(url, redis_url, free_port(), folder / label, code=code.resolve() if code else None,
                                   extra={"GATEWAY_API_TOKEN": API_TOKEN})
            env = {**os.environ, **gateway_env(url, redis_url, served.port, folder / label), "GATEWAY_LOG_LEVEL": "WARNING",
                   "PYTHONPATH": str(code.resolve() if code else ROOT)}  # this checkout's code (start_gateway)
            targets.append((label, served, url, env))
        for round_ in range(rounds):
            for count in workers:
                for label, served, url, env in targets:
                    figures = _round(folder, label, served, url, env, count, rate, seconds, backlog, f"{round_}{count}",
                                     forms)
                    found.append(figures)
                    print(f"  round {round_} {label}, {count} pipeline worker{'s' if count > 1 else ''}: "
                          f"{figures['ok_per_s']:.0f}/s of {rate or 'as many as it takes'}/s offered, p50 {figures['p50_ms']:.1f} ms, "
                          f"p90 {figures['p90_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms; pipeline "
                          f"{figures['processed_per_s']:.0f} messages/s meanwhile; {figures['forms']}; {figures['check']}",
                          flush=True)
        return found
    finally:
        for _, served, _, _ in targets:
            served.stop()
        redis.stop()


def _round(folder: Path, label: str, served: Served, url: str, env: dict, count: int, rate: float, seconds: int,
           backlog: int, tag: str, forms: float) -> dict:
    engine = create_engine(url)
    if count:  # (0 workers: the intake alone, for comparison)
        insert_inbound(engine, backlog, tag=f"busy{tag}")
        with engine.connect() as connection:  # the bulk INSERT's WAL, not the first batch's commit, is checkpointed
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    logs = [(folder / label / f"worker-{tag}-{i}.log").open("wb") for i in range(count + 1 if count else 0)]
    pipeline = [subprocess.Popen([str(BIN / "gateway"), command], env=env, cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
                for command, log in [("scheduler", logs[0])] + [("worker", log) for log in logs[1:]]]  # the
    # scheduler hands the stored backlog out to the workers, as after an outage of the queue
    try:
        waiting = _waiting(engine)
        deadline = time.monotonic() + 120
        while count and _waiting(engine) > waiting - 100 and time.monotonic() < deadline:  # the workers are warm and busy
            time.sleep(0.5)
        sms = CHANNELS["twilio_sms"]
        lines = sms.signed(f"http://127.0.0.1:{served.port}", int(rate * seconds * 1.3) + 1000, f"{served.port}{tag}")
        where = "WHERE channel = 'twilio_sms'"
        before, waiting = count_rows(url, "inbound_messages", where), _waiting(engine)
        started = time.monotonic()
        submissions = Submissions(served.port, forms, seconds, tag)
        submissions.start()
        figures = wrk(served.port, sms.path, sms.header, lines, folder, seconds, 64, rate, sms.content_type)
        elapsed = time.monotonic() - started
        submissions.join()
        processed = waiting + (figures["ok"]) - _waiting(engine)  # the backlog's and the new ones
        time.sleep(0.5)  # requests in flight when wrk stopped
        after = count_rows(url, "inbound_messages", where)
    finally:
        for process in pipeline:
            process.terminate()
        for process in pipeline:
            process.wait(timeout=60)
        for log in logs:
            log.close()
        engine.dispose()
    health = intact(url)  # SQLite's quick_check, after the workers have stopped
    return {"target": label, "workers": count, "rate": rate, "ok_per_s": figures["ok_per_s"],
            "p50_ms": figures["p50_us"] / 1000, "p90_ms": figures["p90_us"] / 1000,
            "p99_ms": figures["p99_us"] / 1000, "processed_per_s": processed / elapsed,
            "check": checked(figures, before, after, 64) if health == "ok" else f"database not intact: {health}",
            "forms": submissions.summary(),
            "forms_p50_ms": submissions.quantile(0.5), "forms_max_ms": submissions.quantile(1.0)}


class Submissions(threading.Thread):
    """Citizens submitting on the API at ``per_second``, one at a time, each answered once its
    request is made (or, failing that, with its reserved code): the answers' times."""

    def __init__(self, port: int, per_second: float, seconds: float, tag: str):
        super().__init__(daemon=True)
        self.url, self.per_second, self.seconds, self.tag = f"http://127.0.0.1:{port}/api/v1/requests", per_second, \
            seconds, tag
        self.times: list[float] = []
        self.failed = 0

    def run(self) -> None:
        if not self.per_second:
            return
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        started, sent = time.monotonic(), 0
        with httpx.Client(timeout=30) as client:
            while time.monotonic() - started < self.seconds:
                document = {"channel": "web", "citizen": {"email": f"busy{self.tag}-{sent}@example.org"},
                            "description": f"Nid de poule profond devant le {100 + 2 * sent} chemin des Outardes"}
                began = time.monotonic()
                answer = client.post(self.url, json=document, headers=headers)
                self.times.append((time.monotonic() - began) * 1000)
                self.failed += answer.status_code not in (200, 201, 202)
                sent += 1
                time.sleep(max(0.0, started + sent / self.per_second - time.monotonic()))

    def quantile(self, q: float) -> float | None:
        if not self.times:
            return None
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        if not self.times:
            return "no submissions"
        return (f"{len(self.times)} submissions, p50 {statistics.median(self.times):.0f} ms, "
                f"max {max(self.times):.0f} ms" + (f", {self.failed} failed" if self.failed else ""))


def _waiting(engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT count(*) FROM inbound_messages WHERE state = 'received'")))


def run(results, quick: bool) -> None:
    """`make bench`'s part: one round, this checkout, 1 then 2 pipeline workers."""
    section("intake while the pipeline works through a backlog (SQLite)")
    for figures in run_busy(seconds=8 if quick else 15, rounds=1, workers=(1, 2),
                            backlog=3_000 if quick else BACKLOG):
        label = f"SMS at {figures['rate']:.0f}/s, {figures['workers']} pipeline worker(s) busy"
        results.add("intake busy", f"{label}: accepted", round(figures["ok_per_s"]), "/s")
        results.add("intake busy", f"{label}: p50 / p90 / p99",
                    f"{figures['p50_ms']:.1f} / {figures['p90_ms']:.1f} / {figures['p99_ms']:.1f}", "ms")
        results.add("intake busy", f"{label}: pipeline meanwhile", round(figures["processed_per_s"]), "messages/s")
        results.add("intake busy", f"{label}: API submissions meanwhile, p50 / max",
                    f"{figures['forms_p50_ms'] or 0:.0f} / {figures['forms_max_ms'] or 0:.0f}", "ms")
        results.add("intake busy", f"{label}: every 200 stored exactly once", figures["check"] == "ok", "")
        if figures["check"] != "ok":
            results.note(f"intake busy, {figures['workers']} worker(s): {figures['check']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.intake_busy", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1", help="comma-separated: pipeline workers per run")
    parser.add_argument("--base", type=Path, help="another checkout, served alternately")
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    parser.add_argument("--forms", type=float, default=4, help="API submissions per second meanwhile (0: none)")
    args = parser.parse_args(argv)
    run_busy(args.rate, args.seconds, args.rounds, tuple(int(w) for w in args.workers.split(",")), args.base,
             args.backlog, args.forms)


if __name__ == "__main__":
    main()
