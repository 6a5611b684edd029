"""Facebook Messenger: signed webhooks in, Send API out (a local Graph API stand-in)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from adapters.base import OutboundMessage, RawInbound
from adapters.channels.messenger import MessengerChannel, split_batch, verify_signature
from adapters.errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    SignatureError,
    TransientDeliveryError,
    UnsupportedEventError,
)
from gateway.models import (
    Attachment,
    ContactPoint,
    Delivery,
    Event,
    InboundMessage,
    Message,
    Request,
    utcnow,
)

from ..conftest import FIXTURES
from ..support.servers import free_port, wait_until
from .conftest import MESSENGER_PAGE_TOKEN as PAGE_TOKEN

SECRET = "test-messenger-app-secret"
VERIFY = "test-verify-token"

PSID = "5550100000000001"


def raw(name: str) -> bytes:
    return (FIXTURES / "messenger" / f"{name}.json").read_bytes()


def doc(name: str) -> dict:
    return json.loads(raw(name))


def envelope(event: dict) -> dict:
    return {"object": "page", "entry": [{"id": "111111", "time": 1764000000000, "messaging": [event]}]}


def meta(example: str) -> dict:
    return doc("events__meta_docs")[example]


def sign(body: bytes, secret: str = SECRET) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def as_bytes(document) -> bytes:
    return json.dumps(document).encode() if not isinstance(document, bytes) else document


@pytest.fixture
def app(make_app, graph):
    return make_app(MESSENGER_APP_SECRET=SECRET, MESSENGER_VERIFY_TOKEN=VERIFY, MESSENGER_PAGE_TOKEN=PAGE_TOKEN,
                    GRAPH_API_BASE=graph.url)


def post(client, document, secret: str = SECRET):
    body = as_bytes(document)
    return client.post("/webhooks/messenger", data=body, headers=sign(body, secret))


def count(runtime, model, *where) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def the_request(runtime) -> Request:
    with runtime.db.session() as session:
        found = session.scalars(select(Request)).all()
        assert len(found) == 1
        session.expunge_all()
        return found[0]


# --- the parser: real payloads → neutral messages -------------------------------------------------

PARSED = [
    ("message__text", {"text": "hello, world!", "psid": "USER_ID", "external_id": "mid.1457764197618:41d102a3e1ae206a38"}),
    ("message__pothole_fr", {"psid": PSID, "command": None, "attachments": 0}),
    ("message__image", {"text": "", "attachments": 1, "url": "IMAGE_URL"}),
    ("message__quick_reply_track", {"command": "status"}),
    ("postback__track", {"command": "status", "psid": PSID}),
    ("message_edit__text", {"edit_of": "m_pothole_fr_0001", "external_id": "m_pothole_fr_0001:edit:1"}),
]


@pytest.mark.parametrize(("name", "expected"), PARSED)
def test_real_payload_parses_to_expected_fields(name, expected):
    message = MessengerChannel().parse(RawInbound(raw(name)))

    assert message.channel == "messenger"
    assert message.contact.preferred_channel == "messenger"
    for key, value in expected.items():
        actual = {"psid": message.contact.messenger_psid, "attachments": len(message.attachments),
                  "url": message.attachments[0].url if message.attachments else None}.get(key, None)
        if key not in ("psid", "attachments", "url"):
            actual = getattr(message, key)
        assert actual == value, key


def test_meta_docs_reply_threads_on_the_quoted_message_id():
    message = MessengerChannel().parse(RawInbound(as_bytes(envelope(meta("reply_message")))))

    assert message.in_reply_to == "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU"
    assert message.text == "hello, world!"


def test_meta_docs_quick_reply_with_an_unknown_payload_is_plain_text():
    message = MessengerChannel().parse(RawInbound(as_bytes(envelope(meta("text_message_with_quick_reply")))))

    assert message.command is None and message.text == "hello, world!"


@pytest.mark.parametrize(("document", "error"), [
    (doc("postback__unknown_payload"), UnsupportedEventError),
    (envelope(meta("message_with_attachment_entry")["messaging"][0]), UnsupportedEventError),  # placeholder type
    (doc("delivery__legacy"), MalformedPayloadError),  # nothing storable: the webhook never stores it
])
def test_payloads_that_are_not_requests_raise_the_taxonomy_error(document, error):
    with pytest.raises(error):
        MessengerChannel().parse(RawInbound(as_bytes(document)))


# --- splitting batches ---------------------------------------------------------------------

def test_batch_splits_into_one_item_per_message_and_ignores_receipts_and_echoes():
    batch = split_batch(raw("message__batch"))

    assert [item.provider_id for item in batch.items] == ["m_batch_text_0001", "m_batch_image_0001"]
    assert batch.ignored == {"delivery": 1, "read": 1, "echo": 1}
    one = json.loads(batch.items[1].body)
    assert one["object"] == "page" and len(one["entry"][0]["messaging"]) == 1


@pytest.mark.parametrize(("document", "ignored"), [
    (doc("delivery__legacy"), {"delivery": 1}),
    (doc("optin__auth"), {"optin": 1}),
    (envelope(meta("message_read")), {"read": 1}),
    (envelope(meta("message_delivery")), {"delivery": 1}),
])
def test_receipts_and_optins_are_never_stored(document, ignored):
    batch = split_batch(as_bytes(document))

    assert batch.items == [] and batch.ignored == ignored


def test_meta_docs_postback_without_a_sender_id_is_rejected():
    batch = split_batch(as_bytes(envelope(meta("messaging_postbacks_notification")["value"])))

    assert batch.items == [] and batch.rejected[0]["error"] == "missing sender"


# --- the signature ---------------------------------------------------------------------------

def test_published_signature_vector_verifies_and_a_changed_body_does_not():
    vector = doc("signature__test_vector")
    verify_signature(vector["secret"], vector["payload"].encode(), vector["expected_header_value"])

    with pytest.raises(SignatureError):
        verify_signature(vector["secret"], b"Hello, World?", vector["expected_header_value"])
    with pytest.raises(SignatureError):
        verify_signature(vector["secret"], vector["payload"].encode(), None)
    with pytest.raises(AdapterMisconfiguredError):
        verify_signature(None, vector["payload"].encode(), vector["expected_header_value"])


# --- the webhook ---------------------------------------------------------------------------

def test_subscription_check_echoes_the_challenge_only_with_the_right_token(client):
    good = client.get(f"/webhooks/messenger?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444")

    assert good.status_code == 200 and good.get_data(as_text=True) == "1158201444"
    assert client.get("/webhooks/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1").status_code == 403
    assert client.get(f"/webhooks/messenger?hub.mode=unsubscribe&hub.verify_token={VERIFY}&hub.challenge=1").status_code == 403
    assert client.get("/webhooks/messenger").status_code == 403


def test_bad_or_missing_signature_is_403_and_nothing_is_stored(client, runtime):
    body = raw("message__pothole_fr")

    wrong = client.post("/webhooks/messenger", data=body, headers=sign(body, "another-secret"))
    missing = client.post("/webhooks/messenger", data=body, headers={"Content-Type": "application/json"})
    tampered = client.post("/webhooks/messenger", data=body.replace(b"145", b"999"), headers=sign(body))

    assert (wrong.status_code, missing.status_code, tampered.status_code) == (403, 403, 403)
    assert count(runtime, InboundMessage) == 0


def test_without_an_app_secret_the_webhook_refuses_with_503(make_app, graph):
    client = make_app(MESSENGER_APP_SECRET=None, GRAPH_API_BASE=graph.url).test_client()

    response = post(client, raw("message__text"))

    assert response.status_code == 503 and "not configured" in response.get_json()["error"]


def test_batch_is_stored_once_per_message_and_a_redelivery_doubles_nothing(client, runtime):
    first = post(client, raw("message__batch"))
    again = post(client, raw("message__batch"))

    assert first.status_code == 200
    assert first.get_json()["stored"] == 2 and first.get_json()["ignored"] == {"delivery": 1, "read": 1, "echo": 1}
    assert again.get_json() == {**first.get_json(), "stored": 0, "duplicates": 2}
    assert count(runtime, InboundMessage, InboundMessage.channel == "messenger") == 2
    wait_until(lambda: count(runtime, Request) == 2)


def test_an_event_sent_alone_is_stored_byte_for_byte_as_meta_sent_it(client, runtime):
    body = raw("message__text")

    first, again = post(client, body), post(client, body)

    assert (first.status_code, first.get_json()) == (200, {"stored": 1, "duplicates": 0, "ignored": {}, "rejected": []})
    assert (again.status_code, again.get_json()) == (200, {"stored": 0, "duplicates": 1, "ignored": {}, "rejected": []})
    with runtime.db.session() as session:
        assert session.scalars(select(InboundMessage.body)).all() == [body]


def test_a_message_repeated_inside_one_batch_is_stored_once(client, runtime):
    batch = doc("message__pothole_fr")
    batch["entry"].append(json.loads(json.dumps(batch["entry"][0])))  # Meta sent the same event twice

    response = post(client, batch)

    assert response.status_code == 200
    assert response.get_json()["stored"] == 1 and response.get_json()["duplicates"] == 1
    assert count(runtime, InboundMessage, InboundMessage.channel == "messenger") == 1
    wait_until(lambda: count(runtime, Request) == 1)


BAD_INPUT = [
    (b"this is not json", 400, "not valid JSON"),
    (b"[1, 2, 3]", 400, "JSON object"),
    (b'"page"', 400, "JSON object"),
    ({"object": "page", "entry": {"id": "1"}}, 400, "entry must be a list"),
    ({"object": "page"}, 400, "entry must be a list"),
    ({"object": "page", "entry": [{"id": "1", "messaging": [{"recipient": {"id": "P"},
                                                             "message": {"mid": "m_1", "text": "trou"}}]}]},
     400, "no usable event"),
    ({"object": "page", "entry": [{"id": "1", "messaging": [{"sender": {"id": PSID}, "message": {"text": "trou"}}]}]},
     400, "no usable event"),
    ({"object": "page", "entry": [1, "x"]}, 400, "no usable event"),
]


@pytest.mark.parametrize(("document", "status", "says"), BAD_INPUT)
def test_bad_input_is_a_clear_error_and_stores_nothing(client, runtime, document, status, says):
    response = post(client, document)

    assert response.status_code == status
    assert says in json.dumps(response.get_json())
    assert count(runtime, InboundMessage) == 0


@pytest.mark.parametrize(("document", "answer"), [
    ({"object": "instagram", "entry": []}, "ignored"),
    ({"object": "page", "entry": []}, "stored"),
    ({"object": "page", "entry": [{"id": "1", "time": 1, "changes": [{"field": "feed"}]}]}, "stored"),
])
def test_unknown_objects_and_empty_entries_are_answered_200_and_ignored(client, runtime, document, answer):
    response = post(client, document)

    assert response.status_code == 200 and answer in response.get_json()
    assert count(runtime, InboundMessage) == 0


def test_oversized_body_is_413_and_stores_nothing(make_app, graph):
    client = make_app(MESSENGER_APP_SECRET=SECRET, GRAPH_API_BASE=graph.url, MAX_CONTENT_LENGTH=4096).test_client()
    big = doc("message__pothole_fr")
    big["entry"][0]["messaging"][0]["message"]["text"] = "trou " * 2000

    response = post(client, big)

    assert response.status_code == 413
    runtime = client.application.extensions["runtime"]
    assert count(runtime, InboundMessage) == 0


def test_one_bad_event_in_a_batch_does_not_lose_the_good_one(client, runtime):
    batch = doc("message__pothole_fr")
    batch["entry"][0]["messaging"].append({"recipient": {"id": "PAGE_ID"}, "message": {"mid": "m_x", "text": "?"}})

    response = post(client, batch)

    assert response.status_code == 200
    assert response.get_json()["stored"] == 1 and response.get_json()["rejected"][0]["error"] == "missing sender"


# --- sending: the Send API ------------------------------------------------------------------

def outbound(text="Votre numéro de suivi est R-2026-1234567", language="fr"):
    return OutboundMessage(to=PSID, text=text, language=language, idempotency_key="k1")


def test_send_posts_the_documented_request_and_returns_the_message_id(graph):
    channel = MessengerChannel(PAGE_TOKEN, graph.url, "v21.0")

    receipt = channel.send(outbound())
    channel.send(outbound(language="en"))

    first, second = graph.sent()
    assert first.path == "/v21.0/me/messages" and first.query == {"access_token": PAGE_TOKEN}
    assert first.data == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {
        "text": "Votre numéro de suivi est R-2026-1234567",
        "quick_replies": [{"content_type": "text", "payload": "TRACK_REQUEST", "title": "Suivre ma demande"}]}}
    assert second.data["message"]["quick_replies"][0]["title"] == "Track my request"
    assert receipt.external_id == "m_sent_1"
    assert first.client == second.client  # one kept-alive connection


@pytest.mark.parametrize(("status", "error", "headers", "raised", "retry_after"), [
    (429, {"message": "Too many", "code": 613}, {"Retry-After": "7"}, TransientDeliveryError, 7.0),
    (500, {"message": "Service unavailable", "code": 2, "is_transient": True}, {}, TransientDeliveryError, None),
    (400, {"message": "Calls to this api have exceeded the rate limit.", "code": 4}, {}, TransientDeliveryError, None),
    (400, {"message": "This message is sent outside of allowed window.", "code": 10, "error_subcode": 2018278},
     {}, PermanentDeliveryError, None),
    (400, {"message": "This person isn't available right now.", "code": 551, "error_subcode": 1545041},
     {}, PermanentDeliveryError, None),
    (400, {"message": "Invalid OAuth access token.", "code": 190}, {}, AdapterMisconfiguredError, None),
])
def test_send_errors_map_to_the_taxonomy(graph, status, error, headers, raised, retry_after):
    graph.fail_next("messages", status, {"error": error}, headers)

    with pytest.raises(raised) as caught:
        MessengerChannel(PAGE_TOKEN, graph.url).send(outbound())

    if raised is TransientDeliveryError:
        assert caught.value.retry_after == retry_after


def test_send_to_an_unreachable_graph_api_is_transient_and_without_a_token_misconfigured():
    with pytest.raises(TransientDeliveryError):
        MessengerChannel(PAGE_TOKEN, f"http://127.0.0.1:{free_port()}", timeout=2).send(outbound())
    with pytest.raises(AdapterMisconfiguredError):
        MessengerChannel(None).send(outbound())


# --- through the whole gateway -------------------------------------------------------------

def test_messenger_message_becomes_a_routed_request_and_a_status_change_reaches_the_citizen(
        live_server, graph, smtp_server, auth, caplog):
    caplog.set_level("INFO")
    body = raw("message__pothole_fr")

    response = httpx.post(f"{live_server.url}/webhooks/messenger", content=body, headers=sign(body))

    assert response.status_code == 200 and response.json()["stored"] == 1
    runtime = live_server.server.app.extensions["runtime"]
    acknowledgement = wait_until(lambda: [r for r in graph.sent() if r.data["recipient"]["id"] == PSID])[0]
    request = the_request(runtime)
    assert (request.channel, request.category, request.department) == ("messenger", "pothole", "travaux_publics")
    assert request.status == "routed" and request.language == "fr"
    assert f"Votre numéro de suivi est {request.code}" in acknowledgement.data["message"]["text"]
    assert wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))

    changed = httpx.post(f"{live_server.url}/api/v1/requests/{request.code}/status", headers=auth,
                         json={"status": "resolved", "note": "Le trou a été rebouché."})

    assert changed.status_code == 200
    update = wait_until(lambda: [r for r in graph.sent() if "résolue" in r.data["message"]["text"]])[0]
    assert update.data["recipient"]["id"] == PSID and "Le trou a été rebouché." in update.data["message"]["text"]
    assert len(graph.sent()) == 2 and len(smtp_server.messages) == 1  # the department only: no e-mail
    wait_until(lambda: count(runtime, Message, Message.direction == "out") == 2)
    assert PSID not in caplog.text and "Wellington" not in caplog.text and PAGE_TOKEN not in caplog.text


def test_a_photo_after_the_text_joins_the_request_and_is_fetched(client, runtime, graph, settings):
    graph.files["pothole.jpg"] = (b"\xff\xd8\xff\xe0 a small jpeg", "image/jpeg")
    image = doc("message__image")
    event = image["entry"][0]["messaging"][0]
    event["sender"]["id"] = PSID
    event["message"]["attachments"][0]["payload"]["url"] = f"{graph.url}/cdn/pothole.jpg"

    post(client, raw("message__pothole_fr"))
    wait_until(lambda: count(runtime, Request) == 1)
    post(client, image)

    stored = wait_until(lambda: _stored_attachments(runtime))
    assert count(runtime, Request) == 1
    assert stored[0].content_type == "image/jpeg" and stored[0].size == len(b"\xff\xd8\xff\xe0 a small jpeg")
    assert stored[0].storage_path.startswith(settings["GATEWAY_DATA_DIR"])
    assert open(stored[0].storage_path, "rb").read() == b"\xff\xd8\xff\xe0 a small jpeg"
    assert stored[0].sha256 == hashlib.sha256(b"\xff\xd8\xff\xe0 a small jpeg").hexdigest()


def test_a_vanished_attachment_is_recorded_as_not_fetched(client, runtime, graph):
    image = doc("message__image")
    image["entry"][0]["messaging"][0]["message"]["attachments"][0]["payload"]["url"] = f"{graph.url}/cdn/gone.jpg"

    post(client, image)

    failed = wait_until(lambda: _attachments_where(runtime, Attachment.fetch_error.is_not(None)))
    assert "404" in failed[0].fetch_error and failed[0].storage_path is None
    assert count(runtime, Request) == 1  # the request itself is not lost


def _stored_attachments(runtime):
    return _attachments_where(runtime, Attachment.storage_path.is_not(None))


def _attachments_where(runtime, condition):
    with runtime.db.session() as session:
        rows = session.scalars(select(Attachment).where(condition)).all()
        session.expunge_all()
        return rows


@pytest.mark.parametrize("button", ["message__quick_reply_track", "postback__track"])
def test_track_button_answers_with_the_current_status(client, runtime, graph, button):
    post(client, raw("message__pothole_fr"))
    wait_until(lambda: len(graph.sent()) == 1)
    code = the_request(runtime).code

    post(client, raw(button))

    reply = wait_until(lambda: graph.sent()[1:])[0]
    assert f"Demande {code} (Nid-de-poule) : transmise au service responsable." in reply.data["message"]["text"]
    assert count(runtime, Request) == 1


def test_track_button_without_any_request_says_so_and_creates_nothing(client, runtime, graph):
    post(client, raw("postback__track"))

    reply = wait_until(lambda: graph.sent())[0]
    assert "aucune demande" in reply.data["message"]["text"]
    assert count(runtime, Request) == 0
    wait_until(lambda: count(runtime, Delivery, Delivery.state == "delivered") == 1)


def test_an_edit_is_recorded_on_the_request_not_a_new_one(client, runtime, graph):
    post(client, raw("message__pothole_fr"))
    wait_until(lambda: count(runtime, Request) == 1)

    post(client, raw("message_edit__text"))
    post(client, raw("message_edit__text"))  # redelivered

    wait_until(lambda: count(runtime, Event, Event.type == "message_edited") == 1)
    assert count(runtime, Request) == 1
    with runtime.db.session() as session:
        bodies = session.scalars(select(Message.body).where(Message.direction == "in").order_by(Message.id)).all()
    assert bodies[-1] == "Correction : c'est devant le 147 rue Wellington."


def test_an_edit_of_an_unknown_message_is_ignored(client, runtime):
    post(client, raw("message_edit__text"))

    wait_until(lambda: count(runtime, InboundMessage, InboundMessage.state == "ignored") == 1)
    assert count(runtime, Request) == 0


def test_a_transient_send_failure_is_retried_until_delivered(client, runtime, graph):
    graph.fail_next("messages", 503, {"error": {"message": "down", "code": 2}})

    post(client, raw("message__pothole_fr"))

    wait_until(lambda: count(runtime, Delivery, Delivery.target == "messenger", Delivery.state == "delivered") == 1)
    assert len(graph.sent()) == 2


# --- the 24-hour window --------------------------------------------------------------------

def _close_window(runtime, hours: float = 25) -> None:
    with runtime.db.session() as session:
        point = session.scalar(select(ContactPoint).where(ContactPoint.kind == "messenger"))
        point.last_inbound_at = utcnow() - timedelta(hours=hours)


def _messenger_request(client, runtime, graph) -> str:
    post(client, raw("message__pothole_fr"))
    wait_until(lambda: len(graph.sent()) == 1)
    return the_request(runtime).code


def test_the_window_opens_with_the_citizens_last_message(client, runtime, graph):
    _messenger_request(client, runtime, graph)

    with runtime.db.session() as session:
        stamped = session.scalar(select(ContactPoint.last_inbound_at).where(ContactPoint.kind == "messenger"))
        received = session.scalar(select(InboundMessage.received_at))
    assert stamped == received


def test_outside_the_window_the_update_is_recorded_as_not_deliverable(client, runtime, graph, auth):
    code = _messenger_request(client, runtime, graph)
    _close_window(runtime)

    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "in_progress"})

    with runtime.db.session() as session:
        events = {e.type: e.data for e in session.scalars(select(Event))}
    assert events["not_deliverable_on_channel"]["channel"] == "messenger"
    assert "window closed" in events["notification_skipped"]["reason"]
    assert len(graph.sent()) == 1


def test_outside_the_window_the_update_goes_to_another_contact_point(client, runtime, graph, auth, smtp_server):
    code = _messenger_request(client, runtime, graph)
    _close_window(runtime)
    with runtime.db.session() as session:
        citizen_id = session.scalar(select(Request.citizen_id))
        session.add(ContactPoint(citizen_id=citizen_id, kind="email", value="citoyen.messenger@example.org"))

    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "in_progress"})

    mail = wait_until(lambda: smtp_server.to("citoyen.messenger@example.org"))[0]
    assert code in mail["Subject"] and "en cours" in mail["Subject"]
    assert len(graph.sent()) == 1


def test_inside_the_window_a_later_update_still_goes_to_messenger(client, runtime, graph, auth):
    code = _messenger_request(client, runtime, graph)
    _close_window(runtime, hours=23)

    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "in_progress"})

    assert wait_until(lambda: [r for r in graph.sent() if "en cours" in r.data["message"]["text"]])


def test_every_fixture_is_used():
    source = open(__file__, encoding="utf-8").read()
    unused = [p.stem for p in (FIXTURES / "messenger").glob("*.json") if f'"{p.stem}"' not in source]
    assert unused == []



def test_an_attachment_over_the_size_limit_is_refused_while_downloading(graph):
    graph.files["big.jpg"] = (b"x" * 5000, "image/jpeg")

    with pytest.raises(PermanentDeliveryError, match="over the 1024"):
        MessengerChannel(PAGE_TOKEN, graph.url).fetch(f"{graph.url}/cdn/big.jpg", 1024)
    assert MessengerChannel(PAGE_TOKEN, graph.url).fetch(f"{graph.url}/cdn/big.jpg", 5000) == (b"x" * 5000, "image/jpeg")
