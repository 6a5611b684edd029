"""Variants of the webhook code compared in one process (not part of `make bench`): the CPU one
webhook costs, through ``app.wsgi_app`` called as gunicorn calls it (an environ of its own, no
test client), run after run of N webhooks, the variants in turn and in reverse order every
other round, the bare endpoint once per round. On this shared machine two full runs an hour
apart differ by more than most changes do; runs alternated in one process do not.

    python -m tests.bench.intake --cpu 400 --channel telegram --variants MODULE [MODULE …] [--rounds 12]

A variant is a module with ``apply(app)`` and ``undo(app)`` (module names on PYTHONPATH): what
it changes in the app or its modules while its runs are measured. ``tests.bench.variant_null``
changes nothing: its difference to the code as it is, the noise of the run.
"""

from __future__ import annotations

import importlib
import io
import itertools
import statistics
import sys
import time

from .common import fresh_dir
from .intake import CHANNELS, gateway_env


def environ(path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> dict:
    """A POST's WSGI environ as gunicorn builds it."""
    built = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "", "RAW_URI": path,
             "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8311", "SERVER_PROTOCOL": "HTTP/1.1",
             "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8311",
             "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*", "CONTENT_TYPE": content_type,
             "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
             "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
             "wsgi.version": (1, 0)}
    for name, value in (headers or {}).items():
        built["HTTP_" + name.upper().replace("-", "_")] = value
    return built


def _call(app, environ_: dict, statuses: list) -> None:
    answer = app(environ_, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(answer)
    if hasattr(answer, "close"):
        answer.close()


def compare(channel: str, count: int, rounds: int, names: list[str]) -> dict:
    from gateway.app import create_app
    from gateway.db import upgrade
    from tests.support.servers import RedisServer

    from . import bare_app

    folder = fresh_dir("intake-variants")
    redis = RedisServer(folder).start()
    try:
        url = f"sqlite:///{folder / 'gateway.db'}"
        upgrade(url)
        env = gateway_env(url, redis.url, 8311, folder / "data")
        app = create_app({k: v for k, v in env.items() if k != "WEB_CONCURRENCY"})
        variants = [("as is", None)] + [(name, importlib.import_module(name)) for name in names]
        kind = CHANNELS[channel]
        lines = iter(kind.signed("http://127.0.0.1:8311", 200 + count * rounds * len(variants), "variants"))
        bare_target = f"sqlite-full:{folder / 'bare.db'}"
        bare_app.create_schema(bare_target)
        bare = bare_app.create_bare_app(bare_target)
        statuses: list[str] = []
        hits = itertools.count()

        def gateway_run(n: int) -> float:
            start = time.process_time()
            for signature, body in (next(lines) for _ in range(n)):
                _call(app, environ(kind.path, body.encode(), kind.content_type, {kind.header: signature}), statuses)
            return (time.process_time() - start) / n * 1000

        def bare_run(n: int) -> float:
            start = time.process_time()
            for i in (next(hits) for _ in range(n)):
                _call(bare, environ("/hit", f"MessageSid=b{i}&Body=x".encode(), "application/x-www-form-urlencoded"),
                      statuses)
            return (time.process_time() - start) / n * 1000

        gateway_run(200)  # warm-up: imports, lingua's models, the connections
        bare_run(200)
        cpu: dict[str, list[float]] = {name: [] for name in ["as is", *names, "bare"]}
        for round_ in range(rounds):
            for label, variant in variants if round_ % 2 == 0 else variants[::-1]:
                if variant is not None:
                    variant.apply(app)
                try:
                    cpu[label].append(gateway_run(count))
                finally:
                    if variant is not None:
                        variant.undo(app)
            cpu["bare"].append(bare_run(count))
        if "webhook_push" in app.extensions:
            app.extensions["webhook_push"].flush()
        app.extensions["runtime"].jobs.shutdown()
        app.extensions["database"].engine.dispose()
        refused = sorted({status for status in statuses if not status.startswith("200")})
        assert not refused, f"answers other than 200: {refused}"
        figures = {name: {"mean_ms": round(statistics.mean(runs), 3), "median_ms": round(statistics.median(runs), 3)}
                   for name, runs in cpu.items()}
        for name in names:  # run by run against the code as is, in the same round
            change = [b / a - 1 for a, b in zip(cpu["as is"], cpu[name], strict=True)]
            figures[name]["against_as_is_pct"] = {"mean": round(100 * statistics.mean(change), 1),
                                                  "median": round(100 * statistics.median(change), 1)}
        return {"channel": channel, "requests_per_run": count, "rounds": rounds, "cpu": figures}
    finally:
        redis.stop()
