"""A tracking code → its request, for every look-up a citizen makes with one.

A code is a request's own, or one drawn for a message when it arrived, because its answer
had to carry it (an SMS's reply, a voicemail's code read aloud, a form whose processing was
delayed). That message usually becomes the request with that code; but the pipeline may add
it to another request instead: the same citizen writing again about the same open problem
(dedup/same_citizen.py), or continuing a conversation. The code they were given then leads
to the request their message joined (``given``, table given_codes), never nowhere.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from .models import GivenCode, Request


def find(session, code: str) -> Request | None:
    """The request ``code`` names: its own, or the one the message given it joined."""
    code = code.strip().upper()
    return session.scalar(select(Request).where(Request.code == code)) or joined(session, code)


def joined(session, code: str) -> Request | None:
    """The request a message given ``code`` (that no request has) was added to."""
    return session.scalar(select(Request).join(GivenCode, GivenCode.request_id == Request.id)
                          .where(GivenCode.code == code.strip().upper()))


def joined_codes(connection, codes) -> dict[str, str]:
    """{code given: code of the request its message joined} for those of ``codes`` that lead
    to another request; Core, for the webhooks' connections (gateway/direct.py compiles each
    statement once, so one look-up per code, not an IN list: an SMS quotes one code, or two)."""
    found = {}
    for code in sorted(codes):
        joined_code = connection.execute(_JOINED_CODE, {"code": code}).scalar()
        if joined_code is not None:
            found[code] = joined_code
    return found


def given(session, inbound, request) -> None:
    """``inbound`` was added to ``request``: the code its sender was given for it, if any and
    not the request's own, leads there from now on."""
    code = inbound.reserved_code
    if code and code != request.code and session.get(GivenCode, code) is None:
        session.add(GivenCode(code=code, request_id=request.id))


_JOINED_CODE = (select(Request.code).join(GivenCode, GivenCode.request_id == Request.id)
                .where(GivenCode.code == bindparam("code")))
