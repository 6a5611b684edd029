"""Fixtures of the fault suite: a PostgreSQL database per test, the department's stand-ins,
and the gateway's processes (tests/faults/stack.py)."""

from __future__ import annotations

import json

import pytest

from ..support.standins import TRANSIT_URL, DepartmentWebhook, sample_config
from ..support.twilio import TwilioStandIn, twilio_settings
from ..test_outbox_rq import SECRET
from .stack import Stack


@pytest.fixture
def receiver():
    server = DepartmentWebhook(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def twilio():
    stand_in = TwilioStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def fault_settings(settings, tmp_path, pg_url, redis_server, receiver, twilio) -> dict:
    """Production-like: PostgreSQL, Redis, short leases and sweeps so recovery is quick."""
    folder = sample_config(tmp_path / "config", {TRANSIT_URL: f"{receiver.url}/311/requests"})
    return {**settings, **twilio_settings(twilio), "DATABASE_URL": pg_url, "GATEWAY_CONFIG_DIR": str(folder),
            "REDIS_URL": redis_server.url, "TRANSPORT_WEBHOOK_SECRET": SECRET, "GATEWAY_SWEEP_SECONDS": 1.0,
            "GATEWAY_LEASE_SECONDS": 3.0, "GATEWAY_BACKOFF_SECONDS": 0.5, "GATEWAY_HTTP_TIMEOUT_SECONDS": 5,
            "GATEWAY_MAX_ATTEMPTS": 30}


@pytest.fixture
def stack(fault_settings, tmp_path):
    running = Stack(fault_settings, tmp_path)
    yield running
    running.stop()


def report(name: str, figures: dict) -> None:
    """The figures docs/reliability.md quotes: printed (pytest -s) on one line."""
    print(f"\nFIGURES {name} {json.dumps(figures, sort_keys=True)}")
