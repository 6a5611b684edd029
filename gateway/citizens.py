"""Agents tell the gateway that two contact points are one person.

A caller gives the phone number of someone who wrote by e-mail; a Messenger user is the
requester of an e-mailed request. ``add_contact`` gives the requester of a request that
contact point; when it already belongs to another citizen, that citizen is merged into the
requester (contact points, requests, follows). From then on, their messages on any channel
are theirs (dedup/same_citizen.py joins them to their open request).
"""

from __future__ import annotations

from sqlalchemy import select, update

from normalizer.phone import to_e164

from .models import Citizen, ContactPoint, Event, Follower, Request

KINDS = ("email", "phone", "messenger", "telegram")


class CitizenError(ValueError):
    """The contact point cannot be added; nothing was changed."""


def normalized_contact(kind: str, value: str, region: str) -> str:
    """Raises CitizenError for an unknown kind or an unusable value."""
    if kind not in KINDS:
        raise CitizenError(f"kind must be one of {', '.join(KINDS)}")
    value = (value or "").strip()
    if kind == "phone":
        value = to_e164(value, region) or ""
    elif kind == "email":
        value = value.lower() if "@" in value and "." in value.split("@")[-1] else ""
    if not value:
        raise CitizenError(f"not a usable {kind}")
    return value


def add_contact(session, request: Request, kind: str, value: str, region: str, actor: str) -> Citizen:
    """Give the requester of ``request`` this contact point (merging its owner into them).
    A request without a requester gets a new citizen. Raises CitizenError."""
    value = normalized_contact(kind, value, region)
    citizen = request.citizen
    if citizen is None:
        citizen = Citizen()
        session.add(citizen)
        session.flush()
        request.citizen_id = citizen.id
    point = session.scalar(select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value == value))
    merged = None
    if point is None:
        session.add(ContactPoint(citizen_id=citizen.id, kind=kind, value=value))
    elif point.citizen_id != citizen.id:
        merged = point.citizen_id
        _merge(session, citizen, merged)
    session.add(Event(request_id=request.id, actor=actor, type="contact_linked",
                      data={"kind": kind, "merged_citizen": merged}))  # no value: personal data
    session.flush()
    session.refresh(citizen)
    return citizen


def _merge(session, keep: Citizen, other_id: int) -> None:
    session.execute(update(ContactPoint).where(ContactPoint.citizen_id == other_id).values(citizen_id=keep.id))
    session.execute(update(Request).where(Request.citizen_id == other_id).values(citizen_id=keep.id))
    for follow in session.scalars(select(Follower).where(Follower.citizen_id == other_id)).all():
        already = session.scalar(select(Follower.id).where(Follower.request_id == follow.request_id,
                                                            Follower.citizen_id == keep.id))
        owner = session.scalar(select(Request.citizen_id).where(Request.id == follow.request_id))
        if already is not None or owner == keep.id:
            session.delete(follow)
        else:
            follow.citizen_id = keep.id
    session.flush()
