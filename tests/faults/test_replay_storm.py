"""Every provider webhook fixture delivered 10 times, concurrently and out of order.

The real payloads of tests/fixtures (Twilio SMS/MMS, Messenger, Telegram), each posted 10
times, correctly signed, in a shuffled order by 12 concurrent senders against the app over
real HTTP, with its background jobs running meanwhile. Each Twilio SMS comes from its own
number (so conversation threading does not depend on the order). Then: one stored inbound per
provider id, at most one conversation message per inbound, no request created twice from one
inbound, every redelivery answered as the first delivery was (no 5xx), and every message to a
citizen that the outbox sent reached the provider's API once.

Slack is not a citizen channel: its signed interactions change a request's status and are
covered for replays by tests/test_slack_interactions.py (a thread reply becomes a note once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from gateway.models import Delivery, InboundMessage, Message

from ..conftest import FIXTURES
from ..support.chat_apis import BotApiStandIn, GraphApiStandIn
from ..support.servers import LiveServer, wait_until
from ..support.twilio import PUBLIC_URL, TwilioStandIn, sign, twilio_settings
from .conftest import report
from .test_fuzz import RecordingQueue

REPEAT = 10
MESSENGER_SECRET, PAGE_TOKEN = "storm-messenger-secret", "storm-page-token"
TELEGRAM_TOKEN, TELEGRAM_SECRET = "5550199:STORM-bot-token_abcdefghijklmnop", "storm-telegram-secret"
UNUSABLE = {"sms__missing_body", "sms__missing_from", "signature__test_vectors", "status__delivered",
            "status__undelivered_landline", "signature__test_vector", "events__meta_docs", "secret_token__rule"}


def fixtures(folder: str) -> list[tuple[str, dict | bytes]]:
    return [(path.stem, path) for path in sorted((FIXTURES / folder).glob("*.json")) if path.stem not in UNUSABLE]


def twilio_posts() -> list[tuple[str, str, bytes, dict]]:
    posts = []
    for i, (name, path) in enumerate(fixtures("twilio_sms")):
        params = dict(json.loads(path.read_text(encoding="utf-8"))["params"])
        params["From"] = f"+1819555{150 + i:04d}"  # one citizen per fixture
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": sign(PUBLIC_URL + "/webhooks/twilio/sms", params)}
        posts.append((f"twilio_sms/{name}", "/webhooks/twilio/sms", urlencode(params).encode(), headers))
    return posts


def messenger_posts() -> list[tuple[str, str, bytes, dict]]:
    posts = []
    for name, path in fixtures("messenger"):
        body = path.read_bytes()
        digest = hmac.new(MESSENGER_SECRET.encode(), body, hashlib.sha256).hexdigest()
        posts.append((f"messenger/{name}", "/webhooks/messenger", body,
                      {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}))
    return posts


def telegram_posts() -> list[tuple[str, str, bytes, dict]]:
    return [(f"telegram/{name}", "/webhooks/telegram", path.read_bytes(),
             {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
            for name, path in fixtures("telegram")]


@pytest.fixture
def providers():
    stand_ins = {"twilio": TwilioStandIn().start(), "graph": GraphApiStandIn(PAGE_TOKEN).start(),
                 "bot": BotApiStandIn(TELEGRAM_TOKEN).start()}
    yield stand_ins
    for stand_in in stand_ins.values():
        stand_in.stop()


def channel_settings(providers) -> dict:
    return {**twilio_settings(providers["twilio"]), "MESSENGER_APP_SECRET": MESSENGER_SECRET,
            "MESSENGER_VERIFY_TOKEN": "v", "MESSENGER_PAGE_TOKEN": PAGE_TOKEN, "GRAPH_API_BASE": providers["graph"].url,
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
            "TELEGRAM_API_BASE": providers["bot"].url}


def stored_once_each(make_app, providers, migrated_sqlite, tmp_path, posts) -> set:
    """The baseline: each fixture posted once, in order, to a separate database."""
    database = tmp_path / "baseline.db"
    shutil.copy(migrated_sqlite, database)
    app = make_app(**channel_settings(providers), DATABASE_URL=f"sqlite:///{database}", GATEWAY_INLINE_JOBS=False)
    app.extensions["runtime"].jobs.shutdown()
    app.extensions["runtime"].jobs = RecordingQueue()  # stored only: nothing sent to the stand-ins
    client = app.test_client()
    for _, path, body, headers in posts:
        assert client.post(path, data=body, headers=headers).status_code == 200
    with app.extensions["runtime"].db.session() as session:
        return {(i.channel, i.provider_id) for i in session.scalars(select(InboundMessage))}


def test_every_fixture_ten_times_concurrently_and_shuffled_is_stored_and_acted_on_once(
        make_app, providers, migrated_sqlite, tmp_path):
    posts = twilio_posts() + messenger_posts() + telegram_posts()
    expected = stored_once_each(make_app, providers, migrated_sqlite, tmp_path, posts)
    app = make_app(**channel_settings(providers))
    runtime = app.extensions["runtime"]
    server = LiveServer(app).start()
    storm = posts * REPEAT
    random.Random(311).shuffle(storm)
    try:
        with httpx.Client(timeout=30) as http, ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda p: (p[0], http.post(server.url + p[1], content=p[2], headers=p[3])), storm))

        statuses = Counter(r.status_code for _, r in answers)
        assert set(statuses) == {200}, statuses  # every delivery of a good payload is accepted, none fails
        bodies = {}
        for name, response in answers:
            if name.startswith("twilio_sms/"):
                bodies.setdefault(name, set()).add(response.text)
        assert all(len(texts) == 1 for texts in bodies.values())  # a redelivery gets the first answer again

        def settled():
            with runtime.db.session() as session:
                inbound = list(session.scalars(select(InboundMessage)))
                deliveries = list(session.scalars(select(Delivery)))
                busy = [i for i in inbound if i.state in ("received", "processing")]
                busy += [d for d in deliveries if d.state in ("pending", "sending")]
                session.expunge_all()
                return (inbound, deliveries) if not busy else None

        inbound, deliveries = wait_until(settled, timeout=60, every=0.3)
        with runtime.db.session() as session:
            messages = list(session.scalars(select(Message).where(Message.direction == "in")))
            session.expunge_all()
    finally:
        server.stop()

    per_provider_id = Counter((i.channel, i.provider_id) for i in inbound)
    assert set(per_provider_id.values()) == {1}
    assert set(per_provider_id) == expected  # nothing lost, nothing extra
    per_inbound = Counter(m.inbound_id for m in messages if m.inbound_id is not None)
    assert not per_inbound or max(per_inbound.values()) == 1  # no message recorded twice
    first_message = {}
    for m in sorted(messages, key=lambda m: m.id):
        first_message.setdefault(m.request_id, m.inbound_id)
    creators = Counter(first_message.values())
    assert not creators or max(creators.values()) == 1  # no inbound created two requests
    states = Counter(i.state for i in inbound)
    assert set(states) <= {"processed", "ignored", "failed"}, states
    # "failed" only as the taxonomy's MalformedPayloadError at the first attempt, never a crash
    assert all(i.attempts == 1 for i in inbound if i.state == "failed"), [i.error for i in inbound if i.state == "failed"]

    sent = {"sms": len(providers["twilio"].sent()), "messenger": len(providers["graph"].sent()),
            "telegram": len(providers["bot"].calls("sendMessage"))}
    delivered = Counter(d.target for d in deliveries if d.purpose == "notify" and d.state == "delivered")
    assert sent == {k: delivered.get(k, 0) for k in sent}  # each message to a citizen sent once
    report("replay_storm", {
        "fixtures": len(posts), "posts": len(storm), "answered_200": statuses[200],
        "stored_inbound": len(inbound), "inbound_states": dict(states), "inbound_per_provider_id_max": max(per_provider_id.values()),
        "requests": len(first_message), "messages_in": len(messages),
        "citizen_messages_delivered": dict(delivered), "citizen_messages_sent_to_providers": sent,
        "sink_deliveries": dict(Counter(d.target for d in deliveries if d.purpose == "sink")),
        "duplicates": 0, "lost": 0})
