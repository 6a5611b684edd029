"""Phone calls through Twilio Voice: the bilingual call flow in TwiML, the request created from
speech or a voicemail, the code read out and texted, transcription callbacks, signatures."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.models import Attachment, InboundMessage, Request

from ..support.servers import wait_until
from ..support.twilio import load, post

CALLER = "+15145550146"


def voice(name: str) -> dict:
    return load("twilio_voice", name)


def count(runtime, model) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def only_request(runtime, predicate=lambda r: True) -> Request:
    def find():
        with runtime.db.session() as session:
            rows = session.scalars(select(Request)).all()
            if len(rows) == 1 and predicate(rows[0]):
                session.expunge(rows[0])
                return rows[0]
            return None

    return wait_until(find)


def spelled(code: str) -> str:
    return ", ".join(ch for ch in code if ch.isalnum())


def test_incoming_call_gets_a_bilingual_greeting_with_a_language_choice(twilio_client, twilio_runtime):
    response = post(twilio_client, voice("call__incoming"))

    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert '<Gather' in text and 'input="dtmf speech"' in text and 'numDigits="1"' in text
    assert 'language="fr-CA"' in text and 'language="en-CA"' in text
    assert "faites le 1" in text and "press 2" in text
    assert "/webhooks/twilio/voice/language?lang=fr" in text  # silence: French
    assert count(twilio_runtime, InboundMessage) == 0


@pytest.mark.parametrize("name, locale, prompt", [
    ("language__digit_2", "en-CA", "describe the problem"),
    ("language__speech_francais", "fr-CA", "décrivez le problème"),
])
def test_language_choice_by_key_or_speech_asks_for_the_problem_in_that_language(twilio_client, name, locale, prompt):
    text = post(twilio_client, voice(name)).get_data(as_text=True)

    assert f'input="speech" language="{locale}"' in text
    assert prompt in text
    assert '<Record' in text and 'transcribe="true"' in text and "/webhooks/twilio/voice/transcription?lang=" in text


def test_described_problem_becomes_a_request_whose_code_is_read_out_and_texted(twilio_client, twilio_runtime, twilio, smtp_server):
    response = post(twilio_client, voice("speech__pothole_fr"))

    text = response.get_data(as_text=True)
    request = only_request(twilio_runtime)
    assert (request.channel, request.language, request.category, request.status) == ("phone", "fr", "pothole", "routed")
    assert request.description.startswith("Il y a un nid de poule")
    assert text.count(spelled(request.code)) == 2  # read out twice, character by character
    assert "<Hangup />" in text and "par texto" in text
    texted = wait_until(lambda: twilio.sent(CALLER))
    assert request.code in texted[0]["Body"] and "Numéro de suivi" in texted[0]["Body"]
    wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))


def test_twilio_retry_of_a_call_step_creates_nothing_new(twilio_client, twilio_runtime):
    first = post(twilio_client, voice("speech__pothole_fr")).get_data(as_text=True)
    only_request(twilio_runtime)
    again = post(twilio_client, voice("speech__pothole_fr")).get_data(as_text=True)

    assert again == first
    assert count(twilio_runtime, Request) == 1 and count(twilio_runtime, InboundMessage) == 1


def test_voicemail_without_transcription_is_needs_info_with_its_recording(twilio_client, twilio_runtime, twilio):
    fixture = voice("recorded__voicemail")
    recording = fixture["params"]["RecordingUrl"].removeprefix("https://api.twilio.com") + ".mp3"
    twilio.media[recording] = (b"ID3" + b"a" * 4000, "audio/mpeg")

    text = post(twilio_client, fixture).get_data(as_text=True)

    request = only_request(twilio_runtime)
    assert request.status == "needs_info" and request.description == ""
    assert spelled(request.code) in text

    def stored():
        with twilio_runtime.db.session() as session:
            row = session.scalar(select(Attachment).where(Attachment.request_id == request.id))
            return row if row is not None and row.fetch_state == "stored" else None
    attachment = wait_until(stored)
    assert (attachment.content_type, attachment.size) == ("audio/mpeg", 4003)


def test_transcription_becomes_the_description_and_the_request_is_routed(twilio_client, twilio_runtime, twilio, smtp_server):
    twilio.media[voice("recorded__voicemail")["params"]["RecordingUrl"].removeprefix("https://api.twilio.com") + ".mp3"] = (b"ID3", "audio/mpeg")
    post(twilio_client, voice("recorded__voicemail"))
    code = only_request(twilio_runtime).code

    for _ in range(2):  # Twilio's retry of the callback changes nothing more
        response = post(twilio_client, voice("transcription__completed"))
        assert response.status_code == 200

    request = only_request(twilio_runtime, lambda r: r.status == "routed")
    assert request.code == code and request.category == "pothole" and request.department == "travaux_publics"
    assert "nid de poule" in request.description
    department = wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
    assert len(department) == 1 and code in department[0]["Subject"]
    assert count(twilio_runtime, InboundMessage) == 2


def test_failed_transcription_leaves_the_request_for_an_agent(twilio_client, twilio_runtime):
    post(twilio_client, voice("recorded__voicemail"))
    only_request(twilio_runtime)

    assert post(twilio_client, voice("transcription__failed")).status_code == 200

    def ignored():
        with twilio_runtime.db.session() as session:
            return session.scalar(select(InboundMessage.state).where(InboundMessage.provider_id.like("transcription:%"))) == "ignored"
    wait_until(ignored)
    assert only_request(twilio_runtime).status == "needs_info"


@pytest.mark.parametrize("name", ["recorded__silence", "speech__empty"])
def test_call_without_a_message_is_told_so_and_stores_nothing(twilio_client, twilio_runtime, name):
    text = post(twilio_client, voice(name)).get_data(as_text=True)

    assert "pas reçu de message" in text and "<Hangup />" in text
    assert count(twilio_runtime, InboundMessage) == 0


def test_withheld_number_gets_the_code_spoken_but_no_sms(twilio_client, twilio_runtime, twilio):
    text = post(twilio_client, voice("call__anonymous")).get_data(as_text=True)

    request = only_request(twilio_runtime)
    assert spelled(request.code) in text and "texto" not in text
    assert request.citizen_id is None
    assert twilio.sent() == []


@pytest.mark.parametrize("name", ["call__incoming", "speech__pothole_fr", "recorded__voicemail", "transcription__completed"])
def test_every_call_step_refuses_a_bad_signature(twilio_client, twilio_runtime, name):
    assert post(twilio_client, voice(name), signature="forged").status_code == 403
    assert count(twilio_runtime, InboundMessage) == 0


def test_signature_of_one_step_replayed_on_another_is_refused(twilio_client, twilio_runtime):
    fixture = voice("speech__pothole_fr")
    assert post(twilio_client, fixture, path="/webhooks/twilio/voice/recorded?lang=fr").status_code == 403
    assert count(twilio_runtime, InboundMessage) == 0
