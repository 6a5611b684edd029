"""One citizen across channels: the same e-mail, phone, PSID or chat id is the same person.

Contact points given together (a form with an e-mail and a phone) are linked to one
citizen. When they already belong to two different citizens, the gateway does not merge
people on its own: it keeps the first match and records the conflict for an agent.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from gateway.direct import InTransaction
from gateway.models import Citizen, ContactPoint, utcnow

from .canonical import Normalized


def resolve_citizen(session: Session, message: Normalized, owners: list[Citizen] | None = None,
                    heard_at: datetime | None = None) -> tuple[Citizen | NewCitizen | None, list[str]]:
    """The citizen behind ``message`` (created if new) and notes about conflicts.

    ``owners``: the citizens owning any of the message's contact points (with their contact
    points loaded), when the caller read them already, in this transaction (``owners_of``).
    ``heard_at``: given by a caller that only reads a citizen this message creates (the
    pipeline): that citizen comes back as a ``NewCitizen``, and the contact point the
    message came from is written stamped with it (what ``gateway.chat.heard_from`` does to
    a known citizen's). Returns (None, []) when the message carries no contact point at all
    (an anonymous counter or web request)."""
    points = message.contact_points()
    if not points:
        return None, []
    known, citizens = _known_points(session, points, owners)
    owners = {point.citizen_id for point in known.values()}
    notes = []
    if owners:
        citizen = citizens[sorted(owners)[0]]
        if len(owners) > 1:
            notes.append("contact points belong to several citizens; not merged automatically")
    else:
        return _new_citizen(session, message, points, heard_at), notes
    # New points go through the relationship: the citizen's contacts are then complete in
    # memory, written in the same flush, and need no re-read.
    citizen.contacts.extend(ContactPoint(kind=kind, value=value) for kind, value in points if (kind, value) not in known)
    if message.name and not citizen.name:
        citizen.name = message.name
    # Set only when it changes: setting an attribute, even to its value, makes the flush
    # below compare every change of the session (the costliest part of a known citizen).
    if message.preferred_channel and citizen.preferred_channel != message.preferred_channel:
        citizen.preferred_channel = message.preferred_channel
    if citizen.language != message.language:
        citizen.language = message.language
    session.flush()
    return citizen, notes


class NewCitizen(SimpleNamespace):
    """A citizen created in this transaction for a caller that only reads it: its row's
    values, and its contact points' as ``contacts`` (each a namespace of its columns). No ORM
    object: building and attaching the citizen and its points cost the pipeline more than
    writing them. A look-up through the session (``request.citizen``, ``session.get``) loads
    the ORM one from the database."""

    def contact(self, kind: str) -> SimpleNamespace | None:
        return Citizen.contact(self, kind)  # the same rule


def _new_citizen(session: Session, message: Normalized, points: list[tuple[str, str]],
                 heard_at: datetime | None = None) -> Citizen | NewCitizen:
    """A citizen none of whose points is known: the citizen and its points written with one
    Core INSERT each (the ORM's unit of work cost several times more). ``heard_at`` given: a
    ``NewCitizen``; otherwise attached to the session as the persistent objects they are,
    the points as the citizen's loaded contacts. The unique key on (kind, value) still
    refuses a point another transaction wrote."""
    now = utcnow()
    values = dict(name=message.name or None, language=message.language, preferred_channel=message.preferred_channel
                  or None, consent=message.consent, created_at=now)
    run = InTransaction(session)  # gateway/direct.py: on the session's driver connection, in its transaction
    citizen_id = run.execute(_insert(Citizen), values).scalar()
    came_from = message.written_from() if heard_at is not None else None
    rows = [dict(citizen_id=citizen_id, kind=kind, value=value, undeliverable=False, opted_out=False,
                 created_at=now, last_inbound_at=heard_at if (kind, value) == came_from else None)
            for kind, value in points]
    ids = {(point.kind, point.value): point.id
           for point in run.insert_many(ContactPoint.__table__, rows, ("id", "kind", "value"))}
    if heard_at is not None:
        return NewCitizen(id=citizen_id, forgotten_at=None, **values,
                          contacts=[SimpleNamespace(id=ids[row["kind"], row["value"]], **row) for row in rows])
    citizen = Citizen(id=citizen_id, **values)
    contacts = [ContactPoint(id=ids[row["kind"], row["value"]], **row) for row in rows]
    for row in [citizen, *contacts]:
        make_transient_to_detached(row)  # its state is the row just written, not a change to write
        session.add(row)
    set_committed_value(citizen, "contacts", contacts)
    for point in contacts:
        set_committed_value(point, "citizen", citizen)
    return citizen


@lru_cache(maxsize=2)
def _insert(model):
    table = model.__table__
    return insert(table).returning(table.c.id)


def owners_of(session: Session, values: list[str]) -> list[Citizen]:
    """The citizens owning a contact point of any of ``values``, with all their points."""
    return session.scalars(_owners_statement(), {"values": values}).unique().all() if values else []


def _known_points(session: Session, points: list[tuple[str, str]],
                  owners: list[Citizen] | None = None) -> tuple[dict, dict[int, Citizen]]:
    """The points already known, by (kind, value), and their owners by id."""
    if owners is None:
        owners = owners_of(session, [value for _, value in points])
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
