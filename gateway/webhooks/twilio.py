"""Twilio webhooks: SMS/MMS, delivery status, and the steps of a phone call.

Each route verifies X-Twilio-Signature against GATEWAY_PUBLIC_URL + path (+ query), stores the
payload with ``accept`` (unique on MessageSid, call:CallSid, transcription:RecordingSid) and
answers in TwiML at once. The answer needs the tracking code before the pipeline runs, so a
new request's code is reserved at intake (``reserve_code=True``). Whether an SMS continues an
open conversation or asks for a status is decided here by a read-only look-up, written on the
stored headers for the parser, and said in the answer. Twilio is never called from here.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta

import phonenumbers
from flask import Response, current_app, jsonify, request
from flask_babel import force_locale
from sqlalchemy import LargeBinary, String, bindparam, func, literal_column, null, select, union_all

from adapters.channels.twilio import sms as twilio_sms
from adapters.channels.twilio import verify_signature
from adapters.channels.twilio import voice as twilio_voice
from adapters.channels.twilio.common import first, form_fields, required
from adapters.errors import MalformedPayloadError, SignatureError
from normalizer.codes import find_codes, new_code
from normalizer.language import detect
from normalizer.phone import to_e164
from normalizer.text import clean, fold

from .. import labels, tracking
from ..intake import insert_inbound, write
from ..models import (
    OPEN_STATUSES,
    ContactPoint,
    Delivery,
    Event,
    InboundMessage,
    Message,
    Request,
    utcnow,
)
from . import accept, bp, enqueue
from .twilio_texts import TEXTS

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # a 1,600-character SMS with 10 media URLs is under 8 KB
DEFAULT_THREAD_MINUTES = 120
UNREACHABLE_CODES = {"30003", "30005", "30006", "21614"}  # unreachable, unknown, landline


def _runtime():
    return current_app.extensions["runtime"]


def twilio_webhook(view):
    """Size, content type and signature checks, then the view with (raw body, fields)."""

    @functools.wraps(view)
    def wrapper():
        runtime, called = _runtime(), request._get_current_object()  # each proxy look-up costs
        token = runtime.settings.get("TWILIO_AUTH_TOKEN")
        if not token:
            log.error("twilio webhook %s called but TWILIO_AUTH_TOKEN is not set", called.path)
            return jsonify(error="the Twilio channel is not configured"), 503
        if (called.content_length or 0) > MAX_BODY:
            return jsonify(error=f"body too large ({MAX_BODY} bytes at most)"), 413
        body = called.get_data(cache=True)
        if len(body) > MAX_BODY:
            return jsonify(error=f"body too large ({MAX_BODY} bytes at most)"), 413
        try:
            fields = form_fields(body, called.content_type or "")
            url = runtime.public_url(called.full_path if called.query_string else called.path)
            verify_signature(str(token), url, fields, called.headers.get("X-Twilio-Signature"))
            return view(body, fields)
        except SignatureError as exc:
            log.warning("twilio webhook %s rejected: %s", called.path, exc)  # never the body
            return jsonify(error="invalid signature"), 403
        except MalformedPayloadError as exc:
            log.warning("twilio webhook %s malformed: %s", called.path, exc)
            return jsonify(error=str(exc), field=exc.field), 400

    return wrapper


def twiml(document: str) -> Response:
    return Response(document, status=200, mimetype="text/xml")


# --- SMS ---------------------------------------------------------------------------------------

@bp.post("/twilio/sms")
@twilio_webhook
def twilio_sms_inbound(body: bytes, fields):
    runtime = _runtime()
    book = runtime.rules.current
    sid = required(fields, "MessageSid")
    phone = to_e164(required(fields, "From"), book.city.phone_region)
    text = first(fields, "Body")
    if text is None:
        raise MalformedPayloadError("Body is missing", field="Body")
    kind, rest = twilio_sms.command(text)
    if kind in ("opt_out", "opt_in"):
        _accept_sms(sid, body, {})
        return twiml(twilio_sms.sms_reply(None))  # Twilio confirms opt-outs itself
    language = detect(clean(text), book.city.default_language)
    words = TEXTS[language]
    city = book.city.name.get(language)
    if kind == "status":
        _accept_sms(sid, body, {})
        return twiml(twilio_sms.sms_reply(_status_answer(rest, phone, language, city)))
    media = first(fields, "NumMedia") or "0"
    if not twilio_sms.has_words(text) and not (media.isdigit() and int(media) > 0):
        return twiml(twilio_sms.sms_reply(words["empty"].format(city=city)))  # nothing stored
    content_type = request.content_type

    def store(connection):
        # One connection for the look-up and the INSERT, committed (durably) before the answer.
        thread = _open_conversation(runtime, book, connection, phone, text, sid)
        headers = {twilio_sms.REFERENCE_HEADER: thread} if thread else {twilio_sms.ANSWERED_HEADER: "acknowledged"}
        # A new request's code is drawn here: on a first delivery (the usual case) the answer
        # needs no re-read; a provider's retry gets the first one's headers and code back.
        drawn = new_code(book.city.code_prefix, utcnow().year) if thread is None else None
        return insert_inbound(connection, "twilio_sms", sid, body, content_type, headers, drawn, sender=phone)

    stored = write(runtime, store)
    if stored.created:
        enqueue("process_inbound", stored.id)
    if twilio_sms.REFERENCE_HEADER in stored.headers:  # also on a retry: the same answer as the first time
        return twiml(twilio_sms.sms_reply(words["added"].format(city=city, code=stored.headers[twilio_sms.REFERENCE_HEADER])))
    return twiml(twilio_sms.sms_reply(words["acknowledged"].format(city=city, code=stored.code)))


def _accept_sms(sid: str, body: bytes, headers: dict) -> int:
    inbound_id, _created = accept("twilio_sms", sid, body, request.content_type, headers)
    return inbound_id


def _stored(inbound_id: int) -> tuple[dict, str | None]:
    """The stored headers and the request's code (or the one reserved for it)."""
    with _runtime().db.session() as session:
        inbound = session.get(InboundMessage, inbound_id)
        code = inbound.reserved_code
        if inbound.request_id is not None:
            code = session.scalar(select(Request.code).where(Request.id == inbound.request_id))
        return dict(inbound.headers or {}), code


def _open_requests(session, phone: str | None) -> list[Request]:
    if not phone:
        return []
    citizen_id = session.scalar(select(ContactPoint.citizen_id).where(ContactPoint.kind == "phone",
                                                                      ContactPoint.value == phone))
    if citizen_id is None:
        return []
    return list(session.scalars(select(Request).where(Request.citizen_id == citizen_id,
                                                      Request.status.in_(OPEN_STATUSES))
                                .order_by(Request.created_at.desc()).limit(5)))


def _open_conversation(runtime, book, connection, phone: str | None, text: str, sid: str = "") -> str | None:
    """The code of the sender's request this SMS continues, or None for a new request.

    It continues one when it quotes one of the sender's own codes, or when the sender wrote
    about it within the window and the new text is not clearly about another category. The
    request may not exist yet: an SMS that opened one and is still waiting for the pipeline
    (a backlog, a second SMS seconds after the first) already gave the sender its code, and a
    follow-up joins that code instead of opening a second request. One indexed SELECT: the
    sender's open requests (latest first, with the time of their last inbound message) and
    their latest waiting SMS that reserved a code (not this one: a provider's retry)."""
    if not phone:
        return None
    mine = connection.execute(_OPEN_CONVERSATION, {"phone": phone, "sid": sid}).all()
    if not mine:
        return None
    quoted = set(find_codes(text, book.city.code_prefix))
    for candidate in mine:
        if candidate.code in quoted:
            return candidate.code
    leads = set(tracking.joined_codes(connection, quoted).values())  # codes given for messages that joined one
    for candidate in mine:
        if candidate.code in leads:
            return candidate.code
    latest = max(mine, key=lambda row: row.last_in or _NEVER)
    minutes = float(runtime.settings.get("TWILIO_CONVERSATION_MINUTES") or DEFAULT_THREAD_MINUTES)
    if latest.last_in is None or utcnow() - latest.last_in > timedelta(minutes=minutes):
        return None
    category = book.categorizer.categorize(fold(clean(text))).category
    if category is None:
        return latest.code
    about = latest.category
    if latest.body is not None:  # waiting: its category is what its text is about
        about = book.categorizer.categorize(fold(clean(first(form_fields(latest.body, _FORM), "Body") or ""))).category
    if about is not None and category != about:
        return None  # clearly a new subject
    return latest.code


_NEVER = datetime.min.replace(tzinfo=UTC)
_FORM = "application/x-www-form-urlencoded"
_OPEN = [literal_column(f"'{status}'") for status in OPEN_STATUSES]  # constants: no per-call IN expansion
_OPEN_REQUESTS = (
    select(Request.code, Request.category,
           select(func.max(Message.created_at)).where(Message.request_id == Request.id, Message.direction == "in")
           .scalar_subquery().label("last_in"), null().cast(LargeBinary).label("body"))
    .join(ContactPoint, ContactPoint.citizen_id == Request.citizen_id)
    .where(ContactPoint.kind == "phone", ContactPoint.value == bindparam("phone"),
           Request.status.in_(_OPEN))
    .order_by(Request.created_at.desc()).limit(5)).subquery()
_WAITING_SMS = (
    select(InboundMessage.reserved_code.label("code"), null().cast(String).label("category"),
           InboundMessage.received_at.label("last_in"), InboundMessage.body)
    .where(InboundMessage.sender == bindparam("phone"), InboundMessage.channel == "twilio_sms",
           InboundMessage.provider_id != bindparam("sid"),
           InboundMessage.reserved_code.is_not(None), InboundMessage.request_id.is_(None),
           InboundMessage.state.in_([literal_column("'received'"), literal_column("'processing'")]))
    .order_by(InboundMessage.id.desc()).limit(1)).subquery()
_OPEN_CONVERSATION = union_all(select(_OPEN_REQUESTS), select(_WAITING_SMS))


def _status_answer(rest: str, phone: str | None, language: str, city: str) -> str:
    book = _runtime().rules.current
    words = TEXTS[language]
    codes = find_codes(rest, book.city.code_prefix)
    with _runtime().db.session() as session:
        if codes:
            found = list({r.id: r for r in (tracking.find(session, code) for code in codes[:3]) if r}.values())
        elif rest.strip():
            return words["status_unknown"].format(city=city)
        else:
            found = _open_requests(session, phone)[:3]
        if not found:
            return words["status_unknown" if codes else "status_none"].format(city=city)
        with force_locale(language):
            lines = [words["status_line"].format(code=r.code, status=str(labels.STATUS.get(r.status, r.status)),
                                                 category=book.category_name(r.category, language)) for r in found]
    return f"{city} 311 — " + " ; ".join(lines)


@bp.post("/twilio/sms/status")
@twilio_webhook
def twilio_sms_status(body: bytes, fields):
    """Delivery reports for what the gateway sent: delivered / undelivered / failed."""
    sid, status = required(fields, "MessageSid"), required(fields, "MessageStatus")
    error = first(fields, "ErrorCode") or None
    with _runtime().db.session() as session:
        delivery = session.scalar(select(Delivery).where(Delivery.external_id == sid, Delivery.target == "sms"))
        if delivery is None:
            return "", 204  # not ours (or sent by another system): nothing to record
        already = session.scalars(select(Event).where(Event.request_id == delivery.request_id,
                                                      Event.type == "delivery_status")).all()
        if any(e.data.get("delivery") == delivery.id and e.data.get("status") == status for e in already):
            return "", 204  # Twilio's retry of the same report
        session.add(Event(request_id=delivery.request_id, actor="channel:sms", type="delivery_status",
                          data={"delivery": delivery.id, "status": status, "error_code": error}))
        if status in ("undelivered", "failed") and error in UNREACHABLE_CODES | {"21610"}:
            point = session.scalar(select(ContactPoint).where(ContactPoint.kind == "phone",
                                                              ContactPoint.value == first(fields, "To")))
            if point is not None:
                point.opted_out = point.opted_out or error == "21610"
                point.undeliverable = point.undeliverable or error in UNREACHABLE_CODES
    log.info("sms delivery %s: %s%s", delivery.id, status, f" (error {error})" if error else "")
    return "", 204


# --- Voice -------------------------------------------------------------------------------------

VOICE_PATH = "/webhooks/twilio/voice"


def _voices() -> dict[str, str]:
    settings = _runtime().settings
    return {"fr": settings.get("TWILIO_VOICE_FR") or "Polly.Chantal", "en": settings.get("TWILIO_VOICE_EN") or "alice"}


def _texts(language: str) -> tuple[dict, str]:
    city = _runtime().rules.current.city.name.get(language)
    return {k: v.replace("{city}", city) for k, v in TEXTS[language].items()}, city


def _language() -> str:
    return request.args.get("lang") if request.args.get("lang") in ("fr", "en") else "fr"


@bp.post("/twilio/voice")
@twilio_webhook
def twilio_voice_call(body: bytes, fields):
    required(fields, "CallSid")
    greetings = {lang: _texts(lang)[0]["greeting"] for lang in ("fr", "en")}
    return twiml(twilio_voice.greeting(greetings, f"{VOICE_PATH}/language", _voices()))


@bp.post("/twilio/voice/language")
@twilio_webhook
def twilio_voice_language(body: bytes, fields):
    required(fields, "CallSid")
    digits, speech = first(fields, "Digits") or "", fold(first(fields, "SpeechResult") or "")
    language = _language()
    if digits == "2" or "english" in speech or "anglais" in speech:
        language = "en"
    elif digits == "1" or "francais" in speech or "french" in speech:
        language = "fr"
    words, _ = _texts(language)
    steps = {step: f"{VOICE_PATH}/{step}?lang={language}" for step in ("speech", "recorded", "transcription")}
    return twiml(twilio_voice.describe(language, words["describe"], words["voicemail"], steps["speech"],
                                       steps["recorded"], steps["transcription"], _voices()))


@bp.post("/twilio/voice/speech")
@twilio_webhook
def twilio_voice_speech(body: bytes, fields):
    """The caller's description by speech recognition: the request, and its code read out."""
    call = required(fields, "CallSid")
    language = _language()
    if not twilio_sms.has_words(first(fields, "SpeechResult") or ""):
        words, _ = _texts(language)
        return twiml(twilio_voice.say_and_hang_up(language, words["nothing_recorded"], _voices()))
    return _read_code_for(call, body, fields, language)


@bp.post("/twilio/voice/recorded")
@twilio_webhook
def twilio_voice_recorded(body: bytes, fields):
    """A voicemail: the request (needs_info until its transcription arrives), its code read out."""
    call = required(fields, "CallSid")
    language = _language()
    duration = first(fields, "RecordingDuration") or "0"
    if not first(fields, "RecordingUrl") or (duration.isdigit() and int(duration) == 0):
        words, _ = _texts(language)
        return twiml(twilio_voice.say_and_hang_up(language, words["nothing_recorded"], _voices()))
    required(fields, "RecordingSid")
    return _read_code_for(call, body, fields, language)


def _read_code_for(call: str, body: bytes, fields, language: str) -> Response:
    inbound_id, _ = accept("twilio_voice", f"call:{call}", body, request.content_type,
                           {twilio_voice.LANGUAGE_HEADER: language}, reserve_code=True)
    _, code = _stored(inbound_id)
    words, _ = _texts(language)
    texting = _can_text(twilio_voice.caller(fields))
    return twiml(twilio_voice.read_code(language, words["code_before"], code,
                                        words["code_sms" if texting else "code_after"], _voices()))


def _can_text(number: str | None) -> bool:
    """Whether to promise an SMS: a number that is not a known landline, and SMS configured."""
    if not number or _runtime().outbound("sms") is None:
        return False
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(number, _runtime().rules.current.city.phone_region))
    except phonenumbers.NumberParseException:
        return False
    return kind not in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE)


@bp.post("/twilio/voice/transcription")
@twilio_webhook
def twilio_voice_transcription(body: bytes, fields):
    """Twilio's transcription of a voicemail, minutes after the call; becomes the description."""
    call, recording = required(fields, "CallSid"), required(fields, "RecordingSid")
    headers = {twilio_voice.LANGUAGE_HEADER: _language()}
    with _runtime().db.session() as session:
        inbound = session.scalar(select(InboundMessage).where(InboundMessage.channel == "twilio_voice",
                                                              InboundMessage.provider_id == f"call:{call}"))
        if inbound is not None:
            code = inbound.reserved_code
            if inbound.request_id is not None:
                code = session.scalar(select(Request.code).where(Request.id == inbound.request_id))
            headers[twilio_voice.REFERENCE_HEADER] = code
    accept("twilio_voice", f"transcription:{recording}", body, request.content_type, headers)
    return twiml(twilio_voice.empty())
