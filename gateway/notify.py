"""Messages to citizens: which channel, in which language, from which template.

Templates live in config/templates.yaml (FR and EN, Jinja2 sandboxed) so an administrator
can edit them; `<name>_<channel>` (e.g. `status_update_sms`) is used on that channel when it
exists. The channel is the one the citizen wrote on when it can answer, otherwise
their preferred one, otherwise any contact point that can be written to. Nothing is sent to
a contact point that opted out or bounced.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from jinja2.sandbox import SandboxedEnvironment

from .fresh import queue_fresh
from .mail_thread import thread_fields
from .models import Citizen, ContactPoint, Event, Request, utcnow
from .outbox import add_delivery

CONTACT_FOR_CHANNEL = {"email": "email", "sms": "phone", "messenger": "messenger", "telegram": "telegram"}
# Channels that may only write within a while of the citizen's last message (Messenger: 24 h
# without a message tag); outside it the provider refuses, so another contact point is used.
WINDOWS = {"messenger": timedelta(hours=24)}
_env = SandboxedEnvironment(autoescape=False)


def choose_channel(runtime, request: Request, citizen: Citizen | None,
                   prefer: str | None = None) -> tuple[str, str] | None:
    """(channel, address) to write to, or None when the citizen cannot be reached. ``prefer``:
    the channel of the message answered, when it is not the request's."""
    if citizen is None or not citizen.consent:
        return None
    order = [prefer, request.channel, citizen.preferred_channel, "email", "sms", "messenger", "telegram"]
    for channel in dict.fromkeys(c for c in order if c in CONTACT_FOR_CHANNEL):
        point = citizen.contact(CONTACT_FOR_CHANNEL[channel])
        if point is not None and not point.opted_out and runtime.outbound(channel) is not None \
                and within_window(point, channel):
            return channel, point.value
    return None


def within_window(point: ContactPoint, channel: str) -> bool:
    window = WINDOWS.get(channel)
    if window is None:
        return True
    return point.last_inbound_at is not None and utcnow() - point.last_inbound_at < window


def _window_closed(citizen: Citizen | None, channel: str) -> bool:
    point = citizen.contact(CONTACT_FOR_CHANNEL[channel]) if citizen and channel in WINDOWS else None
    return point is not None and not point.opted_out and not within_window(point, channel)


def render(runtime, template: str, request: Request, extra: dict | None = None,
           language: str | None = None) -> tuple[str | None, str]:
    """(subject, body) of ``template`` for ``request``, in ``language`` (default: the request's)."""
    book = runtime.rules.current
    language = language or request.language
    language = language if language in ("fr", "en") else book.city.default_language
    version = book.templates.get(template, book.templates["acknowledgement"])[language]
    due = request.sla_due_at.astimezone(book.timezone).strftime("%Y-%m-%d %H:%M") if request.sla_due_at else ""
    values = {
        "code": request.code,
        "category": book.category_name(request.category, language),
        "city": book.city.name.get(language),
        "track_url": runtime.public_url(f"/track/{request.code}"),
        "sla_due": due,
        "priority": request.priority,
        "status": request.status,
        "place": request.address or "",
        **(extra or {}),
    }
    subject = _compiled(version.subject).render(values).strip() if version.subject else None
    return subject, _compiled(version.body).render(values)


@lru_cache(maxsize=512)
def _compiled(source: str):
    """Compiling a template costs more than rendering it (~4 ms against ~0.1 ms); keyed by its
    text, so an edited template is compiled afresh."""
    return _env.from_string(source)


def notify(session, runtime, request: Request, citizen: Citizen | None, kind: str, template: str,
           key: str, extra: dict | None = None, fresh: bool = False, thread: list[tuple] | None = None,
           into: list[dict] | None = None, prefer: str | None = None, events: list[dict] | None = None):
    """Queue one message to the citizen; records why when it cannot be sent. ``fresh``: the
    request was created in this transaction, so no delivery can hold ``key`` (it carries the
    new code) and the row is inserted without a look-up (gateway/fresh.py); with ``into``, it
    is appended there instead, for the caller to insert with its other fresh rows in one
    statement (None is returned). ``thread``: the request's e-mail messages when the caller
    knows them (mail_thread.thread_fields). ``prefer``: the channel to answer on first (the
    message answered came on it). ``events``: why it could not be sent is appended there as
    an event's row, for the caller to write with its others (pipeline._insert_events), instead
    of an ORM object."""
    target = choose_channel(runtime, request, citizen, prefer)
    first = prefer or request.channel
    closed = _window_closed(citizen, first)
    if closed:
        _record(session, events, request.id, "not_deliverable_on_channel",
                {"kind": kind, "channel": first, "reason": "messaging window closed",
                 "instead": target[0] if target else None})
    if target is None:
        reason = "no reachable contact point" if citizen is not None else "no contact given"
        if closed:
            reason = f"{first} messaging window closed and no other contact point"
        _record(session, events, request.id, "notification_skipped", {"kind": kind, "reason": reason})
        return None
    channel, address = target
    short = f"{template}_{channel}"  # e.g. status_update_sms: a text message is not an e-mail
    if short in runtime.rules.current.templates:
        template = short
    subject, text = render(runtime, template, request, extra)
    message = {"to": address, "text": text, "subject": subject, "language": request.language}
    if channel == "email":
        message.update(thread_fields(session, request, subject, thread))
    settings = {"kind": kind, "message": message}
    if fresh:
        row = dict(request_id=request.id, purpose="notify", target=channel, settings=settings, idempotency_key=key)
        if into is not None:
            into.append(row)
            return None
        return queue_fresh(session, [row])[0]
    return add_delivery(session, request, "notify", channel, settings, key)


def _record(session, events: list[dict] | None, request_id: int, kind: str, data: dict) -> None:
    row = dict(request_id=request_id, actor="system:notify", type=kind, data=data)
    if events is not None:
        events.append(row)
    else:
        session.add(Event(**row))
