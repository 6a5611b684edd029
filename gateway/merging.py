"""An agent links a request to another one about the same problem, or undoes it.

Linking makes the request a duplicate of the original: its citizen becomes a follower of the
original (told of its progress), its own duplicates follow it to the original, and both
requests record the link in their audit trail. Unlinking undoes exactly that.

This is the inbox's minimal merge; the deduplication module (suggestions, scoring) is meant
to take over these two functions' work when it lands.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from .models import Event, Follower, Request
from .status import StatusError, change_status


class MergeError(ValueError):
    """The link cannot be made or undone; nothing was changed."""


def link(session, runtime, duplicate: Request, original_code: str, actor: str) -> Request:
    """Make ``duplicate`` a duplicate of the request ``original_code``; returns the original.

    Raises MergeError for an unknown code, the request itself, a closed-for-linking status."""
    original = session.scalar(select(Request).where(Request.code == original_code.strip().upper()))
    if original is None:
        raise MergeError(_l("No request has the code %(code)s.", code=original_code.strip()))
    while original.duplicate_of is not None:  # link to the root, never to another duplicate
        original = original.duplicate_of
    if original.id == duplicate.id:
        raise MergeError(_l("A request cannot be a duplicate of itself."))
    if duplicate.duplicate_of_id is not None:
        raise MergeError(_l("%(code)s is already linked to another request.", code=duplicate.code))
    try:
        change_status(session, runtime, duplicate, "duplicate", actor, note=original.code)
    except StatusError as exc:
        raise MergeError(_l("A request in this status cannot be linked: %(detail)s", detail=str(exc))) from exc
    duplicate.duplicate_of_id = original.id
    added = _follow(session, original, duplicate.citizen_id)
    moved = []
    for child in session.scalars(select(Request).where(Request.duplicate_of_id == duplicate.id)):
        child.duplicate_of_id = original.id
        moved.append(child.code)
        _follow(session, original, child.citizen_id)
    session.add_all([
        Event(request_id=duplicate.id, actor=actor, type="duplicate_linked", public=True,
              data={"original": original.code, "follower_added": added, "moved": moved}),
        Event(request_id=original.id, actor=actor, type="duplicate_received",
              data={"duplicate": duplicate.code, "follower_added": added}),
    ])
    session.flush()
    return original


def unlink(session, runtime, duplicate: Request, actor: str) -> Request:
    """Undo ``link``: the request is handled on its own again. Raises MergeError if not linked."""
    original = duplicate.duplicate_of
    if original is None:
        raise MergeError(_l("%(code)s is not linked to another request.", code=duplicate.code))
    linked = session.scalars(select(Event).where(Event.request_id == duplicate.id,
                                                 Event.type == "duplicate_linked")
                             .order_by(Event.id.desc())).first()
    if linked is not None and linked.data.get("follower_added") and duplicate.citizen_id:
        session.execute(delete(Follower).where(Follower.request_id == original.id,
                                               Follower.citizen_id == duplicate.citizen_id))
    duplicate.duplicate_of_id = None
    if duplicate.status == "duplicate":
        change_status(session, runtime, duplicate, "routed", actor, note=f"unlinked from {original.code}")
    session.add_all([
        Event(request_id=duplicate.id, actor=actor, type="duplicate_unlinked", public=True,
              data={"original": original.code}),
        Event(request_id=original.id, actor=actor, type="duplicate_removed", data={"duplicate": duplicate.code}),
    ])
    session.flush()
    return original


def _follow(session, original: Request, citizen_id: int | None) -> bool:
    """The citizen follows ``original``; False when they already did or are its requester."""
    if citizen_id is None or citizen_id == original.citizen_id:
        return False
    exists = session.scalar(select(Follower.id).where(Follower.request_id == original.id,
                                                      Follower.citizen_id == citizen_id))
    if exists is not None:
        return False
    session.add(Follower(request_id=original.id, citizen_id=citizen_id))
    return True
