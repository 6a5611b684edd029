"""Bounces of our own mail: the citizen's address does not work, so stop writing to it.

A delivery failure notice is never a request (the e-mail parser refuses it). When it is
about a message the gateway sent — its returned Message-ID is one of ours, or, failing
that, it quotes one of our tracking codes — each failed recipient that is a contact point of
that request's citizen (or of a follower) is marked undeliverable, with an event on the
request. A bounce about mail we did not send changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from adapters.base import BounceReport
from normalizer.codes import find_codes

from .models import ContactPoint, Delivery, Event, Follower, InboundMessage, Message, Request

log = logging.getLogger(__name__)


def record_bounce(runtime, inbound_id: int, report: BounceReport) -> list[int]:
    """Marks the bounced contact points undeliverable; returns their ids."""
    if not report.permanent or not report.recipients:
        return []
    prefix = runtime.rules.current.city.code_prefix
    marked = []
    with runtime.db.session() as session:
        for request in _our_requests(session, report, prefix):
            for point in _bounced_points(session, request, report.recipients):
                if not point.undeliverable:
                    point.undeliverable = True
                    marked.append(point.id)
                session.add(Event(request_id=request.id, actor="channel:email", type="contact_undeliverable",
                                  data={"contact_point": point.id, "reason": report.reason, "inbound": inbound_id}))
        inbound = session.get(InboundMessage, inbound_id)
        if inbound is not None and marked:
            inbound.error = f"{inbound.error or ''}; contact points marked undeliverable: {marked}"[:2000]
    if marked:
        log.info("bounce %s: contact points %s marked undeliverable", inbound_id, marked)
    return marked


def _our_requests(session, report: BounceReport, prefix: str) -> list[Request]:
    ids = list(report.original_message_ids)
    found: dict[int, Request] = {}
    if ids:
        for model in (Message, Delivery):
            for request in session.scalars(select(Request).join(model).where(model.external_id.in_(ids))):
                found[request.id] = request
    if not found:
        codes = find_codes(report.text, prefix)
        for request in session.scalars(select(Request).where(Request.code.in_(codes))) if codes else []:
            found[request.id] = request
    return list(found.values())


def _bounced_points(session, request: Request, recipients: tuple[str, ...]) -> list[ContactPoint]:
    people = {request.citizen_id} | set(session.scalars(
        select(Follower.citizen_id).where(Follower.request_id == request.id)))
    return list(session.scalars(select(ContactPoint).where(
        ContactPoint.kind == "email", ContactPoint.value.in_([r.lower() for r in recipients]),
        ContactPoint.citizen_id.in_([p for p in people if p is not None]))))
