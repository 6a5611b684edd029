"""One citizen across channels: the same e-mail, phone, PSID or chat id is the same person.

Contact points given together (a form with an e-mail and a phone) are linked to one
citizen. When they already belong to two different citizens, the gateway does not merge
people on its own: it keeps the first match and records the conflict for an agent.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from gateway.models import Citizen, ContactPoint

from .canonical import Normalized


def resolve_citizen(session: Session, message: Normalized) -> tuple[Citizen | None, list[str]]:
    """The citizen behind ``message`` (created if new) and notes about conflicts.

    Returns (None, []) when the message carries no contact point at all (an anonymous
    counter or web request)."""
    points = message.contact_points()
    if not points:
        return None, []
    known, citizens = _known_points(session, points)
    owners = {point.citizen_id for point in known.values()}
    notes = []
    if owners:
        citizen = citizens[sorted(owners)[0]]
        if len(owners) > 1:
            notes.append("contact points belong to several citizens; not merged automatically")
    else:
        citizen = Citizen(consent=message.consent)
        session.add(citizen)
    # New points go through the relationship: the citizen's contacts are then complete in
    # memory, written in the same flush, and need no re-read.
    citizen.contacts.extend(ContactPoint(kind=kind, value=value) for kind, value in points if (kind, value) not in known)
    if message.name and not citizen.name:
        citizen.name = message.name
    if message.preferred_channel:
        citizen.preferred_channel = message.preferred_channel
    citizen.language = message.language
    session.flush()
    return citizen, notes


def _known_points(session: Session, points: list[tuple[str, str]]) -> tuple[dict, dict[int, Citizen]]:
    """The points already known, by (kind, value), and their owners by id."""
    owners = session.scalars(_owners_statement(), {"values": [value for _, value in points]}).unique().all()
    wanted = set(points)
    known = {(point.kind, point.value): point for owner in owners for point in owner.contacts
             if (point.kind, point.value) in wanted}
    return known, {owner.id: owner for owner in owners}


@lru_cache(maxsize=1)
def _owners_statement():
    """The citizens owning any of the values, each with all of their contact points, in ONE
    statement (joined): the matching points are among them, and the citizen's contacts are
    loaded for what follows (the channel of its notices). Built once: composing a statement
    costs more CPU than running it."""
    values = bindparam("values", expanding=True)
    return select(Citizen).where(Citizen.id.in_(select(ContactPoint.citizen_id).where(ContactPoint.value.in_(values)))) \
        .options(joinedload(Citizen.contacts))
