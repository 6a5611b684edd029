"""What the webhooks look up by a provider's id searches an index: Twilio's delivery reports
come for every SMS sent, and a reply to one of the gateway's messages names it by its id.
On a table read whole, each of them would cost more as the outbox grows (SQLite's plan
follows the schema alone, so a small database shows the plan of a large one)."""

from __future__ import annotations

import pytest

from adapters.base import CitizenMessage, Contact
from normalizer import normalize, resolve_citizen
from normalizer.conversation import find_conversation

from ..support.plans import plan, statements_of
from ..support.twilio import load, post

pytestmark = pytest.mark.sqlite_only  # SQLite's query plans


def _plans(runtime, statements, table: str) -> list[str]:
    with runtime.db.engine.connect() as connection:
        return [plan(connection, sql, params) for sql, params in statements if f"FROM {table}" in sql
                or f"JOIN {table}" in sql]


def test_a_delivery_report_finds_its_delivery_by_index(twilio_client, twilio_runtime):
    report = load("twilio_sms", "status__delivered")
    with statements_of(twilio_runtime.db.engine) as statements:
        assert post(twilio_client, report, replace={"sid": "SM" + "0" * 32}).status_code == 204  # not ours
    [steps] = _plans(twilio_runtime, statements, "deliveries")
    assert "USING INDEX ix_deliveries_external_id (external_id=?)" in steps and "SCAN deliveries" not in steps, steps


def test_a_reply_to_one_of_our_messages_finds_it_by_index(runtime):
    message = CitizenMessage(channel="telegram", text="Toujours pas réparé", in_reply_to="telegram:4711:88",
                             contact=Contact(telegram_chat_id="4711"))
    with runtime.db.session() as session:
        normalized = normalize(message, "fr", "CA", "R")
        citizen, _ = resolve_citizen(session, normalized)
        with statements_of(runtime.db.engine) as statements:
            assert find_conversation(session, normalized, citizen) is None
    steps = _plans(runtime, statements, "deliveries") + _plans(runtime, statements, "messages")
    assert len(steps) == 3, steps  # its message in, our message out, our delivery
    assert not any("SCAN messages" in s or "SCAN deliveries" in s for s in steps), steps
