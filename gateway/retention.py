"""How long citizens' personal data is kept: GATEWAY_RETENTION_DAYS after their last request
ended (Québec's access-to-information act, s. 73: personal information is destroyed or
anonymized once the purpose it was collected for is achieved).

Two passes, by the scheduler at most once an hour (``purge``), or by hand (``gateway
privacy purge``):

- **Citizens** none of whose requests (theirs, or followed as a duplicate's reporter) is
  open, nor was created, changed, resolved, closed or written to within the period, and who
  wrote from no contact point within it, are forgotten: their name and preferred channel
  erased, their contact points and follows deleted, the address each reply to them went to
  removed from its delivery, and the time recorded (``citizens.forgotten_at``). A message
  from them afterwards makes a new citizen.
- **Raw payloads**: a provider's message as received (``inbound_messages``: the body, its
  headers, the sender's number) is erased once processed and older than the period; what it
  said is kept as the request's message.

What they wrote in their requests and messages is kept (the city's record of the work: what,
where, when, which department), with the phone numbers, e-mail addresses and their own name
found in it replaced ("[coordonnée effacée]", "[nom effacé]"). Kept too: the requests' history
(events never hold a contact: see ``citizens.link_contact``), attachments, and every count of
the dashboards. ``forget`` erases one citizen at once, on their request.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, exists, func, or_, select, update

from .logs import mask
from .models import (
    OPEN_STATUSES,
    Citizen,
    ContactPoint,
    Delivery,
    Follower,
    InboundMessage,
    Message,
    Request,
    utcnow,
)

log = logging.getLogger(__name__)
BATCH = 500  # citizens (or raw payloads) per transaction
EVERY = timedelta(hours=1)  # the scheduler's pace: the passes read every citizen
ENDED = ("processed", "ignored", "failed")  # raw payloads nothing will read again
FORGOTTEN = "not sent: the citizen's personal data was erased"
ERASED = {"fr": ("[coordonnée effacée]", "[nom effacé]"), "en": ("[contact erased]", "[name erased]")}


def purge(runtime, now: datetime | None = None) -> dict[str, int]:
    """Both passes, if GATEWAY_RETENTION_DAYS is set and the last ones (in this process) are
    an hour old. Returns what was erased: {"citizens": n, "payloads": n}."""
    now = now or utcnow()
    days = float(runtime.settings.get("GATEWAY_RETENTION_DAYS") or 0)
    last = runtime.retention_done_at
    if not days > 0 or (last is not None and now - last < EVERY):
        return {"citizens": 0, "payloads": 0}
    done = run(runtime, now - timedelta(days=days), now)
    runtime.retention_done_at = now
    if done["citizens"] or done["payloads"]:
        log.info("retention: %s citizens forgotten, %s raw payloads erased (older than %g days)",
                 done["citizens"], done["payloads"], days)
    return done


def run(runtime, cutoff: datetime, now: datetime, dry_run: bool = False) -> dict[str, int]:
    """Both passes for everything that ended before ``cutoff``; with ``dry_run``, only counted."""
    citizens = payloads = 0
    after = 0
    while True:
        with runtime.db.session() as session:
            due = list(session.scalars(_due_citizens(cutoff, after)))
            if due and not dry_run:
                _forget(session, due, now)
        citizens += len(due)
        if len(due) < BATCH:
            break
        after = due[-1]
    after = runtime.retention_payloads_after  # erased up to there (in this process)
    while True:
        with runtime.db.session() as session:
            rows = session.execute(
                select(InboundMessage.id, InboundMessage.received_at).where(InboundMessage.id > after)
                .where(InboundMessage.state.in_(ENDED), _not_erased())
                .order_by(InboundMessage.id).limit(BATCH)).all()
            old = [row.id for row in rows if row.received_at < cutoff]
            if old and not dry_run:
                session.execute(update(InboundMessage).where(InboundMessage.id.in_(old))
                                .values(body=b"", headers={}, sender=None))
        payloads += len(old)
        if old and not dry_run:
            runtime.retention_payloads_after = old[-1]
        if len(rows) < BATCH or len(old) < len(rows):  # in order of arrival: the rest is newer
            break
        after = rows[-1].id
    return {"citizens": citizens, "payloads": payloads}


def reached_at(session, values: list[str]) -> int | None:
    """The citizen owning one of the contact points ``values`` (its stored forms), or None."""
    return session.scalar(select(ContactPoint.citizen_id).where(ContactPoint.value.in_(values)).limit(1))


def forget(session, citizen_id: int) -> None:
    """One citizen forgotten at once, on their request, whatever their requests (the open
    ones go on, without news to them): what the period erases, and the raw payloads of
    their requests and of their text messages whatever their age, once processed (a message
    still waiting is processed first: an accepted message is never lost)."""
    phones = list(session.scalars(select(ContactPoint.value).where(ContactPoint.citizen_id == citizen_id,
                                                                   ContactPoint.kind == "phone")))
    requests = select(Request.id).where(Request.citizen_id == citizen_id)
    session.execute(update(InboundMessage).where(or_(InboundMessage.request_id.in_(requests),
                                                     InboundMessage.sender.in_(phones)),
                                                 InboundMessage.state.in_(ENDED))  # a waiting one is still to do
                    .values(body=b"", headers={}, sender=None))
    _forget(session, [citizen_id], utcnow())
    log.info("citizen %s forgotten on request", citizen_id)


def summary(session, days: float) -> dict:
    """For the administrators' page: the period, how many citizens were forgotten, when last."""
    count, last = session.execute(select(func.count(), func.max(Citizen.forgotten_at))
                                  .where(Citizen.forgotten_at.is_not(None))).one()
    return {"days": days, "forgotten": count, "last": last}


def _due_citizens(cutoff: datetime, after: int):
    """The next BATCH citizens (by id, after ``after``) with nothing open or recent."""
    alive = or_(Request.status.in_(OPEN_STATUSES), Request.created_at >= cutoff, Request.updated_at >= cutoff,
                Request.resolved_at >= cutoff, Request.closed_at >= cutoff)
    theirs = exists().where(Request.citizen_id == Citizen.id, alive)
    followed = exists().where(Follower.citizen_id == Citizen.id, Follower.request_id == Request.id, alive)
    written = exists().where(Request.citizen_id == Citizen.id, Message.request_id == Request.id,
                             Message.created_at >= cutoff)
    heard = exists().where(ContactPoint.citizen_id == Citizen.id, ContactPoint.last_inbound_at >= cutoff)
    return (select(Citizen.id).where(Citizen.id > after, Citizen.forgotten_at.is_(None), Citizen.created_at < cutoff,
                                     ~theirs, ~followed, ~written, ~heard)
            .order_by(Citizen.id).limit(BATCH))


def _forget(session, citizen_ids: list[int], now: datetime) -> None:
    """Erase what identifies these citizens; the replies sent to them (on their requests, or
    on a request they followed) keep their text but no longer say where they went, and those
    not sent yet never will be (dead, saying why)."""
    _erase_in_texts(session, citizen_ids)
    values = set(session.scalars(select(ContactPoint.value).where(ContactPoint.citizen_id.in_(citizen_ids))))
    requests = select(Request.id).where(Request.citizen_id.in_(citizen_ids)).union(
        select(Follower.request_id).where(Follower.citizen_id.in_(citizen_ids)))
    sent = session.execute(select(Delivery.id, Delivery.settings, Delivery.state).where(
        Delivery.request_id.in_(requests), Delivery.purpose == "notify")).all()
    for delivery_id, settings, state in sent:
        message = dict((settings or {}).get("message") or {})
        if message.get("to") is not None and message["to"] in values:
            cancelled = {"state": "dead", "last_error": FORGOTTEN} if state in ("pending", "sending") else {}
            session.execute(update(Delivery).where(Delivery.id == delivery_id)
                            .values(settings={**settings, "message": {**message, "to": None}}, **cancelled))
    session.execute(update(Citizen).where(Citizen.id.in_(citizen_ids))
                    .values(name=None, preferred_channel=None, forgotten_at=now))
    session.execute(delete(ContactPoint).where(ContactPoint.citizen_id.in_(citizen_ids)))
    session.execute(delete(Follower).where(Follower.citizen_id.in_(citizen_ids)))


def _erase_in_texts(session, citizen_ids: list[int]) -> None:
    """The phone numbers, e-mail addresses and own name the citizens wrote in their requests
    (description, subject) and in the messages they sent, replaced; the rest of their words
    kept. Written without touching the requests' time of change, one statement per table."""
    names = dict(session.execute(select(Citizen.id, Citizen.name).where(Citizen.id.in_(citizen_ids),
                                                                         Citizen.name.is_not(None))).all())
    theirs = session.execute(select(Request.id, Request.citizen_id, Request.language, Request.description,
                                    Request.subject).where(Request.citizen_id.in_(citizen_ids))).all()
    said = session.execute(select(Message.id, Message.body, Message.subject, Request.citizen_id, Request.language)
                           .join(Request, Request.id == Message.request_id)
                           .where(Request.citizen_id.in_(citizen_ids), Message.direction == "in")).all()
    for table, rows, text in ((Request.__table__, theirs, "description"), (Message.__table__, said, "body")):
        changed = []
        for row in rows:
            erased = _erased(getattr(row, text), row.subject, names.get(row.citizen_id), row.language)
            if erased is not None:
                changed.append({"row_id": row.id, "new_text": erased[0], "new_subject": erased[1]})
        kept = {"updated_at": table.c.updated_at} if "updated_at" in table.c else {}
        if changed:
            session.connection().execute(
                table.update().where(table.c.id == bindparam("row_id"))
                .values({text: bindparam("new_text"), "subject": bindparam("new_subject"), **kept}), changed)


def _erased(text: str | None, subject: str | None, name: str | None, language: str | None):
    """(text, subject) with contacts and ``name`` replaced; None when neither changes."""
    contact, named = ERASED.get(language or "fr", ERASED["fr"])
    name = (name or "").strip()  # an initial alone ("J") would erase the "j" of every "j'ai"
    pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE) if len(name) >= 3 else None

    def erase(value: str | None) -> str | None:
        if not value:
            return value
        value = mask(value, email=contact, phone=contact)
        return pattern.sub(named, value) if pattern is not None else value

    new_text, new_subject = erase(text), erase(subject)
    if new_subject is not None and len(new_subject) > 300:  # the column's length
        new_subject = new_subject[:299] + "…"
    return None if (new_text, new_subject) == (text, subject) else (new_text, new_subject)


def _not_erased():
    return or_(InboundMessage.sender.is_not(None), func.length(InboundMessage.body) > 0)
