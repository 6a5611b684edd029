"""Chat channels (Messenger, Telegram): what is not a new request, and the follow-ups that are.

Commands (``/start``, ``/status [code]``, ``/langue`` / ``/language``, the "Track my request"
button) are answered with a reply queued in the outbox, like any message to a citizen, so a
reply is never lost and never sent twice (one per inbound message). An edited message is
recorded on its request, never a new one. A follow-up that shares a location sets the
request's location if it had none. Every message from a contact point stamps its
``last_inbound_at``: Messenger may only be written to within 24 hours of it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from adapters.errors import UnsupportedEventError
from dedup import current_rules, stored_keys
from normalizer import resolve_citizen
from normalizer.canonical import Normalized
from normalizer.identity import NewCitizen

from . import tracking
from .labels import status_in_sentence
from .models import (
    OPEN_STATUSES,
    Citizen,
    ContactPoint,
    Event,
    Message,
    Request,
    utcnow,
)
from .outbox import add_delivery

log = logging.getLogger(__name__)
_env = SandboxedEnvironment(autoescape=False)
MAX_LISTED = 3


def heard_from(session, citizen: Citizen | None, message: Normalized, at: datetime) -> None:
    """Stamp the contact point the citizen just wrote from (opens Messenger's 24-hour window).
    A citizen this message created (``NewCitizen``) had it written stamped."""
    came_from = message.written_from()
    if citizen is None or came_from is None or isinstance(citizen, NewCitizen):
        return
    point = session.scalar(select(ContactPoint).where(ContactPoint.kind == came_from[0],
                                                      ContactPoint.value == came_from[1]))
    if point is not None and (point.last_inbound_at is None or point.last_inbound_at < at):
        point.last_inbound_at = at


def handle(runtime, session, inbound, message: Normalized) -> list[int]:
    """A command or an edit. Returns the ids of the replies to send.

    Raises UnsupportedEventError for an edit of a message the gateway never received."""
    citizen = _citizen(session, message)
    heard_from(session, citizen, message, inbound.received_at)
    if message.edit_of:
        request = _record_edit(session, inbound, message)
        _processed(inbound, request)
        return []
    command = message.command or "start"
    language = _language(message, citizen)
    request = None
    if command == "start":
        text = "\n\n".join(_render(runtime, "chat_welcome", lang, {}) for lang in _both(language))
    elif command.startswith("language:"):
        text = _set_language(session, runtime, citizen, command.split(":", 1)[1])
    else:
        request, text = _status(session, runtime, citizen, message, language)
    delivery = _reply(session, inbound, message, request, text, language)
    _processed(inbound, request)
    log.info("inbound %s: %s command answered", inbound.id, command.split(":")[0])
    return [delivery.id] if delivery is not None and delivery.state == "pending" else []


def add_location(session, runtime, request: Request, message: Normalized) -> None:
    """A follow-up's coordinates become the request's location when it had none, or only the
    one the address register gave its address: a position the citizen shares is where they
    point. Its district and its place in dedup's index follow."""
    if message.lat is None or message.lon is None:
        return
    book = runtime.rules.current
    registered = book.addresses.find(request.address)
    if request.lat is not None and (registered is None or (registered.lat, registered.lon) != (request.lat, request.lon)):
        return
    request.lat, request.lon = message.lat, message.lon
    district = book.areas.locate(message.lat, message.lon)
    request.district = district.code if district is not None else None  # not the register's, if outside
    request.dedup_cell = stored_keys(message.lat, message.lon, request.address,
                                     current_rules(book.directory, set(book.categories)))[0]
    session.add(Event(request_id=request.id, actor=f"channel:{message.channel}", type="location_added",
                      public=True, data={"district": request.district}))


def _citizen(session, message: Normalized) -> Citizen | None:
    """The sender, without letting a command's few words change their language."""
    value = message.messenger_psid or message.telegram_chat_id
    point = session.scalar(select(ContactPoint).where(ContactPoint.kind == message.channel,
                                                      ContactPoint.value == value)) if value else None
    if point is not None:
        return session.get(Citizen, point.citizen_id)
    citizen, _ = resolve_citizen(session, message)
    return citizen


def _language(message: Normalized, citizen: Citizen | None) -> str:
    """A language command, else the citizen's own (they may have chosen it), else the hint."""
    if message.command and message.command.startswith("language:"):
        return message.command.split(":", 1)[1]
    return (citizen.language if citizen and citizen.language in ("fr", "en") else None) or message.language


def _both(first: str) -> list[str]:
    return [first, "en" if first == "fr" else "fr"]


def _set_language(session, runtime, citizen: Citizen | None, language: str) -> str:
    if citizen is not None:
        citizen.language = language
        for request in session.scalars(select(Request).where(Request.citizen_id == citizen.id,
                                                             Request.status.in_(OPEN_STATUSES))):
            request.language = language
    return _render(runtime, "chat_language_set", language, {})


def _status(session, runtime, citizen, message: Normalized, language: str) -> tuple[Request | None, str]:
    """The request(s) asked about, and the reply. A quoted code is public (like /track)."""
    if message.reference_codes:
        found = tracking.find(session, message.reference_codes[0])
        if found is None:
            return None, _render(runtime, "chat_status_unknown", language, {"code": message.reference_codes[0]})
        requests = [found]
    else:
        requests = list(session.scalars(
            select(Request).where(Request.citizen_id == citizen.id).order_by(Request.created_at.desc())
            .limit(MAX_LISTED))) if citizen is not None else []
        if not requests:
            return None, _render(runtime, "chat_status_none", language, {})
    book = runtime.rules.current
    listed = [{"code": r.code, "category": book.category_name(r.category, language),
               "status_label": status_in_sentence(r.status, language),
               "track_url": runtime.public_url(f"/track/{r.code}")} for r in requests]
    return (requests[0] if len(requests) == 1 else None), _render(runtime, "chat_status", language,
                                                                  {"requests": listed})


def _reply(session, inbound, message: Normalized, request: Request | None, text: str, language: str):
    address = message.messenger_psid if message.channel == "messenger" else message.telegram_chat_id
    if not address:
        return None
    body = {"to": address, "text": text, "subject": None, "language": language}
    return add_delivery(session, request, "notify", message.channel, {"kind": "reply", "message": body},
                        f"chat:{inbound.id}:reply")


def _record_edit(session, inbound, message: Normalized) -> Request:
    original = session.scalar(select(Message).where(Message.external_id == message.edit_of,
                                                    Message.direction == "in", Message.channel == message.channel))
    if original is None:
        raise UnsupportedEventError("edit of a message the gateway has not received")
    request = session.get(Request, original.request_id)
    row = Message(request_id=request.id, direction="in", channel=message.channel, body=message.text,
                  external_id=message.external_id, inbound_id=inbound.id, created_at=inbound.received_at)
    session.add(row)
    session.flush()
    session.add(Event(request_id=request.id, actor=f"channel:{message.channel}", type="message_edited",
                      data={"inbound": inbound.id, "message": original.id, "edited_as": row.id}))
    log.info("inbound %s: edit recorded on request %s", inbound.id, request.code)
    return request


def _processed(inbound, request: Request | None) -> None:
    inbound.state = "processed"
    inbound.request_id = request.id if request is not None else None
    inbound.processed_at = utcnow()
    inbound.lease_until = None


def _render(runtime, template: str, language: str, values: dict) -> str:
    book = runtime.rules.current
    version = book.templates[template][language]
    return _env.from_string(version.body).render(city=book.city.name.get(language), **values).strip()
