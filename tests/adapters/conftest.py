"""Twilio stand-in and a Twilio-configured app for the adapters' tests."""

from __future__ import annotations

import pytest

from ..support.chat_apis import GraphApiStandIn
from ..support.twilio import TwilioStandIn, twilio_settings

MESSENGER_PAGE_TOKEN = "test-page-token"


@pytest.fixture
def twilio():
    stand_in = TwilioStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def twilio_app(make_app, twilio):
    return make_app(**twilio_settings(twilio))


@pytest.fixture
def twilio_client(twilio_app):
    return twilio_app.test_client()


@pytest.fixture
def twilio_runtime(twilio_app):
    return twilio_app.extensions["runtime"]


@pytest.fixture
def graph():
    """Meta's Graph API stand-in (Send API, attachments, the page's conversations)."""
    server = GraphApiStandIn(MESSENGER_PAGE_TOKEN).start()
    yield server
    server.stop()
