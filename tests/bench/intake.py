"""Intake: signed provider webhooks against the production stack, next to the bare ceiling.

The gateway runs as in production (`gateway serve`: gunicorn, 2 workers × 4 threads) with a
real redis-server (REDIS_URL: each accepted message is enqueued for RQ) on SQLite (WAL,
synchronous=FULL) and on PostgreSQL (fsync on, synchronous_commit on). Next to it, in the
same run, ``bare_app`` (Flask, one INSERT, answer) on the same database, same gunicorn
settings. Load comes from wrk on loopback with pre-signed requests (a distinct MessageSid
each): at saturation, then at a fixed offered rate. After every run the database is counted:
every answered 200 must be a stored row, each provider id exactly once.

Channels: ``CHANNELS`` below. Twilio SMS is measured against every ceiling; Messenger and
Telegram are served by the same gateway process under wrk (saturation and fixed rate, their
own rows counted), and in the in-process CPU harness too (``python -m tests.bench.intake
--cpu N --channel …``, in intake_cpu.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DatabaseError

from .common import (
    BIN,
    ROOT,
    children,
    cpu_seconds,
    fresh_dir,
    median,
    peak_rss_mb,
    section,
    wait_for_http,
)
from .replay import records

LUA = Path(__file__).resolve().parent / "wrk_signed.lua"
TWILIO_TOKEN = "bench-twilio-auth-token"
TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2


# --- channels: how to make N distinct, correctly signed requests ---------------------------------

def bodies() -> list[str]:
    """Real Boston 311 descriptions, one line, at most 300 characters: the messages' texts.
    Those without a word ("????") are left out: the gateway answers them (asking for words)
    and stores nothing, by design, which the count after a run would take for a lost message."""
    from adapters.channels.twilio.sms import has_words

    texts = (r["description"].strip().replace("\n", " ")[:300] for r in records())
    return [t for t in texts if has_words(t)]


@dataclass
class TwilioSms:
    path: str = "/webhooks/twilio/sms"
    header: str = "X-Twilio-Signature"
    table_channel: str = "twilio_sms"
    content_type: str = "application/x-www-form-urlencoded"

    def signed(self, public_url: str, count: int, tag: str) -> list[tuple[str, str]]:
        from twilio.request_validator import RequestValidator
        from werkzeug.datastructures import MultiDict

        validator = RequestValidator(TWILIO_TOKEN)
        texts = bodies()
        rng = random.Random(tag)
        out = []
        for i in range(count):
            sid = f"SM{tag}{i:012d}".ljust(34, "0")[:34]
            params = {"ToCountry": "CA", "ToState": "QC", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
                      "FromZip": "", "SmsSid": sid, "FromState": "QC", "SmsStatus": "received", "FromCity": "",
                      "Body": texts[i % len(texts)], "FromCountry": "CA", "To": "+18195550100",
                      "MessagingServiceSid": "MG790b6bd09f119b54ffb7f03b8841b1c9", "ToZip": "",
                      "NumSegments": "1", "MessageSid": sid, "AccountSid": TWILIO_ACCOUNT,
                      "From": f"+1514{rng.randrange(2000000, 9999999):07d}", "ApiVersion": "2010-04-01"}
            signature = validator.compute_signature(public_url + self.path, MultiDict(params))
            out.append((signature, urlencode(params)))
        return out


MESSENGER_SECRET = "bench-messenger-app-secret"
TELEGRAM_SECRET = "bench-telegram-secret-token"


@dataclass
class Messenger:
    """One text message per webhook (Meta batches several under load; each is stored)."""

    path: str = "/webhooks/messenger"
    header: str = "X-Hub-Signature-256"
    table_channel: str = "messenger"
    content_type: str = "application/json"

    def signed(self, public_url: str, count: int, tag: str) -> list[tuple[str, str]]:
        import hmac

        texts = bodies()
        out = []
        for i in range(count):
            event = {"sender": {"id": f"{5550100 + i % 100}"}, "recipient": {"id": "PAGE_ID"},
                     "timestamp": 1764000000000 + i, "message": {"mid": f"m_{tag}_{i}", "text": texts[i % len(texts)]}}
            body = json.dumps({"object": "page", "entry": [{"id": "PAGE_ID", "time": 1764000000000 + i,
                                                            "messaging": [event]}]})
            out.append(("sha256=" + hmac.new(MESSENGER_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest(), body))
        return out


@dataclass
class Telegram:
    path: str = "/webhooks/telegram"
    header: str = "X-Telegram-Bot-Api-Secret-Token"
    table_channel: str = "telegram"
    content_type: str = "application/json"

    def signed(self, public_url: str, count: int, tag: str) -> list[tuple[str, str]]:
        texts = bodies()
        # update_id unique per tag (a server's runs have distinct tags): a repeated id is a retry
        base = int(hashlib.sha256(tag.encode()).hexdigest()[:10], 16) * 1_000_000
        return [(TELEGRAM_SECRET, json.dumps({"update_id": base + i, "message": {
            "message_id": i, "date": 1764000000 + i, "chat": {"id": 5550100 + i % 100, "type": "private"},
            "from": {"id": 5550100 + i % 100, "is_bot": False, "first_name": "Bench"}, "text": texts[i % len(texts)]}}))
            for i in range(count)]


CHANNELS = {"twilio_sms": TwilioSms(), "messenger": Messenger(), "telegram": Telegram()}


# --- servers -----------------------------------------------------------------------------------

class Served:
    """A gunicorn master started as a subprocess; its workers' peak memory read before stop."""

    def __init__(self, args: list[str], env: dict, port: int, log: Path):
        self.port = port
        self.log = log.open("wb")
        self.process = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_http(f"http://127.0.0.1:{port}/nothing-here", timeout=60)

    def cpu(self) -> float:
        """CPU seconds used so far by the workers: per request, a figure a busy machine does not skew."""
        return sum(cpu_seconds(pid) for pid in children(self.process.pid))

    def worker_peak_mb(self) -> list[float]:
        return [m for m in (peak_rss_mb(pid) for pid in children(self.process.pid)) if m is not None]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def gateway_env(database_url: str, redis_url: str, port: int, data: Path) -> dict:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_SECRET_KEY": "bench", "GATEWAY_DATA_DIR": str(data), "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT, "TWILIO_FROM_NUMBER": "+18195550100", "WEB_CONCURRENCY": "2",
            "MESSENGER_APP_SECRET": MESSENGER_SECRET, "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET}


def start_gateway(database_url: str, redis_url: str, port: int, folder: Path, workers: int = 2,
                  code: Path | None = None, extra: dict | None = None) -> Served:
    """``code``: another checkout of the gateway to serve instead (a base to compare with);
    ``extra``: more settings. The code served is always named on PYTHONPATH: the venv's own
    editable install may point at another checkout (one ``make install`` ran from)."""
    env = {**gateway_env(database_url, redis_url, port, folder), **(extra or {}), "PYTHONPATH": str(code or ROOT)}
    return Served([str(BIN / "gateway"), "serve", "--port", str(port), "--workers", str(workers)],
                  env, port, folder / f"gateway-{port}.log")


def start_bare(target: str, port: int, folder: Path, workers: int = 2) -> Served:
    return Served([str(BIN / "python"), "-m", "tests.bench.bare_app", target, str(port), str(workers)], {}, port,
                  folder / f"bare-{port}.log")


# --- load --------------------------------------------------------------------------------------

def wrk(port: int, path: str, header: str, lines: list[tuple[str, str]], folder: Path, seconds: float,
        connections: int, rate: float = 0, content_type: str = "application/x-www-form-urlencoded") -> dict:
    """One wrk run (1 thread); the figures of its done() as a dict."""
    requests_file = folder / "requests.txt"
    requests_file.write_text("".join(f"{sig}\t{body}\n" for sig, body in lines))
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA),
            f"http://127.0.0.1:{port}{path}", "--", str(requests_file), "1", str(rate), path, header, content_type]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures:\n{done.stdout}\n{done.stderr}")
    figures = json.loads(line[6:])
    seconds_run = figures["duration_us"] / 1e6
    figures["ok"] = figures["requests"] - figures["status_errors"]
    figures["ok_per_s"] = figures["ok"] / seconds_run
    figures["sent_per_s"] = figures["requests"] / seconds_run
    return figures


def count_rows(url: str, table: str, where: str = "") -> tuple[int, int]:
    """(rows, distinct provider ids) in ``table``."""
    column = "sid" if table == "hits" else "provider_id"
    engine = create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(text(f"SELECT count(*), count(DISTINCT {column}) FROM {table} {where}")).one()
    engine.dispose()
    return int(row[0]), int(row[1])


def intact(url: str) -> str | None:
    """SQLite's ``quick_check`` of the database at ``url`` ('ok' when intact); None for
    another database."""
    if not url.startswith("sqlite"):
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = [row[0] for row in connection.exec_driver_sql("PRAGMA quick_check")]
    except DatabaseError as exc:  # too damaged to be checked
        return str(exc.orig)
    finally:
        engine.dispose()
    return "ok" if found == ["ok"] else "; ".join(found[:3])


def checked(figures: dict, before: tuple[int, int], after: tuple[int, int], connections: int) -> str:
    """'ok' when every 200 is stored exactly once; else what is wrong."""
    stored, distinct = after[0] - before[0], after[1] - before[1]
    socket_errors = figures["read"] + figures["write"] + figures["timeout"]
    problems = []
    if figures["wrapped"] > 0:
        problems.append(f"{figures['wrapped']} requests resent (request file too short)")
    if stored != distinct:
        problems.append(f"{stored - distinct} provider ids stored twice")
    if stored < figures["ok"]:
        problems.append(f"{figures['ok'] - stored} acknowledged but not stored")
    if stored > figures["ok"] + connections + socket_errors:
        problems.append(f"{stored - figures['ok']} stored but never answered")
    return "; ".join(problems) or "ok"


# --- the benchmark -----------------------------------------------------------------------------

@dataclass
class Target:
    label: str
    served: Served
    count_url: str  # SQLAlchemy URL to count rows
    table: str
    where: str
    path: str
    header: str
    channel: str | None = None  # a key of CHANNELS; None: the bare endpoint's own requests


def measure(results, target: Target, lines_for, folder: Path, seconds: float, connections: int,
            rate: float, tag: str) -> dict:
    expected = int((rate or 9000) * seconds * 1.3) + 1000
    lines = lines_for(target, expected, tag)
    before, cpu = count_rows(target.count_url, target.table, target.where), target.served.cpu()
    content_type = CHANNELS[target.channel].content_type if target.channel else "application/x-www-form-urlencoded"
    figures = wrk(target.served.port, target.path, target.header, lines, folder, seconds, connections, rate,
                  content_type)
    time.sleep(0.5)  # requests in flight when wrk stopped
    after = count_rows(target.count_url, target.table, target.where)
    figures["cpu_ms"] = (target.served.cpu() - cpu) / max(after[0] - before[0], 1) * 1000
    figures["check"] = checked(figures, before, after, connections)
    if figures["check"] != "ok":
        results.note(f"intake {target.label} run {tag}: {figures['check']}")
    return figures


def run(results, quick: bool, databases: list[str], rounds: int) -> None:
    from tests.support.servers import PostgresServer, RedisServer, free_port

    section("intake: signed Twilio SMS webhooks vs a bare Flask insert")
    folder = fresh_dir("intake")
    seconds, rate_seconds = (5, 5) if quick else (10, 15)
    redis = RedisServer(folder).start()
    postgres = PostgresServer(durable=True).start() if "postgres" in databases else None
    servers: list[Served] = []
    try:
        targets = _targets(databases, folder, redis, postgres, servers, free_port)
        cache: dict[str, list] = {}

        def lines_for(target: Target, count: int, tag: str):
            if target.table == "hits":
                return [("", f"MessageSid={target.label}{tag}{i}&Body=x") for i in range(count)]
            public_url = f"http://127.0.0.1:{target.served.port}"
            return CHANNELS[target.channel].signed(public_url, count, f"{target.served.port}{tag}")

        saturation: dict[str, list[dict]] = {t.label: [] for t in targets}
        for round_ in range(rounds):
            for target in targets:
                saturation[target.label].append(
                    measure(results, target, lines_for, folder, seconds, 16, 0, f"s{round_}"))
        fixed: dict[str, dict] = {}
        for target in targets:
            fixed[target.label] = measure(results, target, lines_for, folder, rate_seconds, 64, 500, "r")
        _report(results, targets, saturation, fixed)
        cache.clear()
    finally:
        for served in servers:
            served.stop()
        redis.stop()
        if postgres is not None:
            postgres.stop()


def _targets(databases, folder, redis, postgres, servers, free_port) -> list[Target]:
    import psycopg

    targets = []

    def add(label, served, url, table, where, path, header, channel=None):
        if served not in servers:
            servers.append(served)
        targets.append(Target(label, served, url, table, where, path, header, channel))

    def add_gateway(database: str, served: Served, url: str) -> None:
        """The same gateway server, once per channel: each run counts its channel's rows."""
        for name, suffix in (("twilio_sms", ""), ("messenger", " messenger"), ("telegram", " telegram")):
            channel = CHANNELS[name]
            add(f"gateway {database}{suffix}", served, url, "inbound_messages",
                f"WHERE channel = '{channel.table_channel}'", channel.path, channel.header, name)

    if "sqlite" in databases:
        for mode in ("full", "normal"):
            path = folder / f"bare-{mode}.db"
            add(f"bare sqlite {mode}", start_bare(f"sqlite-{mode}:{path}", free_port(), folder),
                f"sqlite:///{path}", "hits", "", "/hit", "")
        url = f"sqlite:///{folder / 'gateway.db'}"
        add_gateway("sqlite", start_gateway(url, redis.url, free_port(), folder), url)
    if postgres is not None:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE bare")
            c.execute("CREATE DATABASE gateway")
        base = f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}"
        add("bare postgres", start_bare(f"postgresql://postgres@127.0.0.1:{postgres.port}/bare", free_port(), folder),
            f"{base}/bare", "hits", "", "/hit", "")
        add_gateway("postgres", start_gateway(f"{base}/gateway", redis.url, free_port(), folder), f"{base}/gateway")
    return targets


def _report(results, targets, saturation, fixed) -> None:
    best, cpu = {}, {}
    for target in targets:
        runs = saturation[target.label]
        rate = median([r["ok_per_s"] for r in runs])
        best[target.label] = rate
        cpu[target.label] = median([r["cpu_ms"] for r in runs])
        results.add("intake", f"{target.label}: accepted/s at saturation (median of {len(runs)})", round(rate), "req/s")
        results.add("intake", f"{target.label}: web workers' CPU per stored request",
                    round(median([r["cpu_ms"] for r in runs]), 2), "ms")
        results.add("intake", f"{target.label}: p50 / p99 at saturation",
                    f"{median([r['p50_us'] for r in runs]) / 1000:.1f} / {median([r['p99_us'] for r in runs]) / 1000:.1f}",
                    "ms")
        r = fixed[target.label]
        results.add("intake", f"{target.label}: at 500 req/s offered: achieved", round(r["sent_per_s"]), "req/s")
        results.add("intake", f"{target.label}: at 500 req/s offered: p50 / p99",
                    f"{r['p50_us'] / 1000:.1f} / {r['p99_us'] / 1000:.1f}", "ms")
        results.add("intake", f"{target.label}: every 200 stored exactly once",
                    "yes" if all(x["check"] == "ok" for x in runs + [r]) else "NO")
        found = intact(target.count_url)
        if found is not None:
            results.add("intake", f"{target.label}: database intact (SQLite quick_check)",
                        "yes" if found == "ok" else f"NO: {found}")
        results.add("intake", f"{target.label}: peak RSS per web worker",
                    f"{max(target.served.worker_peak_mb() or [0]):.0f}", "MiB")
    for database in ("sqlite", "postgres"):
        for channel in ("", " messenger", " telegram"):
            name = f"gateway {database}{channel}"
            bares = (f"bare {database}", f"bare {database} full") + ((f"bare {database} normal",) if not channel else ())
            for bare in bares:
                if best.get(name) and best.get(bare):
                    results.add("intake", f"ratio {name} / {bare}", f"{100 * best[name] / best[bare]:.0f}", "%")
                    results.add("intake", f"CPU ratio {bare} / {name}", f"{100 * cpu[bare] / cpu[name]:.0f}", "%")


if __name__ == "__main__":  # the CPU harnesses: tests/bench/intake_cpu.py
    from tests.bench.intake_cpu import main

    main()
