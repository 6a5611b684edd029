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
    known = _known_points(session, points)
    owners = {point.citizen_id for point in known.values()}
    notes = []
    if owners:
        citizen = session.get(Citizen, sorted(owners)[0])
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


def _known_points(session: Session, points: list[tuple[str, str]]) -> dict[tuple[str, str], ContactPoint]:
    rows = session.scalars(_points_statement(), {"values": [value for _, value in points]}).all()
    wanted = set(points)
    return {(row.kind, row.value): row for row in rows if (row.kind, row.value) in wanted}


@lru_cache(maxsize=1)
def _points_statement():
    """Built once (composing a statement costs more CPU than running it). The points' owners
    come in the same statement (and their contact points in the one that follows): the
    citizen is then in the session when it is looked up, no third statement."""
    return select(ContactPoint).where(ContactPoint.value.in_(bindparam("values", expanding=True))) \
        .options(joinedload(ContactPoint.citizen))
