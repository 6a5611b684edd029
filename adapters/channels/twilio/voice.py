"""Phone calls through Twilio Voice: the call flow in TwiML, and its payloads as citizen messages.

Docs: https://www.twilio.com/docs/usage/webhooks/voice-webhooks (call fields),
https://www.twilio.com/docs/voice/twiml/gather (speech recognition, ``SpeechResult``),
https://www.twilio.com/docs/voice/twiml/record (``RecordingUrl``, ``transcribeCallback``),
https://www.twilio.com/docs/voice/twiml/say (voices and languages).

Signature: see common.py; every step of the call (greeting, language, speech, recording,
transcription) is a signed POST. The flow: greeting (fr-CA then en-CA) → language by key
(1/2) or by speech → the caller describes the problem (Gather input=speech in their language)
→ without speech, a voicemail (Record with transcription) → the tracking code read out digit
by digit, twice → hang up. Quirks: the transcription arrives minutes later on its own
callback (``TranscriptionStatus`` completed/failed) and is capped by Twilio at 2 minutes of
audio; ``RecordingUrl`` has no extension (``.mp3`` asks for MP3); a withheld caller id comes
as ``Anonymous``, ``Restricted`` or ``+266696687``; Twilio retries a callback with the same
CallSid/RecordingSid, which the gateway stores only once.
"""

from __future__ import annotations

from ...base import Attachment, CitizenMessage, Contact, RawInbound
from ...errors import MalformedPayloadError, UnsupportedEventError
from .common import first, form_fields, required
from .sms import has_words

LANGUAGE_HEADER = "X-Gateway-Language"  # the language chosen in the call, stored by the webhook
REFERENCE_HEADER = "X-Gateway-Reference"  # the call's tracking code, for its transcription
LOCALES = {"fr": "fr-CA", "en": "en-CA"}
WITHHELD = {"", "anonymous", "restricted", "unknown", "private", "+266696687", "+7378742833", "+2562533"}


def caller(fields: dict[str, list[str]]) -> str | None:
    """The caller's number, or None when it is withheld."""
    number = (first(fields, "From") or "").strip()
    return None if number.lower() in WITHHELD else number


class TwilioVoiceChannel:
    """Parses the stored steps of a call (speech result, recording, transcription)."""

    name = "twilio_voice"

    def __init__(self, account=None):
        self.account = account

    @classmethod
    def for_inbound(cls, settings) -> TwilioVoiceChannel:
        from ...errors import AdapterMisconfiguredError
        from .common import TwilioAccount

        try:
            return cls(TwilioAccount.from_settings(settings))
        except AdapterMisconfiguredError:
            return cls(None)

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError (no CallSid) or UnsupportedEventError (a failed or
        empty transcription: the request stays needs_info with its recording)."""
        fields = form_fields(raw.body, raw.content_type)
        required(fields, "CallSid")
        language = raw.headers.get(LANGUAGE_HEADER) if raw.headers.get(LANGUAGE_HEADER) in LOCALES else None
        contact = Contact(phone=caller(fields), preferred_channel="sms" if caller(fields) else None)
        if first(fields, "TranscriptionSid") or first(fields, "TranscriptionStatus"):
            return _transcription(fields, raw, contact, language)
        speech = (first(fields, "SpeechResult") or "").strip()
        if has_words(speech):
            return CitizenMessage(channel="phone", text=speech, contact=contact, language=language)
        recording = first(fields, "RecordingUrl")
        if not recording:
            raise MalformedPayloadError("neither SpeechResult nor RecordingUrl", field="RecordingUrl")
        sid = required(fields, "RecordingSid")
        audio = Attachment(filename=f"{sid}.mp3", content_type="audio/mpeg", url=f"{recording}.mp3")
        return CitizenMessage(channel="phone", text="", contact=contact, language=language,
                              attachments=(audio,), needs_info=True)

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """A call recording. Raises as TwilioAccount.fetch, or AdapterMisconfiguredError."""
        from ...errors import AdapterMisconfiguredError

        if self.account is None:
            raise AdapterMisconfiguredError("Twilio is not configured: recordings cannot be fetched")
        return self.account.fetch(url, max_bytes)


def _transcription(fields, raw: RawInbound, contact: Contact, language: str | None) -> CitizenMessage:
    text = (first(fields, "TranscriptionText") or "").strip()
    if first(fields, "TranscriptionStatus") != "completed" or not has_words(text):
        raise UnsupportedEventError("no usable transcription: the recording waits for an agent")
    code = raw.headers.get(REFERENCE_HEADER)
    if not code:
        raise UnsupportedEventError("transcription of a call the gateway has no record of")
    return CitizenMessage(channel="phone", text=text, contact=contact, language=language,
                          reference_code=code, fills_description=True)


# TwiML for each step. Texts come from the gateway (they are the city's words, in two languages).

def _say(node, text: str, language: str, voices: dict[str, str]) -> None:
    node.say(text, language=LOCALES[language], voice=voices.get(language) or None)


def greeting(texts: dict[str, str], language_url: str, voices: dict[str, str]) -> str:
    """Bilingual welcome; key 1 / 'français', key 2 / 'English'; silence means French."""
    from twilio.twiml.voice_response import Gather, VoiceResponse

    response = VoiceResponse()
    gather = Gather(input="dtmf speech", num_digits=1, action=language_url, method="POST", timeout=5,
                    language="fr-CA", hints="français, anglais, English, French", speech_timeout="auto")
    _say(gather, texts["fr"], "fr", voices)
    _say(gather, texts["en"], "en", voices)
    response.append(gather)
    response.redirect(f"{language_url}?lang=fr", method="POST")
    return str(response)


def describe(language: str, prompt: str, voicemail_prompt: str, speech_url: str, recorded_url: str,
             transcription_url: str, voices: dict[str, str], max_seconds: int = 120) -> str:
    """Ask for the problem by speech; without speech, take a voicemail with transcription."""
    from twilio.twiml.voice_response import Gather, VoiceResponse

    response = VoiceResponse()
    gather = Gather(input="speech", language=LOCALES[language], action=speech_url, method="POST",
                    timeout=6, speech_timeout="auto")
    _say(gather, prompt, language, voices)
    response.append(gather)
    _say(response, voicemail_prompt, language, voices)
    response.record(action=recorded_url, method="POST", max_length=max_seconds, play_beep=True,
                    transcribe=True, transcribe_callback=transcription_url, timeout=5)
    return str(response)


def read_code(language: str, before: str, code: str, after: str, voices: dict[str, str]) -> str:
    """The tracking code read out character by character, twice, then hang up."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    spelled = ", ".join(ch for ch in code if ch.isalnum())
    _say(response, before, language, voices)
    for _ in range(2):
        _say(response, spelled, language, voices)
        response.pause(length=1)
    if after:
        _say(response, after, language, voices)
    response.hangup()
    return str(response)


def say_and_hang_up(language: str, text: str, voices: dict[str, str]) -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    _say(response, text, language, voices)
    response.hangup()
    return str(response)


def empty() -> str:
    from twilio.twiml.voice_response import VoiceResponse

    return str(VoiceResponse())
