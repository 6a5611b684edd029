"""Telegram: updates in (secret-token webhook), Bot API out (a local keep-alive stand-in)."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from adapters.base import OutboundMessage, RawInbound
from adapters.channels.telegram import TelegramChannel
from adapters.errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnsupportedEventError,
)
from gateway.cli import main
from gateway.models import Attachment, Citizen, Delivery, Event, InboundMessage, Message, Request
from normalizer.codes import new_code

from ..conftest import FIXTURES
from ..support.chat_apis import BotApiStandIn
from ..support.servers import free_port, wait_until

TOKEN = "5550199:TEST-bot-token_abcdefghijklmnop"
SECRET = "test-telegram-secret_0123"
CHAT = 5550101
OLD_CHAT = 1111111  # the chat of Telegram's own webhook-guide examples
PHOTO_ID = "AgACAgEAAxkBAAIBlarge"
PHOTO = b"\xff\xd8\xff\xe0 largest photo size"


def raw(name: str) -> bytes:
    return (FIXTURES / "telegram" / f"{name}.json").read_bytes()


def doc(name: str) -> dict:
    return json.loads(raw(name))


def header() -> str:
    return doc("secret_token__rule")["header"]


@pytest.fixture
def bot():
    server = BotApiStandIn(TOKEN).start()
    server.files[PHOTO_ID] = (PHOTO, "photos/file_12.jpg")
    yield server
    server.stop()


@pytest.fixture
def app(make_app, bot):
    return make_app(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_SECRET_TOKEN=SECRET, TELEGRAM_API_BASE=bot.url)


def post(client, document, secret: str | None = SECRET):
    body = json.dumps(document).encode() if not isinstance(document, bytes) else document
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[header()] = secret
    return client.post("/webhooks/telegram", data=body, headers=headers)


def count(runtime, model, *where) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def requests(runtime) -> list[Request]:
    with runtime.db.session() as session:
        rows = session.scalars(select(Request).order_by(Request.id)).all()
        session.expunge_all()
        return rows


# --- the parser: real payloads → neutral messages -------------------------------------------------

PARSED = [
    ("message__start", {"command": "start", "chat": str(OLD_CHAT), "external_id": f"{OLD_CHAT}:1365"}),
    ("message__entities", {"command": None, "text": "Bold and italics"}),
    ("message__reply", {"command": "start", "in_reply_to": f"{OLD_CHAT}:1334"}),
    ("message__forwarded", {"command": "start"}),
    ("message__forwarded_from_channel", {"command": "start"}),
    ("message__audio", {"attachment": ("audio/mpeg", "telegram:AwADBAADbXXXXXXXXXXXGBdhD2l6_XX")}),
    ("message__document", {"attachment": ("application/pdf", "telegram:AwADBAADbXXXXXXXXXXXGBdhD2l6_XX"),
                           "filename": "Testfile.pdf"}),
    ("message__voice", {"attachment": ("audio/ogg", "telegram:AwADBAADbXXXXXXXXXXXGBdhD2l6_XX"), "text": ""}),
    ("edited_message__text", {"edit_of": f"{OLD_CHAT}:1365", "text": "Edited text"}),
    ("message__photo_caption", {"attachment": ("image/jpeg", f"telegram:{PHOTO_ID}"), "chat": str(CHAT)}),
    ("message__location", {"location": (45.4401, -75.7203), "text": ""}),
    ("message__status_command", {"command": "status", "language": "fr"}),
    ("message__langue_command", {"command": "language:en", "language": "en"}),
    ("callback_query__track", {"command": "status", "chat": str(CHAT)}),
]


@pytest.mark.parametrize(("name", "expected"), PARSED)
def test_real_payload_parses_to_expected_fields(name, expected):
    message = TelegramChannel().parse(RawInbound(raw(name)))

    assert message.channel == "telegram"
    derived = {
        "chat": message.contact.telegram_chat_id,
        "attachment": (message.attachments[0].content_type, message.attachments[0].url) if message.attachments else None,
        "filename": message.attachments[0].filename if message.attachments else None,
        "location": (message.location.lat, message.location.lon),
    }
    for key, value in expected.items():
        assert (derived[key] if key in derived else getattr(message, key)) == value, key


@pytest.mark.parametrize(("name", "error", "says"), [
    ("message__group", UnsupportedEventError, "supergroup"),
    ("inline_query__text", UnsupportedEventError, "inline_query"),
    ("chosen_inline_result__text", UnsupportedEventError, "chosen_inline_result"),
    ("callback_query__unknown_data", MalformedPayloadError, "chat_instance"),  # old example: field now required
    ("message__minimal_no_chat_type", MalformedPayloadError, "type"),
    ("secret_token__rule", MalformedPayloadError, "update_id"),
])
def test_updates_that_are_not_requests_raise_the_taxonomy_error(name, error, says):
    with pytest.raises(error, match=says):
        TelegramChannel().parse(RawInbound(raw(name)))


# --- the webhook ---------------------------------------------------------------------------

def test_missing_or_wrong_secret_token_is_403_and_nothing_is_stored(client, runtime):
    assert post(client, raw("message__entities"), secret=None).status_code == 403
    assert post(client, raw("message__entities"), secret="guessed").status_code == 403
    assert count(runtime, InboundMessage) == 0


def test_without_a_secret_token_configured_the_webhook_refuses_with_503(make_app, bot):
    client = make_app(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=bot.url).test_client()

    assert post(client, raw("message__entities")).status_code == 503


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "body"),
    (b"[]", "body"),
    (b'{"message": {"text": "trou"}}', "update_id"),
    (b'{"update_id": "10000"}', "update_id"),
    (b'{"update_id": true}', "update_id"),
])
def test_bad_input_is_400_naming_the_field_and_stores_nothing(client, runtime, body, field):
    response = post(client, body)

    assert response.status_code == 400 and response.get_json()["field"] == field
    assert count(runtime, InboundMessage) == 0


def test_oversized_update_is_413(make_app, bot):
    client = make_app(TELEGRAM_SECRET_TOKEN=SECRET, MAX_CONTENT_LENGTH=2048).test_client()
    update = doc("message__entities")
    update["message"]["text"] = "trou " * 1000

    assert post(client, update).status_code == 413
    assert count(client.application.extensions["runtime"], InboundMessage) == 0


def test_a_redelivered_update_is_stored_and_processed_once(client, runtime, bot):
    first = post(client, raw("message__entities"))
    again = post(client, raw("message__entities"))

    assert first.get_json() == {"ok": True, "stored": True} and again.get_json() == {"ok": True, "stored": False}
    wait_until(lambda: bot.messages_to(OLD_CHAT))
    assert count(runtime, InboundMessage) == 1 and count(runtime, Request) == 1
    assert len(bot.messages_to(OLD_CHAT)) == 1


def test_group_messages_are_ignored_with_a_clear_log_line(client, runtime, bot, caplog):
    response = post(client, raw("message__group"))

    assert response.status_code == 200
    wait_until(lambda: count(runtime, InboundMessage, InboundMessage.state == "ignored") == 1)
    assert "message from a Telegram supergroup chat: only private chats are handled" in caplog.text
    assert count(runtime, Request) == 0 and bot.calls("sendMessage") == []
    assert "collecte des ordures" not in caplog.text


def test_an_edited_message_is_recorded_on_its_request_not_a_new_one(client, runtime, bot):
    post(client, raw("message__entities"))
    wait_until(lambda: count(runtime, Request) == 1)
    edited = doc("edited_message__text")
    edited["update_id"] = 10001  # the guide's examples all share update_id 10000

    post(client, edited)

    wait_until(lambda: count(runtime, Event, Event.type == "message_edited") == 1)
    assert count(runtime, Request) == 1
    with runtime.db.session() as session:
        assert session.scalars(select(Message.body).where(Message.direction == "in")).all() == [
            "Bold and italics", "Edited text"]


# --- commands ------------------------------------------------------------------------------

def test_start_answers_with_a_bilingual_welcome_and_opens_no_request(client, runtime, bot):
    post(client, raw("message__start"))

    welcome = wait_until(lambda: bot.messages_to(OLD_CHAT))[0]
    assert "Bonjour!" in welcome and "Hello!" in welcome and "Ville de Bellerive" in welcome
    assert count(runtime, Request) == 0
    wait_until(lambda: count(runtime, Delivery, Delivery.state == "delivered", Delivery.request_id.is_(None)) == 1)


def test_status_without_any_request_says_so(client, runtime, bot):
    post(client, raw("message__status_command"))

    assert "aucune demande" in wait_until(lambda: bot.messages_to(CHAT))[0]


def test_language_command_switches_the_citizen_and_their_open_requests_to_english(client, runtime, bot):
    post(client, raw("message__photo_caption"))
    wait_until(lambda: len(bot.messages_to(CHAT)) == 1)

    post(client, raw("message__langue_command"))
    status = doc("message__status_command")
    status["update_id"], status["message"]["message_id"] = 730000099, 2099
    wait_until(lambda: len(bot.messages_to(CHAT)) == 2)
    post(client, status)

    replies = wait_until(lambda: bot.messages_to(CHAT)[2:] and bot.messages_to(CHAT))
    assert replies[1] == "Noted: we will write to you in English."
    assert "(Pothole): sent to the responsible department." in replies[2]
    with runtime.db.session() as session:
        assert session.scalar(select(Citizen.language)) == "en"


def test_status_with_a_code_and_the_track_button_answer_with_the_current_status(client, runtime, bot, auth):
    post(client, raw("message__photo_caption"))
    wait_until(lambda: len(bot.messages_to(CHAT)) == 1)
    code = requests(runtime)[0].code
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "in_progress"})
    wait_until(lambda: len(bot.messages_to(CHAT)) == 2)
    asked = doc("message__status_command")
    asked["message"]["text"] = f"/status {code}"

    post(client, asked)
    wait_until(lambda: len(bot.messages_to(CHAT)) == 3)
    post(client, raw("callback_query__track"))

    replies = wait_until(lambda: bot.messages_to(CHAT)[3:] and bot.messages_to(CHAT))
    assert f"Demande {code} (Nid-de-poule) : en cours." in replies[2]
    assert f"Demande {code} (Nid-de-poule) : en cours." in replies[3]
    assert count(runtime, Request) == 1


def test_status_with_an_unknown_code_says_it_cannot_be_found(client, bot):
    code = new_code("R", 2026)  # a well-formed code (check digit included) that no request has
    asked = doc("message__status_command")
    asked["message"]["text"] = f"/statut {code}"

    post(client, asked)

    assert f"Nous ne trouvons aucune demande {code}" in wait_until(lambda: bot.messages_to(CHAT))[0]


# --- sending and fetching with the Bot API --------------------------------------------------

def message(chat=CHAT, text="Votre numéro de suivi est R-2026-1234567"):
    return OutboundMessage(to=str(chat), text=text, language="fr", idempotency_key="k")


def test_consecutive_sends_each_open_a_fresh_bot_over_keep_alive(bot):
    channel = TelegramChannel(TOKEN, bot.url)

    first = channel.send(message())
    second = channel.send(message(text="Deuxième message"))
    data, content_type = channel.fetch(f"telegram:{PHOTO_ID}", 1024)

    assert (first.external_id, second.external_id) == (f"{CHAT}:101", f"{CHAT}:102")
    assert bot.messages_to(CHAT) == ["Votre numéro de suivi est R-2026-1234567", "Deuxième message"]
    assert len(bot.calls("getMe")) == 3  # one Bot (and one event loop) per call
    assert (data, content_type) == (PHOTO, "image/jpeg")
    assert bot.calls("getFile")[0].data["file_id"] == PHOTO_ID


@pytest.mark.parametrize(("status", "answer", "raised", "retry_after"), [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
           "parameters": {"retry_after": 3}}, TransientDeliveryError, 3.0),
    (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
     PermanentDeliveryError, None),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, PermanentDeliveryError, None),
    (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, TransientDeliveryError, None),
])
def test_send_errors_map_to_the_taxonomy(bot, status, answer, raised, retry_after):
    bot.fail_next("sendMessage", status, answer)

    with pytest.raises(raised) as caught:
        TelegramChannel(TOKEN, bot.url).send(message())

    if retry_after is not None:
        assert caught.value.retry_after == retry_after


def test_a_rejected_token_unreachable_api_or_missing_token_are_told_apart(bot):
    with pytest.raises(AdapterMisconfiguredError):
        TelegramChannel("5550199:wrong-token", bot.url).send(message())
    with pytest.raises(TransientDeliveryError):
        TelegramChannel(TOKEN, f"http://127.0.0.1:{free_port()}").send(message())
    with pytest.raises(AdapterMisconfiguredError):
        TelegramChannel(None, bot.url).send(message())
    with pytest.raises(PermanentDeliveryError):
        TelegramChannel(TOKEN, bot.url).fetch("telegram:no-such-file", 1024)


# --- through the whole gateway -------------------------------------------------------------

def test_telegram_photo_with_location_becomes_a_routed_request_and_status_reaches_the_chat(
        live_server, bot, smtp_server, auth, settings, caplog):
    caplog.set_level("INFO")
    url = f"{live_server.url}/webhooks/telegram"
    runtime = live_server.server.app.extensions["runtime"]

    photo = httpx.post(url, content=raw("message__photo_caption"), headers={header(): SECRET})
    acknowledgement = wait_until(lambda: bot.messages_to(CHAT))[0]
    location = httpx.post(url, content=raw("message__location"), headers={header(): SECRET})

    assert photo.status_code == 200 and location.status_code == 200
    # The caption's "145 rue Wellington" gave the address register's place first; the position
    # the citizen then shares is where they point, and replaces it.
    wait_until(lambda: requests(runtime)[0].lat == 45.4401)
    request = requests(runtime)[0]
    assert request.address == "145, rue Wellington"
    assert len(requests(runtime)) == 1
    assert (request.channel, request.category, request.department) == ("telegram", "pothole", "travaux_publics")
    assert (request.lat, request.lon, request.district) == (45.4401, -75.7203, "centre")
    assert f"Votre numéro de suivi est {request.code}" in acknowledgement
    assert wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
    stored = wait_until(lambda: _stored(runtime))
    assert open(stored[0].storage_path, "rb").read() == PHOTO
    assert stored[0].storage_path.startswith(settings["GATEWAY_DATA_DIR"] + "/attachments/")

    changed = httpx.post(f"{live_server.url}/api/v1/requests/{request.code}/status", headers=auth,
                         json={"status": "resolved", "note": "Réparé ce matin."})

    assert changed.status_code == 200
    update = wait_until(lambda: [t for t in bot.messages_to(CHAT) if "résolue" in t])[0]
    assert request.code in update and "Réparé ce matin." in update
    assert len(bot.messages_to(CHAT)) == 2 and len(smtp_server.messages) == 1
    assert TOKEN not in caplog.text and "Wellington" not in caplog.text and str(CHAT) not in caplog.text


def test_a_voice_note_is_attached_and_fetched(client, runtime, bot):
    bot.files["AwADBAADbXXXXXXXXXXXGBdhD2l6_XX"] = (b"OggS voice", "voice/file_7.ogg")

    post(client, raw("message__voice"))

    stored = wait_until(lambda: _stored(runtime))
    assert stored[0].content_type == "audio/ogg" and open(stored[0].storage_path, "rb").read() == b"OggS voice"
    assert count(runtime, Request) == 1


def _stored(runtime):
    with runtime.db.session() as session:
        rows = session.scalars(select(Attachment).where(Attachment.storage_path.is_not(None))).all()
        session.expunge_all()
        return rows


# --- registering the webhook ------------------------------------------------------------------

def test_set_webhook_registers_the_public_url_with_the_secret_token(bot, monkeypatch):
    for name, value in {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_SECRET_TOKEN": SECRET, "TELEGRAM_API_BASE": bot.url,
                        "GATEWAY_PUBLIC_URL": "https://311.bellerive.example.org"}.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(main, ["telegram", "set-webhook"])

    assert result.exit_code == 0, result.output
    assert "https://311.bellerive.example.org/webhooks/telegram" in result.output
    call = bot.calls("setWebhook")[0].data
    assert call["url"] == "https://311.bellerive.example.org/webhooks/telegram" and call["secret_token"] == SECRET
    assert json.loads(call["allowed_updates"]) == ["message", "edited_message", "callback_query"]


def test_set_webhook_refuses_a_secret_telegram_would_reject(bot, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE", bot.url)
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "has spaces!")

    result = CliRunner().invoke(main, ["telegram", "set-webhook"])

    assert result.exit_code != 0 and "TELEGRAM_SECRET_TOKEN must be" in result.output
    assert bot.calls("setWebhook") == []


def test_every_fixture_is_used():
    source = open(__file__, encoding="utf-8").read()
    unused = [p.stem for p in (FIXTURES / "telegram").glob("*.json") if f'"{p.stem}"' not in source]
    assert unused == []


def test_a_location_then_words_make_one_request_routed_on_the_words(client, runtime, bot, smtp_server):
    post(client, raw("message__location"))
    waiting = wait_until(lambda: requests(runtime))[0]
    assert waiting.status == "needs_info" and waiting.description == "" and waiting.district == "centre"
    words = doc("message__photo_caption")
    words["message"].pop("photo")
    words["message"]["text"] = words["message"].pop("caption")

    post(client, words)

    wait_until(lambda: requests(runtime)[0].status == "routed")
    request = requests(runtime)[0]
    assert len(requests(runtime)) == 1
    assert (request.category, request.department, request.lat) == ("pothole", "travaux_publics", 45.4401)
    assert "Nid-de-poule" in request.description
    assert wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
