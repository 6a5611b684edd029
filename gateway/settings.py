"""Settings, layered: defaults → environment → overrides (tests). Read when an app is made,
never at import time. Secrets come only from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, object] = {
    "DATABASE_URL": f"sqlite:///{ROOT / 'var' / 'gateway.db'}",
    "REDIS_URL": None,  # unset: background jobs run in-process
    "GATEWAY_CONFIG_DIR": str(ROOT / "config"),
    "GATEWAY_DATA_DIR": str(ROOT / "var"),
    "GATEWAY_API_TOKEN": None,  # unset: the JSON API refuses every call
    "GATEWAY_PUBLIC_URL": "http://127.0.0.1:8311",
    "GATEWAY_SECRET_KEY": None,  # unset: a random key per `gateway serve` (sessions do not survive a restart)
    "GATEWAY_REPLY_TO": None,
    "GATEWAY_LOG_LEVEL": "INFO",
    "GATEWAY_SWEEP_SECONDS": 5.0,  # how often pending work is looked for in the database
    "GATEWAY_MAX_ATTEMPTS": 8,  # delivery attempts before the dead letters
    "GATEWAY_BACKOFF_SECONDS": 30.0,  # first retry delay, doubled each attempt, with jitter
    "GATEWAY_LEASE_SECONDS": 120.0,  # a claimed job not finished by then is taken up again
    "GATEWAY_PIPELINE_BATCH": 20,  # inbound messages processed per transaction (one durable commit)
    "GATEWAY_DELIVERY_BATCH": 20,  # deliveries a worker claims at once (gateway/outbox.py)
    "GATEWAY_INLINE_JOBS": True,  # with no REDIS_URL, run jobs in background threads
    "GATEWAY_CLOSE_AFTER_HOURS": 72.0,  # a resolved request is closed this long after
    "GATEWAY_REOPEN_DAYS": 14.0,  # a citizen writing within this after closure reopens it
    "GATEWAY_RETENTION_DAYS": 730.0,  # citizens' personal data kept this long after their last request ended; 0: kept
    "GATEWAY_SLA_WARN_RATIO": 0.8,  # share of the SLA time after which it is "approaching"
    "GATEWAY_OPEN311_POLL_SECONDS": 300.0,  # how often departments' Open311 servers are polled
    "GATEWAY_HTTP_TIMEOUT_SECONDS": 10.0,  # every call to a department's tool gives up after this
    "SLACK_BOT_TOKEN": None,  # unset: Slack deliveries are dead letters marked misconfigured
    "SLACK_SIGNING_SECRET": None,  # unset: Slack buttons are refused (503)
    "SLACK_API_BASE": None,  # tests: a local stand-in (default https://slack.com/api/)
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": 25,
    "SMTP_FROM": "311@bellerive.example.org",
    "SMTP_USER": None,
    "SMTP_PASSWORD": None,
    "SMTP_STARTTLS": False,
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # 1 MB per HTTP request body
    # Chat channels (secrets MESSENGER_* and TELEGRAM_BOT_TOKEN / _SECRET_TOKEN: environment only)
    "GRAPH_API_BASE": "https://graph.facebook.com",
    "GRAPH_API_VERSION": "v21.0",
    "TELEGRAM_API_BASE": "https://api.telegram.org",
    "GATEWAY_CHAT_THREAD_MINUTES": 60.0,  # a chat message this soon after the last one continues it
    "GATEWAY_INBOX_POLL_SECONDS": 10.0,  # how often an open inbox looks for new requests
    "GATEWAY_INBOX_COUNTS_SECONDS": 30.0,  # how long the inbox's per-filter counts are cached
    "GATEWAY_LOGIN_FAILURES": 5,  # failed sign-ins per 15 minutes (per address, per account)
}

_INTS = {"SMTP_PORT", "GATEWAY_MAX_ATTEMPTS", "GATEWAY_PIPELINE_BATCH", "GATEWAY_DELIVERY_BATCH", "MAX_CONTENT_LENGTH",
         "GATEWAY_LOGIN_FAILURES"}
_FLOATS = {"GATEWAY_CHAT_THREAD_MINUTES", "GATEWAY_SWEEP_SECONDS", "GATEWAY_BACKOFF_SECONDS",
           "GATEWAY_LEASE_SECONDS", "GATEWAY_CLOSE_AFTER_HOURS", "GATEWAY_REOPEN_DAYS", "GATEWAY_RETENTION_DAYS",
           "GATEWAY_SLA_WARN_RATIO", "GATEWAY_OPEN311_POLL_SECONDS", "GATEWAY_HTTP_TIMEOUT_SECONDS",
           "GATEWAY_INBOX_POLL_SECONDS", "GATEWAY_INBOX_COUNTS_SECONDS"}
_BOOLS = {"SMTP_STARTTLS", "GATEWAY_INLINE_JOBS"}


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The effective settings. Raises ValueError naming a badly typed variable."""
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for key in DEFAULTS:
        if environ.get(key) not in (None, ""):
            settings[key] = _convert(key, environ[key])
    for key, value in environ.items():  # adapters' own variables (TWILIO_*, SLACK_*, …)
        if key not in settings and key.isupper() and not key.startswith("_"):
            settings.setdefault(key, value)
    settings.update(overrides or {})
    return settings


def _convert(key: str, raw: str):
    try:
        if key in _INTS:
            return int(raw)
        if key in _FLOATS:
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {raw!r}") from exc
    if key in _BOOLS:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw
