"""Does this message continue an existing conversation?

Quoting a tracking code of one's own request (an e-mail reply with the code in the subject,
an SMS "STATUT R-…") or replying to one of our messages (In-Reply-To) adds the message to that
request instead of opening a new one. A code quoted by someone else does not attach their
words to a stranger's request; a reply to a message we sent (its Message-ID is known only to
those who received it: the citizen, or the department the request was routed to) does.
On chat channels (Messenger, Telegram), a message that comes soon after the citizen's last one
on the same channel (a photo, then the location) continues their open request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import tracking
from gateway.models import OPEN_STATUSES, Citizen, Delivery, Follower, Message, Request

from .canonical import Normalized

CHAT_CHANNELS = ("messenger", "telegram")


def find_conversation(session: Session, message: Normalized, citizen: Citizen | None,
                      received_at: datetime | None = None, chat_window: timedelta | None = None) -> Request | None:
    if citizen is None:
        return None
    if message.in_reply_to:
        request = session.scalar(
            select(Request).join(Message).where(Message.external_id == message.in_reply_to)
        )
        if request is not None and _concerns(session, request, citizen):
            return request
        ours = _request_of_our_message(session, message.in_reply_to)
        if ours is not None:
            return ours
    for code in message.reference_codes:
        request = tracking.find(session, code)  # or the request the message given this code joined
        if request is not None and _concerns(session, request, citizen):
            return request
    if message.channel in CHAT_CHANNELS and received_at is not None and chat_window:
        return _open_chat(session, message.channel, citizen, received_at - chat_window)
    return None




def _concerns(session: Session, request: Request, citizen: Citizen) -> bool:
    if request.citizen_id == citizen.id:
        return True
    return session.scalar(
        select(Follower.id).where(Follower.request_id == request.id, Follower.citizen_id == citizen.id)
    ) is not None


def _request_of_our_message(session: Session, message_id: str) -> Request | None:
    sent = session.scalar(select(Request).join(Message).where(
        Message.external_id == message_id, Message.direction == "out"))
    if sent is not None:
        return sent
    return session.scalar(select(Request).join(Delivery).where(Delivery.external_id == message_id))


def _open_chat(session: Session, channel: str, citizen: Citizen, since: datetime) -> Request | None:
    """The citizen's open request whose last message on this chat channel is recent."""
    return session.scalar(
        select(Request).join(Message)
        .where(Request.citizen_id == citizen.id, Request.status.in_(OPEN_STATUSES),
               Message.direction == "in", Message.channel == channel, Message.created_at >= since)
        .order_by(Message.created_at.desc()).limit(1)
    )
