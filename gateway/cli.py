"""The `gateway` command: serve, worker, scheduler, poll-email, db, rules, user, deliveries,
telegram, dashboards, opendata; rules (gateway/cli_rules.py) and privacy (gateway/cli_privacy.py)."""

from __future__ import annotations

import os
import secrets
import sys
import time
from datetime import UTC, datetime

import click

from .settings import load_settings


@click.group()
def main():
    """Citizen request gateway (311)."""


# --- processes ---------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8311, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="gunicorn workers (default: WEB_CONCURRENCY or 2)")
def serve(host: str, port: int, workers: int | None):
    """Apply pending migrations, then serve the gateway with gunicorn."""
    from .cli_rules import check_config

    settings = load_settings()
    check_config(settings)
    _upgrade(settings)
    count = workers or int(os.environ.get("WEB_CONCURRENCY", "2"))
    if not settings.get("GATEWAY_SECRET_KEY"):
        # One key for every worker of this server: a form served by one worker and posted to
        # another must pass its CSRF check, and a signed-in agent must stay signed in.
        os.environ["GATEWAY_SECRET_KEY"] = secrets.token_hex(32)
        click.echo("gateway: GATEWAY_SECRET_KEY is not set; sessions last until this server stops", err=True)

    def load():
        from normalizer.language import warm

        from . import create_app

        app = create_app()
        warm()  # in each worker, before it accepts: the first SMS does not load lingua's models
        return app

    click.echo(f"gateway: serving on http://{host}:{port} ({count} workers)", err=True)
    gunicorn_server(load, server_options(host, port, count)).run()


def server_options(host: str, port: int, workers: int) -> dict:
    """gunicorn's settings for the gateway; the benchmarks serve their bare endpoint with them too."""
    return {"bind": f"{host}:{port}", "workers": workers, "threads": 4, "timeout": 30, "accesslog": "-",
            "control_socket_disable": True}


def gunicorn_server(load, options: dict):
    """A gunicorn application serving what ``load()`` returns, with ``options``."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return load()

    return Server()


@main.command()
@click.option("--burst", is_flag=True, help="stop when the queue is empty")
def worker(burst: bool):
    """Run an RQ worker (needs REDIS_URL), with RQ's scheduler."""
    settings = load_settings()
    if not settings.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run inside `gateway serve`")
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from rq import Queue, SimpleWorker

    from .queue import QUEUE_NAME

    connection = Redis.from_url(str(settings["REDIS_URL"]))
    while True:
        # SimpleWorker: jobs run in this process, no fork per job; the runtime is built once.
        try:
            SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(
                with_scheduler=True, burst=burst
            )
            return
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Redis died or restarted: wait for it instead of exiting; the sweeper re-enqueues
            # whatever its queue lost (tests/faults/test_worker_and_redis_kill.py).
            click.echo(f"gateway worker: Redis unavailable ({type(exc).__name__}), retrying in 1 s", err=True)
            time.sleep(1)


@main.command()
@click.option("--once", is_flag=True, help="one pass, then exit")
def scheduler(once: bool):
    """Periodic work: the sweeper, SLA checks, closing resolved requests, Open311 polling."""
    from . import create_app
    from .scheduler import run_once

    app = create_app({"GATEWAY_INLINE_JOBS": False})
    runtime = app.extensions["runtime"]
    every = float(runtime.settings["GATEWAY_SWEEP_SECONDS"])
    while True:
        run_once(runtime)
        if once:
            return
        time.sleep(every)


@main.command("poll-email")
@click.option("--once", is_flag=True, help="process what is in the mailboxes now, then exit")
def poll_email(once: bool):
    """Read the mailboxes (IMAP_* and config/mailboxes.yaml); each e-mail becomes a request."""
    from .poller_cli import poll_email as run

    run(once)


# --- database ----------------------------------------------------------------------------

@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
def db_upgrade():
    """Apply pending migrations to DATABASE_URL."""
    _upgrade(load_settings())
    click.echo("database is up to date")


def _upgrade(settings) -> None:
    from .db import upgrade

    upgrade(str(settings["DATABASE_URL"]))


def _app():
    """The app for a one-off command on the data (accounts, deliveries, exports), once the
    database's schema is this version's: otherwise a clear error, not a missing table's."""
    from . import create_app
    from .db import schema_behind

    app = create_app({"GATEWAY_INLINE_JOBS": False})
    behind = schema_behind(app.extensions["runtime"].db.engine)
    if behind:
        raise click.ClickException(f"{behind}: run `gateway db upgrade` first (`make run` does it)")
    return app


@main.command("sinks")
def sinks_check():
    """Each department's sinks, and whether their settings and secrets are in place."""
    from adapters.errors import AdapterMisconfiguredError

    from . import create_app

    runtime = create_app({"GATEWAY_INLINE_JOBS": False}).extensions["runtime"]
    bad = 0
    for department in runtime.rules.current.departments.values():
        for target in department.sinks:
            try:
                runtime.sink(target.type).check(target.settings())
                state = "ok"
            except AdapterMisconfiguredError as exc:
                state, bad = f"MISCONFIGURED: {exc}", bad + 1
            click.echo(f"{department.code}\t{target.type}\t{state}")
    click.echo(f"{bad} misconfigured sink(s)")


# --- accounts and deliveries -----------------------------------------------------------------

@main.group()
def user():
    """Staff accounts."""


@user.command("add")
@click.argument("email")
@click.option("--role", required=True)
@click.option("--name", default=None)
@click.option("--department", default=None, help="for --role department: the department (config/departments.yaml)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def user_add(email, role, name, department, password_stdin):
    """Create a staff account."""
    from .auth import add_user

    password = sys.stdin.readline().rstrip("\n") if password_stdin else click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    runtime = _app().extensions["runtime"]
    try:
        created = add_user(runtime, email, role, password, name, department)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"account {created.id} created with role {role}")


@main.group()
def deliveries():
    """The outbox: dead letters and retries."""


@deliveries.command("dead")
def deliveries_dead():
    """List dead deliveries."""
    from sqlalchemy import select

    from .models import Delivery, Request

    runtime = _app().extensions["runtime"]
    with runtime.db.session() as session:
        rows = session.execute(select(Delivery, Request.code).join(Request)
                               .where(Delivery.state == "dead").order_by(Delivery.id)).all()
        for delivery, code in rows:
            click.echo(f"{delivery.id}\t{code}\t{delivery.purpose}:{delivery.target}\t"
                       f"{delivery.attempts} attempts\t{delivery.last_error}")
        click.echo(f"{len(rows)} dead deliveries")


@deliveries.command("retrying")
def deliveries_retrying():
    """List deliveries that failed and wait for their next attempt."""
    from sqlalchemy import select

    from .models import Delivery, Request

    runtime = _app().extensions["runtime"]
    with runtime.db.session() as session:
        rows = session.execute(select(Delivery, Request.code).join(Request).where(
            Delivery.state == "pending", Delivery.attempts > 0).order_by(Delivery.next_attempt_at)).all()
        for delivery, code in rows:
            click.echo(f"{delivery.id}\t{code}\t{delivery.purpose}:{delivery.target}\t{delivery.attempts} attempts\t"
                       f"next {delivery.next_attempt_at:%Y-%m-%d %H:%M:%S}Z\t{delivery.last_error}")
        click.echo(f"{len(rows)} deliveries failing and retrying")


@deliveries.command("retry")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True)
def deliveries_retry(delivery_ids, everything):
    """Send dead deliveries again."""
    from sqlalchemy import select

    from . import outbox
    from .models import Delivery

    runtime = _app().extensions["runtime"]
    if everything:
        with runtime.db.session() as session:
            delivery_ids = session.scalars(select(Delivery.id).where(Delivery.state == "dead")).all()
    done = sum(outbox.retry_dead(runtime, i, "cli") for i in delivery_ids)
    if hasattr(runtime.jobs, "shutdown"):
        runtime.jobs.shutdown()
    click.echo(f"{done} deliveries queued again")


# --- chat channels -----------------------------------------------------------------------------

@main.group()
def telegram():
    """The Telegram bot."""


@telegram.command("set-webhook")
@click.option("--url", default=None, help="public webhook URL (default: GATEWAY_PUBLIC_URL/webhooks/telegram)")
def telegram_set_webhook(url: str | None):
    """Register the webhook with Telegram, with TELEGRAM_SECRET_TOKEN as its secret token."""
    import re

    from adapters.channels.telegram import TelegramChannel
    from adapters.errors import AdapterError

    settings = load_settings()
    secret = str(settings.get("TELEGRAM_SECRET_TOKEN") or "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise click.ClickException("TELEGRAM_SECRET_TOKEN must be 1-256 characters among A-Z a-z 0-9 _ -")
    url = url or str(settings["GATEWAY_PUBLIC_URL"]).rstrip("/") + "/webhooks/telegram"
    try:
        TelegramChannel.from_settings(settings).set_webhook(url, secret)
    except AdapterError as exc:
        raise click.ClickException(f"Telegram refused the webhook: {exc}") from exc
    click.echo(f"Telegram webhook set to {url}")
@main.group()
def dashboards():
    """The dashboards' roll-up of settled days."""


@dashboards.command("refresh")
@click.option("--since", required=True, help="first day to rebuild, YYYY-MM-DD (UTC)")
def dashboards_refresh(since):
    """Rebuild the roll-up from a day on, e.g. after requests were re-categorized."""
    from datetime import date

    from .dashboard import rollup

    try:
        first = date.fromisoformat(since)
    except ValueError as exc:
        raise click.BadParameter(f"dates are written YYYY-MM-DD: {exc}") from exc
    runtime = _app().extensions["runtime"]
    with runtime.db.engine.connect() as connection:
        forgotten = rollup.refresh(connection, first)
    click.echo(f"{forgotten} days will be rebuilt when a dashboard next needs them")


@main.command("opendata")
@click.option("--start", required=True, help="first day, YYYY-MM-DD (UTC)")
@click.option("--end", required=True, help="last day, YYYY-MM-DD (UTC), included")
@click.option("--format", "fmt", type=click.Choice(["csv", "geojson"]), default="csv", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default="-", help="file (default: stdout)")
def opendata(start, end, fmt, output):
    """Write the anonymized open-data export of the requests received in a period."""
    from datetime import date, timedelta

    from .dashboard import opendata as export
    from .dashboard.queries import Filters

    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise click.BadParameter(f"dates are written YYYY-MM-DD: {exc}") from exc
    app = _app()
    begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
    filters = Filters(begin, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1))
    rows = export.export_rows(app.extensions["runtime"], filters, export.precision(app.config))
    with click.open_file(output, "w", encoding="utf-8") as out:
        for chunk in export.csv_stream(rows) if fmt == "csv" else export.geojson_stream(rows):
            out.write(chunk)


def _add_commands() -> None:
    from .cli_privacy import privacy
    from .cli_rules import rules

    main.add_command(rules)
    main.add_command(privacy)


_add_commands()

if __name__ == "__main__":
    main()
