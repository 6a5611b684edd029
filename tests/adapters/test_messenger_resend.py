"""A Messenger message whose answer was lost is not sent twice: the Send API has no idempotency
key, so on a retry the adapter looks for the message an earlier attempt got accepted in the
page's conversation with the citizen (the outbox against the Graph API stand-in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from adapters.base import OutboundMessage
from adapters.channels.messenger import MessengerChannel
from gateway.models import Delivery, Message, Request

from ..support.servers import wait_until
from .test_messenger import PAGE_TOKEN, PSID, SECRET, VERIFY, post, raw

OTHER_PSID = "5550100000000002"


@pytest.fixture
def app(make_app, graph):
    return make_app(MESSENGER_APP_SECRET=SECRET, MESSENGER_VERIFY_TOKEN=VERIFY, MESSENGER_PAGE_TOKEN=PAGE_TOKEN,
                    GRAPH_API_BASE=graph.url)


def messenger_deliveries(runtime) -> list[Delivery]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Delivery).where(Delivery.target == "messenger").order_by(Delivery.id)))


def settled(runtime, count: int = 1) -> list[Delivery] | None:
    rows = messenger_deliveries(runtime)
    return rows if len(rows) == count and all(d.state in ("delivered", "dead") for d in rows) else None


def the_code(runtime) -> str:
    with runtime.db.session() as session:
        return session.scalars(select(Request.code)).one()


# --- Through the outbox ------------------------------------------------------------------------

def test_acknowledgement_whose_answer_was_lost_reaches_the_citizen_once(client, runtime, graph, caplog):
    caplog.set_level("INFO")
    graph.drop_answers = 1  # Meta takes the first send, the connection drops before its answer

    post(client, raw("message__pothole_fr"))

    [delivery] = wait_until(lambda: settled(runtime), timeout=15)
    held = graph.held(PSID)  # what the citizen sees in Messenger
    assert len(held) == 1 and f"Votre numéro de suivi est {the_code(runtime)}" in held[0]["message"]
    assert len(graph.sent()) == 1  # the retry found it and did not post again
    assert (delivery.state, delivery.attempts, delivery.external_id) == ("delivered", 2, held[0]["id"])
    assert len(graph.conversation_reads()) == 1  # only the retry looked
    with runtime.db.session() as session:
        assert session.scalar(select(Request.acknowledged_at)) is not None
        assert session.scalar(select(Message.external_id).where(Message.direction == "out")) == held[0]["id"]
    assert PSID not in caplog.text and "Wellington" not in caplog.text and PAGE_TOKEN not in caplog.text


def test_status_update_whose_answer_was_lost_reaches_the_citizen_once(client, runtime, graph, auth):
    post(client, raw("message__pothole_fr"))
    wait_until(lambda: settled(runtime))
    graph.drop_answers = 1

    client.post(f"/api/v1/requests/{the_code(runtime)}/status", headers=auth,
                json={"status": "resolved", "note": "Le trou a été rebouché."})

    update = wait_until(lambda: settled(runtime, 2), timeout=15)[-1]
    texts = [m["message"] for m in graph.held(PSID)]
    assert len(texts) == 2 and ["rebouché" in t for t in texts] == [False, True]
    assert (update.state, update.attempts, update.external_id) == ("delivered", 2, graph.held(PSID)[-1]["id"])


def test_first_send_refused_and_lookup_failing_still_sends_once(client, runtime, graph):
    graph.fail_next("messages", 503, {"error": {"message": "Service temporarily unavailable", "code": 2}})
    graph.fail_next("conversations", 500, {"error": {"message": "An unknown error has occurred.", "code": 1}})

    post(client, raw("message__pothole_fr"))

    [delivery] = wait_until(lambda: settled(runtime), timeout=15)
    assert len(graph.sent()) == 2  # the refused POST, then the one Meta took
    held = graph.held(PSID)
    assert len(held) == 1 and (delivery.state, delivery.attempts, delivery.external_id) == ("delivered", 2, held[0]["id"])
    assert len(graph.conversation_reads()) == 1


# --- The lookup, row by row --------------------------------------------------------------------

TEXT = "Ville de Bellerive 311 — R-2026-4821735 : en cours."


def retry(text: str = TEXT, attempt: int = 2, queued_ago: timedelta = timedelta(seconds=30)) -> OutboundMessage:
    return OutboundMessage(to=PSID, text=text, language="fr", idempotency_key="update:R-2026-4821735:2",
                           attempt=attempt, queued_at=datetime.now(UTC) - queued_ago)


def channel(graph) -> MessengerChannel:
    return MessengerChannel(PAGE_TOKEN, graph.url, "v21.0")


# (the message the page's conversations already hold, whether it stands for this one; queued 30 s ago)
HELD = [
    pytest.param({}, True, id="sent-since-it-was-queued"),
    pytest.param({"ago": timedelta(seconds=75)}, True, id="within-the-minute-allowed-for-the-clocks"),
    pytest.param({"ago": timedelta(minutes=10)}, False, id="same-text-before-it-was-queued"),
    pytest.param({"ago": timedelta(days=3)}, False, id="same-text-three-days-ago"),
    pytest.param({"from_page": False}, False, id="same-text-from-the-citizen"),
    pytest.param({"text": TEXT + " Merci."}, False, id="another-text"),
    pytest.param({"psid": OTHER_PSID}, False, id="to-another-citizen"),
]


@pytest.mark.parametrize("held, same", HELD)
def test_retry_takes_an_earlier_send_for_its_own_only_when_it_is_one(graph, held, same):
    ago = held.pop("ago", timedelta(0))
    earlier = graph.add_message(held.pop("psid", PSID), held.pop("text", TEXT), created=datetime.now(UTC) - ago, **held)

    receipt = channel(graph).send(retry())

    assert len(graph.sent()) == (0 if same else 1)
    assert (receipt.external_id == earlier["id"]) is same
    [lookup] = graph.conversation_reads()
    assert lookup.path == "/v21.0/me/conversations"
    assert lookup.query == {"platform": "messenger", "user_id": PSID, "access_token": PAGE_TOKEN,
                            "fields": "messages.limit(20){id,created_time,from,message}"}


def test_newest_earlier_send_among_older_ones_and_the_citizens_is_found(graph):
    now = datetime.now(UTC)
    for days in (40, 9, 2):
        graph.add_message(PSID, TEXT, created=now - timedelta(days=days))
    earlier = graph.add_message(PSID, TEXT, created=now - timedelta(seconds=5))
    for i in range(5):  # the conversation goes on: the citizen answers, the page too
        graph.add_message(PSID, TEXT if i == 0 else f"Merci {i}", from_page=False)
        graph.add_message(PSID, f"Autre message {i}")

    assert channel(graph).send(retry()).external_id == earlier["id"]
    assert graph.sent() == []


def test_text_cut_at_2000_is_compared_as_sent(graph):
    first = channel(graph).send(retry(text="é" * 2500, attempt=1))

    assert channel(graph).send(retry(text="é" * 2500)).external_id == first.external_id
    assert len(graph.sent()) == 1 and len(graph.held(PSID)[0]["message"]) == 2000


def test_first_attempt_sends_without_looking(graph):
    graph.add_message(PSID, TEXT)
    channel(graph).send(retry(attempt=1))
    assert len(graph.sent()) == 1 and graph.conversation_reads() == []


def test_retry_without_a_queued_time_sends_without_looking(graph):
    graph.add_message(PSID, TEXT)
    channel(graph).send(OutboundMessage(to=PSID, text=TEXT, language="fr", attempt=3))
    assert len(graph.sent()) == 1 and graph.conversation_reads() == []


LOOKUP_FAULTS = [
    pytest.param(lambda g: g.fail_next("conversations", 500, {"error": {"message": "Please retry", "code": 2}}),
                 id="graph-api-500"),
    pytest.param(lambda g: g.fail_next("conversations", 403, {"error": {  # the token may send, not read
        "message": "(#200) Requires pages_read_engagement permission", "type": "OAuthException", "code": 200}}),
                 id="permission-missing"),
    pytest.param(lambda g: g.fail_next("conversations", 200, b"<html>Sorry, something went wrong.</html>"),
                 id="not-json"),
    pytest.param(lambda g: g.fail_next("conversations", 200, {"data": [{"messages": "unexpected"}]}),
                 id="unexpected-shape"),
    pytest.param(lambda g: g.drop_next("conversations"), id="connection-dropped"),
]


@pytest.mark.parametrize("fault", LOOKUP_FAULTS)
def test_lookup_that_fails_sends_anyway_once(graph, fault):
    graph.add_message(PSID, TEXT)  # there, but the lookup cannot tell
    fault(graph)

    receipt = channel(graph).send(retry())

    assert len(graph.sent()) == 1 and receipt.external_id == graph.held(PSID)[-1]["id"]
    assert len(graph.conversation_reads()) == 1


def test_lookup_leaves_no_psid_or_text_in_the_logs(graph, caplog):
    graph.fail_next("conversations", 400, {"error": {  # Meta's messages may quote what was asked
        "message": f"(#100) No conversation for user_id {PSID}", "type": "OAuthException", "code": 100}})
    with caplog.at_level("DEBUG"):
        channel(graph).send(retry())
        channel(graph).send(retry())
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("adapters", "gateway")))
    assert "lookup failed (Graph API 400, code 100)" in logged and "not sent again" in logged
    assert PSID not in logged and "R-2026-4821735" not in logged and PAGE_TOKEN not in logged
