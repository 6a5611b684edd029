"""Status changes: the allowed transitions, the audit trail, and telling the citizen.

Every change is an event (who, from, to, note). The changes that matter to citizens are
sent to the requester and to every follower, on their own channel, in their language, from
the `status_<status>` template in config/templates.yaml (falling back to `status_update`).
"""

from __future__ import annotations

from .labels import status_in_sentence
from .models import Citizen, Event, Follower, Request, utcnow
from .notify import notify

TRANSITIONS = {
    "new": {"acknowledged", "routed", "in_progress", "resolved", "rejected", "needs_info", "duplicate"},
    "acknowledged": {"routed", "in_progress", "resolved", "rejected", "needs_info", "duplicate"},
    "routed": {"acknowledged", "in_progress", "resolved", "rejected", "needs_info", "duplicate"},
    "in_progress": {"resolved", "needs_info", "rejected", "duplicate"},
    "needs_info": {"routed", "in_progress", "resolved", "rejected"},
    "resolved": {"closed", "in_progress"},  # reopened when the fix did not hold
    "closed": {"in_progress"},
    "duplicate": {"routed", "in_progress"},  # unlinked by an agent
    "rejected": {"routed"},
}
CITIZEN_VISIBLE = {"in_progress", "resolved", "rejected", "needs_info", "acknowledged"}
TIMESTAMPS = {"acknowledged": "acknowledged_at", "resolved": "resolved_at", "closed": "closed_at",
              "routed": "routed_at"}


class StatusError(ValueError):
    """The transition is not allowed; the request is left unchanged."""


def change_status(session, runtime, request: Request, new: str, actor: str, note: str | None = None,
                  external: dict | None = None) -> list[int]:
    """Apply ``new`` to ``request``; returns the ids of the notifications to send.

    Raises StatusError for an unknown status or a transition that is not allowed."""
    old = request.status
    if new == old:
        return []
    if new not in TRANSITIONS:
        raise StatusError(f"unknown status '{new}'")
    if new not in TRANSITIONS.get(old, set()):
        raise StatusError(f"a request cannot go from '{old}' to '{new}'")
    now = utcnow()
    request.status = new
    stamp = TIMESTAMPS.get(new)
    if stamp and (getattr(request, stamp) is None or new == "resolved"):
        setattr(request, stamp, now)
    data = {"from": old, "to": new}
    if note:
        data["note"] = note
    if external:
        data.update(external)
    session.add(Event(request_id=request.id, actor=actor, type="status_changed", public=True, data=data, at=now))
    session.flush()
    if new not in CITIZEN_VISIBLE:
        return []
    return _notify_everyone(session, runtime, request, new, note, len(request.events))


def _notify_everyone(session, runtime, request: Request, status: str, note: str | None, serial: int) -> list[int]:
    book = runtime.rules.current
    template = f"status_{status}" if f"status_{status}" in book.templates else "status_update"
    people = [request.citizen] if request.citizen else []
    followers = session.query(Citizen).join(Follower, Follower.citizen_id == Citizen.id).filter(
        Follower.request_id == request.id).all()
    ids = []
    for citizen in people + [f for f in followers if f not in people]:
        delivery = notify(session, runtime, request, citizen, f"status_{status}", template,
                          f"{request.code}:notify:status:{serial}:{citizen.id}",
                          extra={"note": note or "", "status_label": status_in_sentence(status, request.language)})
        if delivery is not None:
            ids.append(delivery.id)
    return ids
