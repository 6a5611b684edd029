"""Duplicates: linking a request to its master, and the agents' decisions on them.

Automatic decisions come from dedup/ through the pipeline (``apply_decision``); agents
merge (``link``), unmerge (``unlink``), confirm or reject a suggestion, and split a message
that joined the wrong request off into a request of its own (``split``). Every decision is
an event with the scores behind it. A duplicate's reporter follows the master, so when the
master's status changes they hear of it on their own channel (gateway/status.py).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from sqlalchemy import bindparam, insert, select

from normalizer.codes import new_code
from router import Facts, decide

from .direct import InTransaction
from .labels import status_in_sentence
from .models import DedupSuggestion, Delivery, Event, Follower, Request, utcnow
from .notify import notify
from .outbox import add_delivery
from .status import StatusError, change_status

LINKABLE = ("new", "acknowledged", "routed", "in_progress")


class DuplicateError(ValueError):
    """The merge, unmerge or split is not possible; nothing was changed."""


def master_of(request: Request) -> Request:
    """The root of a chain of duplicates (a master is never itself a duplicate)."""
    seen = set()
    while request.duplicate_of is not None and request.id not in seen:
        seen.add(request.id)
        request = request.duplicate_of
    return request


def apply_decision(session, runtime, request: Request, decision) -> list:
    """The pipeline's step after dedup.cross_citizen for a request just created. Returns the
    deliveries queued (the reporter's notice when linked)."""
    if decision.action == "suggest":  # one INSERT, no ORM objects: nothing reads them in this transaction
        now = utcnow()
        InTransaction(session).executemany(_suggestion_insert(), [
            dict(request_id=request.id, candidate_id=found.candidate_id, kind="suggestion", score=round(found.total, 1),
                 scores=found.as_dict(), state="pending", created_at=now) for found in decision.suggestions])
        return []
    if decision.action != "link":
        return []
    master = session.get(Request, decision.master.candidate_id)
    if decision.flagged:
        _suggest(session, request, master.id, decision.master.total, decision.master.as_dict(), "urgent_link")
    return link(session, runtime, request, master, "system:dedup", decision.master.as_dict(),
                flagged=decision.flagged)


def master_for_new(session, decision):
    """The master a request the pipeline is about to create is to be born a duplicate of (its
    id, code, status and citizen: a row, or the Request when followed through a merge), or
    None: dedup did not link it, or linked it as urgent (then the department is told first
    and the request is linked once routed, ``apply_decision``), or the master is no longer
    open (then it stands on its own)."""
    if decision.action != "link" or decision.flagged:
        return None
    session.flush()  # as a query through the session would: its changes are read
    master = InTransaction(session).execute(_master_statement(), {"id": decision.master.candidate_id}).one_or_none()
    if master is not None and master.duplicate_of_id is not None:  # a duplicate since: its master, through the ORM
        master = master_of(session.get(Request, master.id))
    return master if master is not None and master.status in LINKABLE + ("needs_info",) else None


@lru_cache(maxsize=1)
def _master_statement():
    """What a request born a duplicate reads of its master (``born_duplicate``): a row, not an
    ORM object with its citizen and their contact points (two statements and the objects
    made, for four columns)."""
    table = Request.__table__
    return select(table.c.id, table.c.code, table.c.status, table.c.citizen_id, table.c.duplicate_of_id) \
        .where(table.c.id == bindparam("id"))


def born_duplicate(session, runtime, request, citizen, master: Request, decision, thread: list, into: list) -> list[dict]:
    """``request``, just written by the pipeline with status "duplicate" of ``master``
    (``master_for_new``): it never went to a department, so neither its history nor its
    reporter ever hear of a routing. Its reporter follows the master and is told the master's
    code and status (the notice is appended to ``into``, the request's other fresh rows).
    Returns its events, for the caller to write with the request's others: what ``link``
    writes, without a status change (nothing else can refer to a request this new: no
    duplicate, follower or suggestion)."""
    scores = decision.master.as_dict()
    _follow(session, master, request.citizen_id)
    notify(session, runtime, request, citizen, "duplicate_linked", "duplicate_linked",
           f"{request.code}:notify:duplicate:{master.code}", extra=_notice(runtime, request, master), fresh=True,
           thread=thread, into=into)
    return [
        dict(request_id=request.id, actor="system:dedup", type="duplicate_linked", public=True,
             data={"master": master.code, "actor": "system:dedup", "scores": scores, "flagged": False}),
        dict(request_id=master.id, actor="system:dedup", type="duplicate_added",
             data={"duplicate": request.code, "scores": scores, "flagged": False}),
    ]


@lru_cache(maxsize=1)
def _suggestion_insert():
    return insert(DedupSuggestion.__table__)


def _suggest(session, request: Request, candidate_id: int, score: float, scores: dict, kind: str) -> None:
    session.add(DedupSuggestion(request_id=request.id, candidate_id=candidate_id, kind=kind,
                                score=round(score, 1), scores=scores))


def link(session, runtime, request: Request, master: Request, actor: str, scores: dict | None = None,
         note: str | None = None, flagged: bool = False) -> list:
    """Make ``request`` a duplicate of ``master`` (merge). Its reporter and followers follow
    the master and the reporter is told the master's code and status; duplicates of
    ``request`` move to the master. Returns the deliveries queued.

    Raises DuplicateError when the link is impossible (same request, closed request…)."""
    master = master_of(master)
    if master.id == request.id or master_of(request).id == master.id and request.duplicate_of_id == master.id:
        raise DuplicateError(f"{request.code} is already {master.code} or its duplicate")
    if master.status not in LINKABLE + ("needs_info",):
        raise DuplicateError(f"{master.code} is {master.status}: only an open request can be a master")
    if request.status == "duplicate":
        _detach(session, request, actor, "relinked")
    elif request.status not in LINKABLE:
        raise DuplicateError(f"{request.code} is {request.status}: it cannot become a duplicate")
    try:
        change_status(session, runtime, request, "duplicate", actor, note)
    except StatusError as exc:
        raise DuplicateError(str(exc)) from exc
    request.duplicate_of_id = master.id
    request.duplicate_of = master
    for child in session.scalars(select(Request).where(Request.duplicate_of_id == request.id)).all():
        child.duplicate_of_id = master.id
        _follow(session, master, child.citizen_id)
    for follower in session.scalars(select(Follower).where(Follower.request_id == request.id)).all():
        _follow(session, master, follower.citizen_id)
    _follow(session, master, request.citizen_id)
    data = {"master": master.code, "actor": actor, "scores": scores or {}, "flagged": flagged}
    if note:
        data["note"] = note
    session.add_all([
        Event(request_id=request.id, actor=actor, type="duplicate_linked", public=True, data=data),
        Event(request_id=master.id, actor=actor, type="duplicate_added",
              data={"duplicate": request.code, "scores": scores or {}, "flagged": flagged}),
    ])
    for suggestion in _suggestions_between(session, request, master):
        if suggestion.state == "pending" and suggestion.kind == "suggestion":
            suggestion.state, suggestion.decided_at, suggestion.decided_by = "confirmed", utcnow(), actor
    session.flush()
    return _tell_reporter(session, runtime, request, master)


def _follow(session, master: Request, citizen_id: int | None) -> None:
    if citizen_id is None or citizen_id == master.citizen_id:
        return
    run = InTransaction(session)  # no ORM object: followers are written by Core alone, nothing to flush first
    if run.execute(_follower_statement(), {"request_id": master.id, "citizen_id": citizen_id}).scalar() is None:
        run.execute(_follower_insert(), {"request_id": master.id, "citizen_id": citizen_id, "created_at": utcnow()})


@lru_cache(maxsize=1)
def _follower_statement():
    table = Follower.__table__
    return select(table.c.id).where(table.c.request_id == bindparam("request_id"),
                                    table.c.citizen_id == bindparam("citizen_id"))


@lru_cache(maxsize=1)
def _follower_insert():
    return insert(Follower.__table__)


def _tell_reporter(session, runtime, request: Request, master: Request) -> list:
    delivery = notify(session, runtime, request, request.citizen, "duplicate_linked", "duplicate_linked",
                      f"{request.code}:notify:duplicate:{master.code}", extra=_notice(runtime, request, master))
    return [delivery] if delivery is not None else []


def _notice(runtime, request, master: Request) -> dict:
    """What the reporter of a duplicate is told of its master (the duplicate_linked template)."""
    return {"master_code": master.code, "master_url": runtime.public_url(f"/track/{master.code}"),
            "master_status": status_in_sentence(master.status, request.language)}


def unlink(session, runtime, request: Request, actor: str, note: str | None = None) -> list:
    """Unmerge: ``request`` stands on its own again and goes to its department (if it never
    went). Returns the deliveries queued. Raises DuplicateError if it is not a duplicate."""
    if request.status != "duplicate" or request.duplicate_of_id is None:
        raise DuplicateError(f"{request.code} is not a duplicate")
    _detach(session, request, actor, note or "unlinked")
    told = [session.get(Delivery, delivery_id) for delivery_id in change_status(session, runtime, request, "routed",
                                                                                 actor, note)]
    return told + _route_if_never_sent(session, runtime, request)


def _detach(session, request: Request, actor: str, why: str) -> None:
    master = request.duplicate_of
    request.duplicate_of_id = None
    request.duplicate_of = None
    if request.citizen_id is not None and not _still_linked(session, master, request):
        session.execute(Follower.__table__.delete().where(Follower.request_id == master.id,
                                                          Follower.citizen_id == request.citizen_id))
    for suggestion in _suggestions_between(session, request, master):
        if suggestion.kind == "urgent_link" and suggestion.state == "pending":
            suggestion.state, suggestion.decided_at, suggestion.decided_by = "rejected", utcnow(), actor
    session.add_all([
        Event(request_id=request.id, actor=actor, type="duplicate_unlinked", public=True,
              data={"master": master.code, "why": why}),
        Event(request_id=master.id, actor=actor, type="duplicate_removed",
              data={"duplicate": request.code, "why": why}),
    ])
    session.flush()


def _still_linked(session, master: Request, leaving: Request) -> bool:
    """Does the leaving reporter have another duplicate on this master?"""
    return session.scalar(select(Request.id).where(
        Request.duplicate_of_id == master.id, Request.citizen_id == leaving.citizen_id,
        Request.id != leaving.id)) is not None


def _route_if_never_sent(session, runtime, request: Request) -> list:
    if any(d.purpose == "sink" for d in request.deliveries):
        return []
    sinks = (request.decision or {}).get("sinks", [])
    return [add_delivery(session, request, "sink", sink["type"], sink, f"{request.code}:unlinked:{i}:{sink['type']}")
            for i, sink in enumerate(sinks)]


def _suggestions_between(session, request: Request, master: Request) -> list[DedupSuggestion]:
    return list(session.scalars(select(DedupSuggestion).where(
        DedupSuggestion.request_id == request.id, DedupSuggestion.candidate_id == master.id)))


def find_suggestion(session, request: Request, candidate: Request) -> DedupSuggestion:
    suggestion = session.scalar(select(DedupSuggestion).where(
        DedupSuggestion.request_id == request.id, DedupSuggestion.candidate_id == candidate.id))
    if suggestion is None:
        raise DuplicateError(f"{candidate.code} was not suggested for {request.code}")
    return suggestion


def confirm(session, runtime, request: Request, candidate: Request, actor: str) -> list:
    """The agent agrees: ``request`` becomes a duplicate of ``candidate`` (or, for an urgent
    request linked automatically, the link stands)."""
    suggestion = find_suggestion(session, request, candidate)
    if suggestion.state != "pending":
        raise DuplicateError(f"this suggestion was already {suggestion.state}")
    if suggestion.kind == "urgent_link":
        suggestion.state, suggestion.decided_at, suggestion.decided_by = "confirmed", utcnow(), actor
        session.add(Event(request_id=request.id, actor=actor, type="duplicate_confirmed",
                          data={"master": candidate.code, "scores": suggestion.scores}))
        return []
    return link(session, runtime, request, candidate, actor, suggestion.scores)


def reject(session, runtime, request: Request, candidate: Request, actor: str) -> list:
    """The agent disagrees: the suggestion is closed (an urgent automatic link is undone)."""
    suggestion = find_suggestion(session, request, candidate)
    if suggestion.state != "pending":
        raise DuplicateError(f"this suggestion was already {suggestion.state}")
    suggestion.state, suggestion.decided_at, suggestion.decided_by = "rejected", utcnow(), actor
    session.add(Event(request_id=request.id, actor=actor, type="duplicate_rejected",
                      data={"candidate": candidate.code, "scores": suggestion.scores}))
    if suggestion.kind == "urgent_link" and request.duplicate_of_id == candidate.id:
        return unlink(session, runtime, request, actor, "urgent link rejected by an agent")
    return []


def split(session, runtime, request: Request, message_id: int, actor: str) -> tuple[Request, list]:
    """A message that joined ``request`` is about another problem: it becomes a request of
    its own (same citizen), routed and acknowledged. Returns (new request, deliveries).

    Raises DuplicateError when the message is not a later incoming message of ``request``."""
    incoming = [m for m in request.messages if m.direction == "in"]
    message = next((m for m in incoming if m.id == message_id), None)
    if message is None or message is incoming[0]:
        raise DuplicateError("only a later incoming message of this request can be split off")
    book = runtime.rules.current
    now = utcnow()
    decision = decide(book, Facts(text=" ".join(filter(None, [message.subject, message.body])),
                                  language=request.language, channel=message.channel, received_at=now,
                                  lat=None, lon=None, category=None))
    created = Request(code=_unused_code(session, book.city.code_prefix, now), status="routed",
                      kind=decision.kind, priority=decision.priority, category=decision.category,
                      department=decision.department, channel=message.channel, language=request.language,
                      citizen_id=request.citizen_id, subject=message.subject, description=message.body,
                      rule=decision.rule, decision=decision.as_dict(), district=decision.district,
                      sla_due_at=now + timedelta(hours=decision.sla_hours), created_at=message.created_at,
                      routed_at=now)
    session.add(created)
    session.flush()
    message.request_id = created.id
    session.add_all([
        Event(request_id=request.id, actor=actor, type="split", data={"message": message.id, "into": created.code}),
        Event(request_id=created.id, actor=actor, type="split_from", public=True,
              data={"from": request.code, "message": message.id}),
        Event(request_id=created.id, actor="system:router", type="routed", public=True,
              data={"rule": decision.rule, "department": decision.department, "category": decision.category}),
    ])
    session.flush()
    session.refresh(created)
    deliveries = _route_if_never_sent(session, runtime, created)
    ack = notify(session, runtime, created, created.citizen, "acknowledgement", decision.template,
                 f"{created.code}:notify:acknowledgement")
    return created, deliveries + ([ack] if ack is not None else [])


def _unused_code(session, prefix: str, now) -> str:
    while True:
        code = new_code(prefix, now.year)
        if session.scalar(select(Request.id).where(Request.code == code)) is None:
            return code
