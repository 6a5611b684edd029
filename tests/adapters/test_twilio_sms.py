"""SMS/MMS through Twilio: signed webhooks in, TwiML answers, conversation, STATUS, STOP, MMS
media, outbound SMS through the real twilio client against a local stand-in."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.base import OutboundMessage
from adapters.channels.twilio import TwilioSmsChannel, verify_signature
from adapters.errors import PermanentDeliveryError, SignatureError, TransientDeliveryError
from gateway.models import (
    Attachment,
    ContactPoint,
    Delivery,
    Event,
    InboundMessage,
    Message,
    Request,
)
from gateway.status import change_status

from ..support.servers import wait_until
from ..support.twilio import FROM_NUMBER, PUBLIC_URL, load, post, sign, twilio_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twilio_sms"
MARIE = "+15145550142"


def sms(name: str) -> dict:
    return load("twilio_sms", name)


def count(runtime, model) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def request_by_code(runtime, code: str, timeout: float = 10.0) -> Request:
    def find():
        with runtime.db.session() as session:
            row = session.scalar(select(Request).where(Request.code == code))
            if row is not None:
                session.expunge(row)
            return row

    return wait_until(find, timeout)


def code_in(twiml: str) -> str:
    from normalizer.codes import find_codes

    codes = find_codes(twiml, "R")
    assert codes, twiml
    return codes[0]


# --- Signatures --------------------------------------------------------------------------------

def test_signature_test_vectors_from_twilio_python_are_accepted():
    vectors = json.loads((FIXTURES / "signature__test_vectors.json").read_text())
    token, case = vectors["auth_token"], vectors["form_params_case"]
    params = {k: [v] for k, v in case["params"].items()}
    verify_signature(token, case["url"], params, case["expected_signature"])
    for variant in case["variants"]:
        verify_signature(token, variant["url"], params,
                         variant.get("expected_signature") or variant["expected_valid_with"])
    repeated = vectors["duplicate_keys_case"]
    grouped: dict[str, list[str]] = {}
    for key, value in repeated["params_ordered_pairs"]:
        grouped.setdefault(key, []).append(value)
    verify_signature(token, repeated["url"], grouped, repeated["expected_signature"])


@pytest.mark.parametrize("change", [
    lambda p: {**p, "Digits": ["9999"]},  # a field changed
    lambda p: {k: v for k, v in p.items() if k != "To"},  # a field removed
])
def test_signature_of_a_changed_payload_is_rejected(change):
    case = json.loads((FIXTURES / "signature__test_vectors.json").read_text())["form_params_case"]
    params = {k: [v] for k, v in case["params"].items()}
    with pytest.raises(SignatureError):
        verify_signature("12345", case["url"], change(params), case["expected_signature"])


@pytest.mark.parametrize("signature", [
    None,  # missing
    "RSOYDt4T1cUTdK1PDd93/VVr8B8=",  # someone else's valid signature
    "other-url",  # valid for another webhook URL: a replay
    "other-token",  # signed with another account's token
])
def test_bad_or_missing_signature_is_403_and_nothing_stored(twilio_client, twilio_runtime, signature, caplog):
    fixture = sms("sms__pothole_fr")
    params = fixture["params"]
    if signature == "other-url":
        signature = sign(PUBLIC_URL + "/webhooks/twilio/voice", params)
    elif signature == "other-token":
        signature = sign(PUBLIC_URL + fixture["path"], params, token="not-our-token")
    with caplog.at_level(logging.INFO):
        response = post(twilio_client, fixture, signature=signature)

    assert response.status_code == 403
    assert count(twilio_runtime, InboundMessage) == 0
    assert "signature" in caplog.text.lower()
    assert "nid de poule" not in caplog.text and "555" not in caplog.text


def test_signature_is_checked_against_the_public_url_behind_a_proxy(make_app, twilio):
    app = make_app(**{**twilio_settings(twilio), "GATEWAY_PUBLIC_URL": "https://311.bellerive.example.org"})
    fixture = sms("sms__pothole_fr")
    params = fixture["params"]
    good = sign("https://311.bellerive.example.org/webhooks/twilio/sms", params)
    from urllib.parse import urlencode

    response = app.test_client().post("/webhooks/twilio/sms", data=urlencode(params), headers={"X-Twilio-Signature": good},
                                      content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert post(app.test_client(), fixture).status_code == 403  # signed for the internal URL: refused


def test_unconfigured_twilio_answers_503_and_stores_nothing(client, runtime):
    response = post(client, sms("sms__pothole_fr"))
    assert response.status_code == 503
    assert count(runtime, InboundMessage) == 0


# --- New requests and Twilio's retries ---------------------------------------------------------

@pytest.mark.parametrize("name, language, category, words", [
    ("sms__pothole_fr", "fr", "pothole", "Votre numéro de suivi est"),
    ("sms__streetlight_en", "en", "streetlight", "Your tracking code is"),
    ("sms__real_capture_nl", "en", None, "Your tracking code is"),  # the real capture: "St"
    ("sms__long_1600", "fr", "pothole", "Votre numéro de suivi est"),
])
def test_new_sms_is_answered_in_twiml_with_the_code_that_the_request_gets(
        twilio_client, twilio_runtime, twilio, smtp_server, name, language, category, words):
    response = post(twilio_client, sms(name))

    assert response.status_code == 200 and response.mimetype == "text/xml"
    text = response.get_data(as_text=True)
    assert text.startswith("<?xml") and "<Message>" in text and words in text
    request = request_by_code(twilio_runtime, code_in(text))
    assert (request.channel, request.language, request.status) == ("sms", language, "routed")
    assert request.category == category
    assert request.acknowledged_at is not None
    assert request.description == sms(name)["params"]["Body"].strip()
    wait_until(lambda: smtp_server.messages)  # the department's e-mail
    assert twilio.sent() == []  # the acknowledgement was the TwiML answer, not a second SMS


def test_twilio_retry_of_the_same_message_creates_nothing_new(twilio_client, twilio_runtime):
    first = post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True)
    request_by_code(twilio_runtime, code_in(first))
    again = post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True)

    assert code_in(again) == code_in(first)
    assert count(twilio_runtime, InboundMessage) == 1
    assert count(twilio_runtime, Request) == 1


def test_concurrent_retries_of_a_new_sms_store_it_once_and_all_carry_its_code(twilio_app, twilio_runtime):
    """Twilio retries on a slow answer: the copies race on the INSERT … ON CONFLICT DO NOTHING."""
    from concurrent.futures import ThreadPoolExecutor

    def deliver(_):
        return post(twilio_app.test_client(), sms("sms__pothole_fr"))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver, range(16)))

    assert {a.status_code for a in answers} == {200}
    assert len({code_in(a.get_data(as_text=True)) for a in answers}) == 1
    assert count(twilio_runtime, InboundMessage) == 1
    request_by_code(twilio_runtime, code_in(answers[0].get_data(as_text=True)))
    assert count(twilio_runtime, Request) == 1


@pytest.mark.parametrize("text", [None, "", "Bellerive 311 : demande R-2026-4821735 reçue.", "a & b <c> \"d\" 'e' ]]>",
                                  "👍\n\r\tfin", "x" * 2000])
def test_twiml_answer_is_what_the_twilio_library_prints(text):
    from twilio.twiml.messaging_response import MessagingResponse

    from adapters.channels.twilio import sms_reply

    expected = MessagingResponse()
    if text:
        expected.message(text[:1600])
    assert sms_reply(text) == str(expected)


SENDERS_TEXTS = [  # (text, the language of the answer): accents, none, ligatures, mixed, long
    ("Énorme nid-de-poule devant le 12, rue de l'Église. Ça fait deux semaines!", "fr"),
    ("lampadaire brise coin Maple et Principale", "fr"),
    ("Fuite d'eau à côté de l'école, ŒUVRE Saint-Édouard, ça déborde", "fr"),
    ("The streetlight at the corner of Maple and Main has been out all week", "en"),
    ("Pothole on Rue Wellington near the café, please fix", "en"),
    ("Bonjour, le lampadaire de la rue Maple est brûlé", "fr"),
    ("Il y a des déchets partout dans le parc " * 30, "fr"),
]


def test_the_answer_is_the_librarys_twiml_in_the_senders_language_and_a_retry_gets_the_same_bytes(
        twilio_client, twilio_runtime):
    from twilio.twiml.messaging_response import MessagingResponse

    from gateway.webhooks.twilio_texts import TEXTS

    city = twilio_runtime.rules.current.city.name
    for i, (text, language) in enumerate(SENDERS_TEXTS):
        fixture = sms("sms__pothole_fr")
        sid = f"SM{i:032d}"
        fixture["params"] = {**fixture["params"], "Body": text, "MessageSid": sid, "SmsSid": sid,
                             "SmsMessageSid": sid, "From": f"+151455501{60 + i}"}  # a new sender each
        answer = post(twilio_client, fixture).get_data()
        with twilio_runtime.db.session() as session:
            code = session.scalar(select(InboundMessage.reserved_code).where(InboundMessage.provider_id == sid))
        expected = MessagingResponse()
        expected.message(TEXTS[language]["acknowledged"].format(city=city.get(language), code=code))
        assert answer == str(expected).encode(), text
        assert post(twilio_client, fixture).get_data() == answer  # Twilio's retry: the same bytes
    assert count(twilio_runtime, InboundMessage) == len(SENDERS_TEXTS)


# --- Conversation ------------------------------------------------------------------------------

def test_second_sms_within_the_window_is_added_to_the_open_request(twilio_client, twilio_runtime):
    code = code_in(post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(twilio_runtime, code)

    answer = post(twilio_client, sms("sms__followup_fr")).get_data(as_text=True)

    assert "ajouté à votre demande " + code in answer
    def added():
        with twilio_runtime.db.session() as session:
            return session.scalar(select(func.count()).select_from(Message).join(Request)
                                  .where(Request.code == code, Message.direction == "in")) == 2
    wait_until(added)
    assert count(twilio_runtime, Request) == 1


def test_retry_of_a_follow_up_is_answered_as_the_first_time_and_adds_nothing(twilio_client, twilio_runtime):
    code = code_in(post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(twilio_runtime, code)
    first = post(twilio_client, sms("sms__followup_fr")).get_data(as_text=True)

    again = post(twilio_client, sms("sms__followup_fr")).get_data(as_text=True)

    assert again == first and "ajouté à votre demande " + code in again
    assert count(twilio_runtime, InboundMessage) == 2
    assert count(twilio_runtime, Request) == 1


def test_sms_clearly_about_another_subject_opens_a_new_request(twilio_client, twilio_runtime):
    first = code_in(post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(twilio_runtime, first)

    second = code_in(post(twilio_client, sms("sms__new_subject_fr")).get_data(as_text=True))

    assert second != first
    assert request_by_code(twilio_runtime, second).category == "streetlight"


def test_sms_after_the_window_opens_a_new_request(make_app, twilio):
    app = make_app(**twilio_settings(twilio), TWILIO_CONVERSATION_MINUTES="0")
    runtime, client = app.extensions["runtime"], app.test_client()
    first = code_in(post(client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(runtime, first)

    answer = post(client, sms("sms__followup_fr")).get_data(as_text=True)

    assert "Votre numéro de suivi est" in answer and code_in(answer) != first


def test_the_code_an_sms_was_given_still_leads_to_the_request_it_joined(make_app, twilio):
    """After the window, the same complaint again gets a new code in the answer; the pipeline
    then finds the sender's open request about it and adds the message there (same citizen,
    same problem). The code they were given must not lead nowhere."""
    app = make_app(**twilio_settings(twilio), TWILIO_CONVERSATION_MINUTES="0")
    runtime, client = app.extensions["runtime"], app.test_client()
    pothole = sms("sms__pothole_fr")
    first = code_in(post(client, pothole).get_data(as_text=True))
    request_by_code(runtime, first)
    again = {**pothole, "params": {**pothole["params"], "SmsSid": "SM0000000000000000000000000000AGAIN",
                                   "SmsMessageSid": "SM0000000000000000000000000000AGAIN",
                                   "MessageSid": "SM0000000000000000000000000000AGAIN"}}
    given = code_in(post(client, again).get_data(as_text=True))
    assert given != first

    def joined():
        with runtime.db.session() as session:
            return session.scalar(select(InboundMessage.request_id).where(InboundMessage.reserved_code == given))
    wait_until(joined)
    assert count(runtime, Request) == 1  # one problem, one request: the message joined it
    with runtime.db.session() as session:  # its TwiML answer was its acknowledgement: no second text
        kinds = [d.settings.get("kind") for d in session.scalars(select(Delivery).where(Delivery.purpose == "notify"))]
    assert "message_added" not in kinds

    page = client.get(f"/track/{given}?lang=fr")
    assert page.status_code == 302 and page.headers["Location"].endswith(f"/track/{first}?from={given}")
    shown = client.get(page.headers["Location"]).get_data(as_text=True)
    assert f"Le numéro {given} mène à cette demande" in shown
    status = post(client, sms("sms__status_with_code"), replace={"code": given}).get_data(as_text=True)
    assert first in status and "Transmise au service" in status

    quoting = {**again, "params": {**again["params"], "Body": f"{given} : le trou est encore plus gros ce matin",
                                   "SmsSid": "SM00000000000000000000000000QUOTING",
                                   "SmsMessageSid": "SM00000000000000000000000000QUOTING",
                                   "MessageSid": "SM00000000000000000000000000QUOTING"}}
    answer = post(client, quoting).get_data(as_text=True)
    assert first in answer and "Votre numéro de suivi est" not in answer  # added to it, not a new code
    wait_until(lambda: len(_messages(runtime, first)) == 3)
    assert count(runtime, Request) == 1


def _messages(runtime, code: str) -> list[str]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Message.body).join(Request).where(Request.code == code,
                                                                             Message.direction == "in")))


# --- STATUS / STATUT ---------------------------------------------------------------------------

def test_status_with_a_code_answers_the_current_status(twilio_client, twilio_runtime):
    code = code_in(post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(twilio_runtime, code)

    answer = post(twilio_client, sms("sms__status_with_code"), replace={"code": code}).get_data(as_text=True)

    assert code in answer and "Transmise au service" in answer and "Nid-de-poule" in answer
    assert count(twilio_runtime, Request) == 1  # a status query is not a request


def test_status_alone_lists_the_senders_open_requests(twilio_client, twilio_runtime):
    code = code_in(post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(twilio_runtime, code)

    answer = post(twilio_client, sms("sms__status_alone")).get_data(as_text=True)

    assert code in answer and "Sent to the department" in answer  # "STATUS": English


@pytest.mark.parametrize("replace, expected", [
    ({"code": "R-2026-0000001"}, "cannot find"),  # a wrong check digit: no such code
])
def test_status_for_an_unknown_code_says_so(twilio_client, replace, expected):
    fixture = sms("sms__status_with_code")
    fixture["params"]["Body"] = "STATUS {code}"
    assert expected in post(twilio_client, fixture, replace=replace).get_data(as_text=True)


def test_status_alone_from_an_unknown_number_says_there_is_none(twilio_client):
    assert "no open request" in post(twilio_client, sms("sms__status_alone")).get_data(as_text=True)


# --- Opt-out -----------------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["sms__opt_out_arret", "sms__opt_out_stop"])
def test_opt_out_word_stops_every_further_message_to_that_number(twilio_client, twilio_runtime, twilio, word):
    code = code_in(post(twilio_client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(twilio_runtime, code)

    answer = post(twilio_client, sms(word)).get_data(as_text=True)

    assert "<Message>" not in answer  # Twilio sends its own opt-out confirmation
    def opted_out():
        with twilio_runtime.db.session() as session:
            return session.scalar(select(ContactPoint.opted_out).where(ContactPoint.value == MARIE))
    wait_until(opted_out)
    with twilio_runtime.db.session() as session:
        request = session.scalar(select(Request).where(Request.code == code))
        assert change_status(session, twilio_runtime, request, "in_progress", "agent:test") == []
        skipped = session.scalars(select(Event).where(Event.type == "notification_skipped")).all()
        assert skipped
    assert twilio.sent() == []
    assert count(twilio_runtime, Request) == 1


# --- Bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, status, field", [
    ("sms__missing_from", 400, "From"),
    ("sms__missing_body", 400, "Body"),
])
def test_partial_webhook_is_refused_with_the_field_and_nothing_stored(twilio_client, twilio_runtime, name, status, field):
    response = post(twilio_client, sms(name))
    assert response.status_code == status
    assert response.get_json()["field"] == field
    assert count(twilio_runtime, InboundMessage) == 0


def test_non_form_content_type_is_refused(twilio_client, twilio_runtime):
    response = twilio_client.post("/webhooks/twilio/sms", json=sms("sms__pothole_fr")["params"],
                                  headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 400 and response.get_json()["field"] == "content_type"
    assert count(twilio_runtime, InboundMessage) == 0


def test_oversized_body_is_refused(twilio_client, twilio_runtime):
    fixture = sms("sms__pothole_fr")
    fixture["params"]["Body"] = "x" * 70_000
    assert post(twilio_client, fixture).status_code == 413
    assert count(twilio_runtime, InboundMessage) == 0


@pytest.mark.parametrize("name", ["sms__empty", "sms__emoji_only"])
def test_empty_or_emoji_only_message_asks_for_a_description_and_stores_nothing(twilio_client, twilio_runtime, name):
    response = post(twilio_client, sms(name))
    assert response.status_code == 200
    assert "Décrivez le problème" in response.get_data(as_text=True)
    assert count(twilio_runtime, InboundMessage) == 0


# --- MMS ---------------------------------------------------------------------------------------

def _media_paths(fixture: dict) -> list[str]:
    return [fixture["params"][f"MediaUrl{i}"].removeprefix("https://api.twilio.com") for i in (0, 1)]


def test_mms_media_are_fetched_with_the_account_credentials_and_stored(twilio_client, twilio_runtime, twilio):
    fixture = sms("mms__two_photos")
    first, second = _media_paths(fixture)
    twilio.media[first] = (b"\xff\xd8\xff" + b"j" * 2000, "image/jpeg")
    twilio.media[second] = (b"\x89PNG" + b"p" * 500, "image/png")

    code = code_in(post(twilio_client, fixture).get_data(as_text=True))

    request_by_code(twilio_runtime, code)
    def stored():
        with twilio_runtime.db.session() as session:
            rows = session.scalars(select(Attachment).order_by(Attachment.id)).all()
            return [(r.fetch_state, r.size, r.content_type, r.storage_path) for r in rows] \
                if rows and all(r.fetch_state == "stored" for r in rows) else None
    rows = wait_until(stored)
    assert [(state, size, kind) for state, size, kind, _ in rows] == [
        ("stored", 2003, "image/jpeg"), ("stored", 504, "image/png")]
    assert Path(rows[0][3]).read_bytes().startswith(b"\xff\xd8\xff")
    assert str(twilio_runtime.settings["GATEWAY_DATA_DIR"]) in rows[0][3]
    gets = [r for r in twilio.requests if r.method == "GET"]
    assert {r.auth for r in gets} == {(twilio_settings(twilio)["TWILIO_ACCOUNT_SID"], "test-twilio-auth-token")}


def test_mms_media_over_the_size_limit_is_not_stored(make_app, twilio):
    app = make_app(**twilio_settings(twilio), GATEWAY_ATTACHMENT_MAX_BYTES=1000)
    runtime = app.extensions["runtime"]
    fixture = sms("mms__two_photos")
    first, second = _media_paths(fixture)
    twilio.media[first] = (b"j" * 5000, "image/jpeg")
    twilio.media[second] = (b"p" * 10, "image/png")

    post(app.test_client(), fixture)

    def settled():
        with runtime.db.session() as session:
            rows = session.scalars(select(Attachment).order_by(Attachment.id)).all()
            return [r.fetch_state for r in rows] if len(rows) == 2 and "pending" not in {r.fetch_state for r in rows} else None
    assert wait_until(settled) == ["failed", "stored"]
    with runtime.db.session() as session:
        assert session.scalar(select(Event).where(Event.type == "attachment_failed")) is not None
    assert not list((Path(str(runtime.settings["GATEWAY_DATA_DIR"])) / "attachments").rglob("*.jpg"))


# --- Outbound ----------------------------------------------------------------------------------

def outbound(twilio) -> TwilioSmsChannel:
    return TwilioSmsChannel.from_settings(twilio_settings(twilio))


def test_outbound_sms_goes_through_the_twilio_client_with_a_status_callback(twilio):
    receipt = outbound(twilio).send(OutboundMessage(to=MARIE, text="Votre demande est en cours.", language="fr"))

    sent = twilio.sent()
    assert sent == [{"To": MARIE, "From": FROM_NUMBER, "Body": "Votre demande est en cours.",
                     "StatusCallback": PUBLIC_URL + "/webhooks/twilio/sms/status"}]
    assert receipt.external_id.startswith("SM")


def test_outbound_text_longer_than_twilio_accepts_is_cut_at_1600(twilio):
    outbound(twilio).send(OutboundMessage(to=MARIE, text="é" * 2000, language="fr"))
    assert len(twilio.sent()[0]["Body"]) == 1600


@pytest.mark.parametrize("status, body, error", [
    (429, {"code": 20429, "message": "Too Many Requests", "status": 429}, TransientDeliveryError),
    (503, {"code": 20503, "message": "Service unavailable", "status": 503}, TransientDeliveryError),
    (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}, PermanentDeliveryError),
    (400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, PermanentDeliveryError),
])
def test_outbound_errors_map_to_retry_or_dead_letter(twilio, status, body, error):
    twilio.failures.append((status, body))
    with pytest.raises(error):
        outbound(twilio).send(OutboundMessage(to=MARIE, text="x", language="fr"))


def test_outbound_with_twilio_unreachable_is_retried_later():
    channel = TwilioSmsChannel.from_settings(twilio_settings(None))  # nothing listens on port 9
    with pytest.raises(TransientDeliveryError):
        channel.send(OutboundMessage(to=MARIE, text="x", language="fr"))


# --- Delivery status callbacks -----------------------------------------------------------------

def _sent_status_update(client, runtime, twilio) -> tuple[str, str]:
    code = code_in(post(client, sms("sms__pothole_fr")).get_data(as_text=True))
    request_by_code(runtime, code)
    with runtime.db.session() as session:
        request = session.scalar(select(Request).where(Request.code == code))
        ids = change_status(session, runtime, request, "in_progress", "agent:test", "Équipe en route.")
    for delivery_id in ids:
        runtime.jobs.enqueue("deliver", delivery_id)
    wait_until(lambda: twilio.sent(MARIE))
    with runtime.db.session() as session:
        sid = wait_until(lambda: session.scalar(select(Message.external_id).where(Message.direction == "out")))
    return code, sid


def test_status_callback_records_delivered(twilio_client, twilio_runtime, twilio):
    _code, sid = _sent_status_update(twilio_client, twilio_runtime, twilio)
    assert "en cours" in twilio.sent(MARIE)[0]["Body"] and "Équipe en route." in twilio.sent(MARIE)[0]["Body"]

    for _ in range(2):  # Twilio may report twice
        assert post(twilio_client, sms("status__delivered"), replace={"sid": sid}).status_code == 204

    with twilio_runtime.db.session() as session:
        events = session.scalars(select(Event).where(Event.type == "delivery_status")).all()
        assert [e.data["status"] for e in events] == ["delivered"]


def test_status_callback_for_a_landline_marks_the_number_undeliverable(twilio_client, twilio_runtime, twilio):
    _code, sid = _sent_status_update(twilio_client, twilio_runtime, twilio)

    post(twilio_client, sms("status__undelivered_landline"), replace={"sid": sid})

    with twilio_runtime.db.session() as session:
        point = session.scalar(select(ContactPoint).where(ContactPoint.value == MARIE))
        assert point.undeliverable is True
        event = session.scalar(select(Event).where(Event.type == "delivery_status"))
        assert event.data == {"delivery": event.data["delivery"], "status": "undelivered", "error_code": "30006"}


def test_status_callback_with_a_bad_signature_changes_nothing(twilio_client, twilio_runtime):
    assert post(twilio_client, sms("status__delivered"), replace={"sid": "SMx"}, signature="bad").status_code == 403


# --- Privacy -----------------------------------------------------------------------------------

def test_logs_carry_no_phone_numbers_or_message_bodies(twilio_client, twilio_runtime, twilio, caplog):
    with caplog.at_level(logging.DEBUG):
        _sent_status_update(twilio_client, twilio_runtime, twilio)
        post(twilio_client, sms("sms__opt_out_stop"))
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail."))  # not the test SMTP server
    assert "5550142" not in ours and "+1514" not in ours
    assert "nid de poule" not in ours.lower() and "Équipe en route" not in ours


def test_outbound_through_a_messaging_service_names_the_service_not_a_number(twilio):
    settings = {**twilio_settings(twilio), "TWILIO_FROM_NUMBER": None, "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32}
    TwilioSmsChannel.from_settings(settings).send(OutboundMessage(to=MARIE, text="x", language="fr"))
    sent = twilio.sent()[0]
    assert sent["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in sent


def test_sms_from_a_sender_that_is_not_a_phone_number_is_a_request_without_contact(twilio_client, twilio_runtime, twilio):
    fixture = sms("sms__pothole_fr")
    fixture["params"]["From"] = "BELLERIVE"  # an alphanumeric sender id
    code = code_in(post(twilio_client, fixture).get_data(as_text=True))
    assert request_by_code(twilio_runtime, code).citizen_id is None
