"""What an agent does to a request, outside the HTTP layer: each function records who did it in the
audit trail and returns the ids of the deliveries to send once the transaction commits.

Raise ActionError (a clear message, translated when shown, nothing changed) when the action
cannot be done.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from router import Facts, decide

from ..models import Event, Request, User
from ..notify import notify
from ..outbox import add_delivery
from ..permissions import may_see
from ..status import TRANSITIONS


class ActionError(ValueError):
    """The action was refused; the request is unchanged."""


def reply_templates(book) -> list[str]:
    return sorted(name for name in book.templates if name.startswith("reply_"))


def reply(session, runtime, request: Request, text: str, template: str, actor: str) -> list[int]:
    """Writes to the requester on their channel, in their language (config/templates.yaml)."""
    text = text.strip()
    book = runtime.rules.current
    if not text and template not in reply_templates(book):
        raise ActionError(_l("Write a message or choose a ready-made reply."))
    chosen = "agent_reply" if text else template
    if chosen not in book.templates:
        raise ActionError(_l("The template %(name)s is missing from templates.yaml.", name=chosen))
    key = f"{request.code}:reply:{secrets.token_hex(6)}"
    delivery = notify(session, runtime, request, request.citizen, "reply", chosen, key, extra={"text": text})
    if delivery is None:
        raise ActionError(_l("The citizen cannot be reached: no usable contact point."))
    delivery.settings = {**delivery.settings, "author": actor}
    session.add(Event(request_id=request.id, actor=actor, type="reply_queued",
                      data={"delivery": delivery.id, "channel": delivery.target, "template": chosen}))
    return [delivery.id]


def reroute(session, runtime, request: Request, category: str, department: str, actor: str) -> list[int]:
    """Routes the request again with the category (and department) the agent chose; the new
    decision and its rule are recorded and the new department's tools receive it."""
    book = runtime.rules.current
    if category and category not in book.categories:
        raise ActionError(_l("Unknown category: %(code)s.", code=category))
    if department and department not in book.departments:
        raise ActionError(_l("Unknown department: %(code)s.", code=department))
    facts = Facts(text=" ".join(filter(None, [request.subject, request.description])), language=request.language,
                  channel=request.channel, received_at=request.created_at, lat=request.lat, lon=request.lon,
                  category=category or request.category)
    decision = decide(book, facts)
    if department and department != decision.department:
        decision.department, decision.rule, decision.matched_by = department, None, "agent"
        decision.sinks = [{"language": book.departments[department].language, **s.settings()}
                          for s in book.departments[department].sinks]
    before = {"category": request.category, "department": request.department, "priority": request.priority}
    request.category, request.department, request.priority = decision.category, decision.department, decision.priority
    request.kind, request.rule, request.decision = decision.kind, decision.rule, decision.as_dict()
    request.sla_due_at = request.created_at + timedelta(hours=decision.sla_hours)
    serial = 1 + session.scalar(select(func.count()).select_from(Event).where(
        Event.request_id == request.id, Event.type.in_(("routed", "rerouted"))))
    session.add(Event(request_id=request.id, actor=actor, type="rerouted", public=True,
                      data={"from": before, "rule": decision.rule, "matched_by": decision.matched_by,
                            "category": decision.category, "department": decision.department,
                            "priority": decision.priority, "sla_hours": decision.sla_hours,
                            "sinks": [s["type"] for s in decision.sinks]}))
    if before["department"] == decision.department:
        return []
    return [add_delivery(session, request, "sink", sink["type"], sink,
                         f"{request.code}:route{serial}:{i}:{sink['type']}").id
            for i, sink in enumerate(decision.sinks)]


def assign(session, request: Request, user_id: int | None, actor: str) -> None:
    user = session.get(User, user_id) if user_id else None
    if user_id and (user is None or not user.active):
        raise ActionError(_l("Unknown or inactive account."))
    if user is not None and not may_see(user, request):
        raise ActionError(_l("%(email)s belongs to another department and could not open this request.",
                             email=user.email))
    request.assigned_to_id = user.id if user else None
    session.add(Event(request_id=request.id, actor=actor, type="assigned",
                      data={"to": user.email if user else None}))


def add_note(session, request: Request, text: str, actor: str) -> None:
    text = text.strip()
    if not text:
        raise ActionError(_l("The note is empty."))
    session.add(Event(request_id=request.id, actor=actor, type="note", data={"text": text[:5000]}))


def mark_spam(session, request: Request, actor: str) -> None:
    """Rejected without a word to the sender (no notification goes to a spammer)."""
    if "rejected" not in TRANSITIONS.get(request.status, set()):
        raise ActionError(_l("This request can no longer be marked as spam."))
    old, request.status = request.status, "rejected"
    session.add_all([
        Event(request_id=request.id, actor=actor, type="status_changed", public=True,
              data={"from": old, "to": "rejected", "note": "spam"}),
        Event(request_id=request.id, actor=actor, type="marked_spam", data={}),
    ])
