"""The ceiling: a bare Flask endpoint that inserts one row and answers.

Served by gunicorn with the gateway's own settings (``gateway.cli.server_options``), it is
the most any Python webhook can do on this machine with the same database and durability:
SQLite in WAL mode with synchronous=FULL (or NORMAL, to show what the fsync costs), or
PostgreSQL with synchronous_commit on; the row is committed before the answer.

Run: ``python -m tests.bench.bare_app TARGET PORT WORKERS`` with TARGET one of
``sqlite-full:PATH``, ``sqlite-normal:PATH``, ``postgresql://…``.
"""

from __future__ import annotations

import sys
import threading

from flask import Flask, Response, request

from gateway.cli import gunicorn_server, server_options

SCHEMA = "CREATE TABLE IF NOT EXISTS hits (id {key}, sid TEXT UNIQUE, body {blob})"


def connect(target: str):
    if target.startswith("postgresql"):
        import psycopg

        return psycopg.connect(target, autocommit=True)
    import sqlite3

    mode, path = target.split(":", 1)
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=" + ("FULL" if mode == "sqlite-full" else "NORMAL"))
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def create_schema(target: str) -> None:
    postgres = target.startswith("postgresql")
    connection = connect(target)
    connection.execute(SCHEMA.format(key="SERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY",
                                     blob="BYTEA" if postgres else "BLOB"))
    connection.close()


def create_bare_app(target: str) -> Flask:
    app = Flask(__name__)
    local = threading.local()
    insert = "INSERT INTO hits (sid, body) VALUES (%s, %s)" if target.startswith("postgresql") else \
        "INSERT INTO hits (sid, body) VALUES (?, ?)"

    @app.post("/hit")
    def hit():
        if not hasattr(local, "db"):
            local.db = connect(target)
        body = request.get_data()
        local.db.execute(insert, (request.form.get("MessageSid"), body))  # autocommit: durable now
        return Response("<Response/>", status=200, mimetype="text/xml")

    return app


def main(argv: list[str]) -> None:
    target, port, workers = argv[0], int(argv[1]), int(argv[2])
    create_schema(target)
    gunicorn_server(lambda: create_bare_app(target), server_options("127.0.0.1", port, workers)).run()


if __name__ == "__main__":
    main(sys.argv[1:])
