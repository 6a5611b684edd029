"""The flow after intake: normalizer → dedup → router → outbox, for one stored inbound message.

Runs as a background job (or inline for the gateway's own forms and API, which answer with
the decision). The whole of it is one database transaction that starts by claiming the
inbound message (gateway/claims.py): two workers given the same message cannot both process
it, and a crash half-way leaves nothing behind but the message, which the sweeper hands out
again. The job runs several messages per transaction with the same claim and ``process``
(gateway/batch.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import insert, select

from adapters.base import RawInbound
from adapters.errors import MalformedPayloadError, UnsupportedEventError
from dedup import Report, cross_citizen, current_rules, same_citizen, stored_keys
from normalizer import find_conversation, normalize, resolve_citizen
from normalizer.address import with_registered_place
from router import Facts, decide

from . import attachments, chat, claims, closure, replies, tracking
from .bounces import record_bounce
from .deferral import NotYet, defer, wait_for_reserved
from .direct import InTransaction
from .duplicates import apply_decision, born_duplicate, master_for_new
from .fresh import Fresh, insert_request, queue_fresh
from .models import (
    ContactPoint,
    Event,
    InboundMessage,
    Message,
    Request,
    utcnow,
)
from .notify import notify
from .outbox import add_delivery

log = logging.getLogger(__name__)
SYNC_ACK_CHANNELS = ("api", "web", "walk_in", "phone", "open311")  # the code is in the answer itself


def process_inbound(runtime, inbound_id: int) -> list[int]:
    """Turns one stored message into a request (or adds it to one). Returns the ids of the
    deliveries to send. Safe to call twice: the second call finds nothing to do."""
    now = utcnow()
    lease = timedelta(seconds=runtime.settings["GATEWAY_LEASE_SECONDS"])
    attempts = 0  # the claim's count, less the claim itself
    try:
        with runtime.db.session() as session:
            inbound = claims.claim(session, inbound_id, now, lease)
            if inbound is None:
                return []
            attempts = inbound.attempts - 1
            return process(runtime, session, inbound)
    except (MalformedPayloadError, UnsupportedEventError) as exc:
        claims.set_outcome(runtime, inbound_id, "ignored" if isinstance(exc, UnsupportedEventError) else "failed",
                           str(exc))
        if getattr(exc, "bounce", None) is not None:
            record_bounce(runtime, inbound_id, exc.bounce)
        return []
    except NotYet as exc:
        with runtime.db.session() as session:
            defer(session, inbound_id, attempts, exc)
        return []
    except Exception as exc:
        claims.record_failure(runtime, inbound_id, exc)
        raise


@dataclass
class Prepared:
    """The pure work on one stored message, done before the batch's write transaction opens:
    what its processing inside the transaction would compute first, from the same inputs (the
    stored payload never changes; the rules book is the one given)."""

    book: object
    parsed: object
    message: object
    decision: object | None
    decided: dict | None  # decision.as_dict(), stored with the request
    dedup_rules: object | None = None  # dedup.current_rules, read once for the batch
    owners: list | None = None  # the citizens owning its contact points, read for the batch (batch.Owners)
    later: list | None = None  # given by a batch: its new request's fresh deliveries, written with the batch's
    early: object | None = None  # given by a batch on SQLite: dedup's search, made before the write lock


def prepare(runtime, book, channel, body, headers, content_type, received_at, route: bool = True) -> Prepared:
    parsed = runtime.inbound_parser(channel).parse(RawInbound(body, dict(headers or {}), content_type))
    message = with_registered_place(
        normalize(parsed, book.city.default_language, book.city.phone_region, book.city.code_prefix), book.addresses)
    decision = None
    if route and not (message.command or message.edit_of):  # a chat command or edit is never routed
        decision = decide(book, _facts_of(book, message, received_at))
    return Prepared(book, parsed, message, decision, decision.as_dict() if decision is not None else None)


def process(runtime, session, inbound: InboundMessage, ready: Prepared | None = None) -> list[int]:
    if ready is not None and ready.book is runtime.rules.current:
        book, parsed, message = ready.book, ready.parsed, ready.message
    else:  # not prepared, or the rules were reloaded since: routed below, only if it is a new request
        ready = prepare(runtime, runtime.rules.current, inbound.channel, inbound.body, inbound.headers,
                         inbound.content_type, inbound.received_at, route=False)
        book, parsed, message = ready.book, ready.parsed, ready.message
    if message.command or message.edit_of:  # chat commands and edits are not requests
        return chat.handle(runtime, session, inbound, message)
    answered = replies.department_reply(session, runtime, message, message.reference_codes)
    if answered is not None:  # a department answering the routed e-mail, not a citizen
        _mark_processed(inbound, answered[0])
        return answered[1]
    citizen, identity_notes = resolve_citizen(session, message, ready.owners, heard_at=inbound.received_at)
    chat.heard_from(session, citizen, message, inbound.received_at)
    if parsed.opt_out is not None:
        _record_opt_out(session, citizen, message, inbound, parsed.opt_out)
        return []

    chat_window = timedelta(minutes=float(runtime.settings.get("GATEWAY_CHAT_THREAD_MINUTES") or 0))
    existing = find_conversation(session, message, citizen, inbound.received_at, chat_window)
    if existing is None and message.reference_codes:
        wait_for_reserved(session, inbound, message.reference_codes)
    related = None
    if existing is not None and closure.too_old_to_reopen(runtime, existing, inbound.received_at):
        related, existing = existing, None  # closed long ago: a new request, linked to the old one
    if existing is not None:
        _add_to_conversation(session, runtime, existing, message, inbound)
        chat.add_location(session, runtime, existing, message)
        if parsed.fills_description:
            return _fill_description(session, runtime, book, existing, message, inbound)
        return closure.reopen_if_finished(session, runtime, existing, message.text)
    decision, decided = ready.decision, ready.decided
    if decision is None:
        decision = decide(book, _facts(book, message, inbound))
        decided = decision.as_dict()
    rules = ready.dedup_rules if ready.dedup_rules is not None else current_rules(book.directory, set(book.categories))
    dedup = same_citizen(session, citizen.id if citizen else None, decision.category, message.text,
                         inbound.received_at, rules, message.lat, message.lon, message.address,
                         first_time=ready.owners == [])  # the batch read none: created just now
    if dedup.action == "join":
        existing = session.get(Request, dedup.request_id)
        session.add(Event(request_id=existing.id, actor="system:dedup", type="dedup_joined", data=dedup.as_dict()))
        _add_to_conversation(session, runtime, existing, message, inbound)
        return _tell_joined(session, runtime, existing, citizen, message, parsed, inbound)

    report = report_of(message, decision, inbound.received_at)
    duplicate = cross_citizen(session, rules, report, ready.early)
    master = master_for_new(session, duplicate)  # born a duplicate: never sent to the department
    request = _create_request(session, runtime, book, message, inbound, decision, citizen,
                              status="duplicate" if master else "needs_info" if parsed.needs_info else "routed",
                              related_to_id=related.id if related is not None else None,
                              keys=stored_keys(message.lat, message.lon, message.address, rules), decided=decided,
                              duplicate_of_id=master.id if master else None, acknowledged=parsed.acknowledged)
    events = [] if related is None else [
        dict(request_id=related.id, actor="system:pipeline", type="reported_again", data={"request": request.code}),
    ]
    events += [
        dict(request_id=request.id, actor=f"channel:{message.channel}", type="received", public=True,
             at=inbound.received_at, data={"channel": message.channel}),
        dict(request_id=request.id, actor="system:normalizer", type="normalized",
             data={"language": message.language, "language_detected": message.language_detected,
                   "citizen": citizen.id if citizen else None, "notes": identity_notes}),
        dict(request_id=request.id, actor="system:dedup", type="dedup",
             data={**dedup.as_dict(), "cross_citizen": duplicate.as_dict()}),
        dict(request_id=request.id, actor="system:router", type="routed", public=master is None,
             data={"rule": decision.rule, "matched_by": decision.matched_by, "department": decision.department,
                   "category": decision.category, "priority": decision.priority, "sla_hours": decision.sla_hours,
                   "district": decision.district, "after_hours": decision.after_hours,
                   "scores": decision.categorization, "sinks": [s["type"] for s in decision.sinks],
                   **({"held": "duplicate"} if master is not None else {})}),  # decided, never sent
    ]
    fresh = _sink_rows(request, decision.sinks) if duplicate.action != "link" or duplicate.flagged else []
    # (urgent: the department hears of it anyway)
    if master is not None:
        events += born_duplicate(session, runtime, request, citizen, master, duplicate, _thread_of(message), fresh)
    if parsed.acknowledged:  # the channel's own answer carried the tracking code (SMS TwiML): written so
        events.append(dict(request_id=request.id, actor=f"channel:{message.channel}", type="acknowledged",
                           public=True, data={"via": "reply"}))
    elif duplicate.action != "link":  # a linked reporter was told the master's code instead
        notify(session, runtime, request, citizen, "acknowledgement", decision.template,
               f"{request.code}:notify:acknowledgement", fresh=True, thread=_thread_of(message), into=fresh,
               events=events)  # why it could not be: written with the others (nothing below writes one then)
    _insert_events(session, events)
    if master is None and duplicate.action == "link":  # changed below through the ORM
        request = session.get(Request, request.id)
    deliveries = [] if master is not None else apply_decision(session, runtime, request, duplicate)
    if ready.later is not None:  # keys carrying the new code: nothing in the batch looks for them
        ready.later.extend(fresh)  # the batch writes them with its other messages' (one INSERT)
    else:
        deliveries += queue_fresh(session, fresh)  # the department's deliveries and the acknowledgement: one INSERT
    _mark_processed(inbound, request)
    log.info("inbound %s became request %s (%s → %s, rule %s)", inbound.id, request.code,
             decision.category, decision.department, decision.rule or decision.matched_by)
    return [d.id for d in deliveries if d.state == "pending"]


def report_of(message, decision, received_at) -> Report:
    """What dedup compares of a new request."""
    return Report(created_at=received_at, text=message.text, category=decision.category, lat=message.lat,
                  lon=message.lon, address=message.address, language=message.language, priority=decision.priority)


def _tell_joined(session, runtime, request: Request, citizen, message, parsed, inbound) -> list[int]:
    """A citizen writing again about their open request (not a reply: a new message, perhaps
    on another channel) is told, on that channel, that it was added to it: no second request.
    Not when the channel's own answer already spoke (an SMS's TwiML, the API and forms)."""
    if message.channel in SYNC_ACK_CHANNELS or parsed.acknowledged:
        return []
    delivery = notify(session, runtime, request, citizen, "message_added", "message_added",
                      f"{request.code}:notify:added:{inbound.id}", thread=_thread_of(message), prefer=message.channel)
    return [delivery.id] if delivery is not None and delivery.state == "pending" else []


def _thread_of(message) -> list[tuple]:
    """A new request's e-mail thread: the one message that created it (``_add_message``)."""
    return [("in", message.external_id)] if message.channel == "email" and message.external_id else []


def _facts(book, message, inbound) -> Facts:
    return _facts_of(book, message, inbound.received_at)


def _facts_of(book, message, received_at) -> Facts:
    category = message.category if message.category in book.categories else None
    return Facts(text=" ".join(filter(None, [message.subject, message.text])), language=message.language,
                 channel=message.channel, received_at=received_at, lat=message.lat,
                 lon=message.lon, category=category)


def _create_request(session, runtime, book, message, inbound, decision, citizen, status: str = "routed",
                    related_to_id: int | None = None, keys: tuple = (None, None), decided: dict | None = None,
                    duplicate_of_id: int | None = None, acknowledged: bool = False) -> Fresh:
    """The request row and its first message (gateway/fresh.py: no ORM object). ``acknowledged``:
    the channel's own answer carried its code."""
    now = utcnow()
    values = dict(
        status=status,
        kind=decision.kind,
        priority=decision.priority,
        category=decision.category,
        department=decision.department,
        channel=message.channel,
        language=message.language,
        citizen_id=citizen.id if citizen else None,
        subject=message.subject,
        description=message.text,
        address=message.address,
        lat=message.lat,
        lon=message.lon,
        district=decision.district,
        rule=decision.rule,
        decision=decided if decided is not None else decision.as_dict(),
        attributes=message.attributes,
        sla_due_at=inbound.received_at + timedelta(hours=decision.sla_hours),
        created_at=inbound.received_at,
        updated_at=now,
        acknowledged_at=inbound.received_at if message.channel in SYNC_ACK_CHANNELS or acknowledged else None,
        routed_at=now,
        related_to_id=related_to_id,
        duplicate_of_id=duplicate_of_id,
        dedup_cell=keys[0],
        dedup_street=keys[1],
    )
    request = insert_request(session, book, inbound, values)
    _add_message(session, runtime, request, message, inbound)
    return request


def _insert_events(session, rows: list[dict]) -> None:
    """Events are written, never read back here: one INSERT for all of them (executemany), no
    ORM objects, every row given every column."""
    now = utcnow()
    InTransaction(session).executemany(_table_insert(Event), [
        {"request_id": row["request_id"], "at": row.get("at", now), "actor": row["actor"], "type": row["type"],
         "public": row.get("public", False), "data": row.get("data", {})} for row in rows])


@lru_cache(maxsize=4)
def _table_insert(model):
    """A plain INSERT on the model's table, built once (no ORM unit of work, no RETURNING)."""
    return insert(model.__table__)


def _sink_rows(request, sinks: list[dict]) -> list[dict]:
    """The department's deliveries of a request created in this transaction. Their keys carry
    its code, unused until now, so none can exist yet (outbox.add_delivery looks first; the
    unique idempotency key would refuse a second one anyway): inserted with gateway/fresh.py."""
    return [dict(request_id=request.id, purpose="sink", target=sink["type"], settings=sink,
                 idempotency_key=f"{request.code}:route1:{i}:{sink['type']}") for i, sink in enumerate(sinks)]


def _add_message(session, runtime, request: Request, message, inbound: InboundMessage) -> None:
    values = dict(request_id=request.id, direction="in", channel=message.channel, body=message.text,
                  subject=message.subject, inbound_id=inbound.id, external_id=message.external_id,
                  created_at=inbound.received_at)
    if not message.attachments:  # nothing refers to the row here: written without an ORM object
        InTransaction(session).execute(_table_insert(Message), values)
        return
    row = Message(**values)
    session.add(row)
    session.flush()
    attachments.add_pending(session, request.id, row.id, message.attachments)  # files given by URL
    attachments.add_received(session, runtime, request.id, row.id, message.attachments)  # files in the message


def _add_to_conversation(session, runtime, request: Request, message, inbound: InboundMessage) -> None:
    tracking.given(session, inbound, request)  # the code its sender was given leads here
    _add_message(session, runtime, request, message, inbound)
    session.add(Event(request_id=request.id, actor=f"channel:{message.channel}", type="message_added",
                      data={"inbound": inbound.id}))
    _mark_processed(inbound, request)
    log.info("inbound %s added to request %s", inbound.id, request.code)


def _fill_description(session, runtime, book, request: Request, message, inbound: InboundMessage) -> list[int]:
    """A request created without words (a voicemail) gets them late (its transcript): the text
    becomes its description and it is routed again on it. Only while it still has none."""
    if request.description or request.status != "needs_info":
        return []
    request.description = message.text
    decision = decide(book, _facts(book, message, inbound))
    before = request.department
    request.category, request.department, request.priority = decision.category, decision.department, decision.priority
    request.kind, request.rule, request.decision = decision.kind, decision.rule, decision.as_dict()
    request.sla_due_at = inbound.received_at + timedelta(hours=decision.sla_hours)
    request.status, request.routed_at = "routed", utcnow()
    session.add(Event(request_id=request.id, actor="system:router", type="routed", public=True,
                      data={"rule": decision.rule, "matched_by": decision.matched_by, "department": decision.department,
                            "category": decision.category, "from_department": before, "reason": "description filled in"}))
    session.add(Event(request_id=request.id, actor="system:pipeline", type="status_changed", public=True,
                      data={"from": "needs_info", "to": "routed", "note": "transcription received"}))
    deliveries = [
        add_delivery(session, request, "sink", sink["type"], sink, f"{request.code}:route2:{i}:{sink['type']}")
        for i, sink in enumerate(decision.sinks)
    ]
    log.info("request %s described by a later message and routed to %s", request.code, decision.department)
    return [d.id for d in deliveries if d.state == "pending"]


def _record_opt_out(session, citizen, message, inbound: InboundMessage, opted_out: bool) -> None:
    """STOP / START: recorded on the sender's contact point for this channel; nothing else sent."""
    kind = "phone" if message.phone else None
    point = session.scalar(select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value == message.phone)) \
        if kind else None
    if point is not None:
        point.opted_out = opted_out
    inbound.state, inbound.processed_at, inbound.lease_until = "processed", utcnow(), None
    log.info("inbound %s: citizen %s %s", inbound.id, citizen.id if citizen else "-",
             "opted out" if opted_out else "opted in again")


def _mark_processed(inbound: InboundMessage, request: Request) -> None:
    inbound.state = "processed"
    inbound.request_id = request.id
    inbound.processed_at = utcnow()
    inbound.lease_until = None
