"""The body of `gateway poll-email`: build the runtime, load the mailboxes, run the pollers."""

from __future__ import annotations

import signal
import threading

import click

from router import ConfigError

from . import jobs
from .mailboxes import load_mailboxes
from .poller import poll_all_once, run_all
from .queue import ImmediateQueue, InlineQueue


def poll_email(once: bool) -> None:
    from . import create_app

    runtime = create_app({"GATEWAY_INLINE_JOBS": not once}).extensions["runtime"]
    try:
        mailboxes = load_mailboxes(runtime.settings)
    except ConfigError as exc:
        raise click.ClickException(f"the mailbox configuration is invalid:\n{exc}") from exc
    if not mailboxes:
        raise click.ClickException("no mailbox configured: set IMAP_HOST, IMAP_USER, IMAP_PASSWORD "
                                   "or list mailboxes in config/mailboxes.yaml")
    if once:
        _once(runtime, mailboxes)
    else:
        _forever(runtime, mailboxes)


def _once(runtime, mailboxes) -> None:
    if isinstance(runtime.jobs, InlineQueue):  # no Redis: process here before exiting
        runtime.jobs.shutdown()
        runtime.jobs = ImmediateQueue(runtime)
    outcome = poll_all_once(runtime, mailboxes)
    jobs.sweep(runtime)  # and what an earlier, interrupted run left stored but unprocessed
    failed = False
    for name, result in outcome.items():
        if isinstance(result, Exception):
            failed = True
            click.echo(f"{name}: failed: {type(result).__name__}: {result}", err=True)
        else:
            click.echo(f"{name}: {result.stored} new, {result.already} already stored, {result.marked} marked"
                       + (" (UIDVALIDITY changed)" if result.uidvalidity_changed else ""))
    runtime.jobs.shutdown()
    if failed:
        raise SystemExit(1)


def _forever(runtime, mailboxes) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"gateway: polling {len(mailboxes)} mailbox(es): {', '.join(m.name for m in mailboxes)}", err=True)
    try:
        run_all(runtime, mailboxes, stop)
    finally:
        runtime.jobs.shutdown()
