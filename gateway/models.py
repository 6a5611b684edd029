"""The database: the source of truth. SQLAlchemy 2 models; Alembic migrations in migrations/.

Tables, in the order of the flow: inbound_messages (raw, unique per channel + provider id)
→ citizens / contact_points → requests → messages, events, attachments, followers →
deliveries (the outbox). Times are stored in UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .utc import UTCDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON}


REQUEST_STATUSES = (
    "new", "acknowledged", "routed", "in_progress", "resolved", "closed",
    "duplicate", "rejected", "needs_info",
)
OPEN_STATUSES = ("new", "acknowledged", "routed", "in_progress", "needs_info")
DELIVERY_STATES = ("pending", "sending", "delivered", "dead")


class InboundMessage(Base):
    """A provider's payload exactly as received, stored before the provider is answered."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("channel", "provider_id", name="uq_inbound_provider"),
                      Index("ix_inbound_messages_state_id", "state", "id"))  # waiting, in order

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))  # the adapter that parses it
    provider_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    content_type: Mapped[str] = mapped_column(String(100), default="application/json")
    headers: Mapped[dict] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="received")  # ix_inbound_messages_state_id
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    reserved_code: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))
    processed_at: Mapped[datetime | None]
    sender: Mapped[str | None] = mapped_column(String(255), index=True)  # an SMS's number (E.164)


class Citizen(Base):
    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(2))
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    consent: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    forgotten_at: Mapped[datetime | None]  # name and contact points erased (gateway/retention.py)
    contacts: Mapped[list[ContactPoint]] = relationship(back_populates="citizen", lazy="selectin")

    def contact(self, kind: str) -> ContactPoint | None:
        usable = [c for c in self.contacts if c.kind == kind and not c.undeliverable]
        return usable[0] if usable else None

    def __repr__(self) -> str:  # no personal data in reprs
        return f"<Citizen {self.id}>"


class ContactPoint(Base):
    """One way to reach a citizen: phone (E.164), email, messenger PSID, telegram chat id."""

    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_contact_point"),
                      Index("ix_contact_points_value", "value"))  # a sender is looked up by value

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_inbound_at: Mapped[datetime | None]  # the citizen's last message from here (Messenger's 24 h)
    citizen: Mapped[Citizen] = relationship(back_populates="contacts")

    def __repr__(self) -> str:
        return f"<ContactPoint {self.id} {self.kind}>"


class Request(Base):
    """The canonical request (see SPEC): one problem, followed to the end."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_status_created", "status", "created_at"),
        Index("ix_requests_dedup", "category", "status", "created_at"),
        # a citizen's requests; dedup's same-citizen step: of one category, recent
        Index("ix_requests_citizen", "citizen_id", "category", "created_at"),
        Index("ix_requests_dedup_cell", "category", "dedup_cell", "created_at"),
        Index("ix_requests_dedup_street", "category", "dedup_street", "created_at"),
        # the inbox's keyset pagination and filters (see gateway/inbox/queries.py)
        Index("ix_requests_created", "created_at", "id"),
        Index("ix_requests_urgency", "priority", "created_at", "id"),
        Index("ix_requests_channel_created", "channel", "created_at"),
        Index("ix_requests_department_created", "department", "created_at"),
        Index("ix_requests_district_created", "district", "created_at"),
        Index("ix_requests_assignee_created", "assigned_to_id", "created_at"),
        Index("ix_requests_sla", "sla_due_at"),
        Index("ix_requests_duplicate_of", "duplicate_of_id"),
        # Dashboards: every aggregate is over a period; the extra columns make it index-only.
        Index("ix_requests_period", "created_at", "channel", "category", "department", "district"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    kind: Mapped[str] = mapped_column(String(24), default="service_request")
    priority: Mapped[str] = mapped_column(String(12), default="routine")
    category: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64))  # ix_requests_department_created
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))  # ix_requests_citizen
    subject: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    district: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(80))
    decision: Mapped[dict | None]
    attributes: Mapped[dict | None]  # answers to the service's questions (Open311 attribute[…])
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))
    dedup_cell: Mapped[str | None] = mapped_column(String(24))  # dedup/index.py: grid cell
    dedup_street: Mapped[str | None] = mapped_column(String(120))  # and street key
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sla_due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None]
    routed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    sla_state: Mapped[str | None] = mapped_column(String(12))  # None, "approaching", "breached"
    related_to_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))  # a closed request reported again

    citizen: Mapped[Citizen | None] = relationship(lazy="joined")
    duplicate_of: Mapped[Request | None] = relationship(remote_side=[id], foreign_keys=[duplicate_of_id])
    related_to: Mapped[Request | None] = relationship(remote_side=[id], foreign_keys=[related_to_id])
    messages: Mapped[list[Message]] = relationship(order_by="Message.id", back_populates="request")
    events: Mapped[list[Event]] = relationship(order_by="Event.id", back_populates="request")
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")
    deliveries: Mapped[list[Delivery]] = relationship(order_by="Delivery.id", back_populates="request")
    suggestions: Mapped[list[DedupSuggestion]] = relationship(
        order_by="DedupSuggestion.score.desc()", foreign_keys="DedupSuggestion.request_id",
        back_populates="request")

    def __repr__(self) -> str:
        return f"<Request {self.code} {self.status}>"


# ``session.get(Request, id, with_for_update=LOCK_REQUEST)``: the request's row locked (PostgreSQL:
# FOR UPDATE OF requests). Plain FOR UPDATE fails there: its citizen comes in an outer join.
LOCK_REQUEST = {"of": Request}


class RequestChange(Base):
    """SQLite: a request inserted, deleted or changed in a column dedup's search reads,
    logged by triggers (migration 0018) in the order of the commits. The pipeline's batches
    search for candidates before the write lock and catch up inside it (dedup/early.py).
    Unused, and empty, on PostgreSQL."""

    __tablename__ = "request_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int]


class DedupSuggestion(Base):
    """A possible duplicate for an agent to confirm or reject (dedup between the two
    thresholds), or an urgent request linked automatically that an agent must check."""

    __tablename__ = "dedup_suggestions"
    __table_args__ = (
        UniqueConstraint("request_id", "candidate_id", name="uq_dedup_suggestion"),
        Index("ix_dedup_suggestions_state", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="suggestion")  # or "urgent_link"
    score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # confirmed, rejected
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(120))
    request: Mapped[Request] = relationship(foreign_keys=[request_id], back_populates="suggestions")
    candidate: Mapped[Request] = relationship(foreign_keys=[candidate_id])


class Follower(Base):
    """A citizen told of a request's progress without being its requester (duplicates)."""

    __tablename__ = "followers"
    __table_args__ = (UniqueConstraint("request_id", "citizen_id", name="uq_follower"),
                      Index("ix_followers_citizen", "citizen_id"))  # retention: what a citizen follows

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GivenCode(Base):
    """A tracking code a citizen was given for a message that then joined another request
    (the same problem written again, a conversation continued): it leads to that request
    (gateway/tracking.py). Written only then, so that intake pays nothing for it."""

    __tablename__ = "given_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)  # shown on its page
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """Every message of the conversation, in and out, with its channel."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    channel: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str | None] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    author: Mapped[str | None] = mapped_column(String(120))  # an agent, for replies
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    request: Mapped[Request] = relationship(back_populates="messages")


class Event(Base):
    """The audit trail: who or what did what, when, and why."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_type_at", "type", "at"),)  # Open311 servicerequestupdates

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))  # "system:router", "agent:…", "sink:…"
    type: Mapped[str] = mapped_column(String(40))
    public: Mapped[bool] = mapped_column(Boolean, default=False)  # shown on /track
    data: Mapped[dict] = mapped_column(default=dict)
    request: Mapped[Request] = relationship(back_populates="events")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_path: Mapped[str | None] = mapped_column(String(500))
    source_url: Mapped[str | None] = mapped_column(String(1000))
    # Files given by URL (MMS media, call recordings) are fetched by a job: pending → stored | failed.
    fetch_state: Mapped[str] = mapped_column(String(12), default="stored", server_default="stored", index=True)
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetch_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """The outbox: one row per delivery to a department's tool or message to a citizen."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for a chat reply that concerns no request (a /start welcome, "you have no request")
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # "sink" or "notify"
    target: Mapped[str] = mapped_column(String(64))  # sink type or citizen channel
    settings: Mapped[dict] = mapped_column(default=dict)  # sink settings / message to send
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)  # delivery reports, replies
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    remote_status: Mapped[str | None] = mapped_column(String(64))  # last status read back (Open311)
    polled_at: Mapped[datetime | None]
    request: Mapped[Request] = relationship(back_populates="deliveries")

    def __repr__(self) -> str:
        return f"<Delivery {self.id} {self.purpose}:{self.target} {self.state}>"


class User(Base):
    """An agent, administrator, department member, manager or read-only reader."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(64))  # a department member's: what they see
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class ConfigVersion(Base):
    """One change of a configuration file made from the administrators' console."""

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(64), index=True)
    previous: Mapped[str] = mapped_column(Text)  # the file before the change, for rollback
    content: Mapped[str] = mapped_column(Text)  # the file after the change
    action: Mapped[str] = mapped_column(String(16))  # "apply" or "rollback"
    author: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """A failed sign-in, kept a short while to slow down password guessing."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300))  # "ip:…" or "email:…" (hashed)
    at: Mapped[datetime] = mapped_column(default=utcnow)
class DashboardDay(Base):
    """Requests received per UTC day and channel × category × department × district ('' for
    none): the dashboards' roll-up for days old enough not to change (gateway/dashboard/rollup.py)."""

    __tablename__ = "dashboard_days"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), primary_key=True)
    district: Mapped[str] = mapped_column(String(64), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)


class DashboardDayBuilt(Base):
    """The days present in dashboard_days (a day with no request has no row there)."""

    __tablename__ = "dashboard_days_built"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


ROLES = ("agent", "supervisor", "admin", "department", "manager", "readonly")


class EmailReceipt(Base):
    """One message read from a mailbox: the IMAP bookkeeping that makes re-reading harmless.

    Unique on (mailbox, UIDVALIDITY, UID) and on (mailbox, Message-ID): a message read again
    after a crash, or after the server renumbered the mailbox, finds its receipt."""

    __tablename__ = "email_receipts"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_email_receipt_uid"),
        UniqueConstraint("mailbox", "message_key", name="uq_email_receipt_message"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_key: Mapped[str] = mapped_column(String(255))  # the Message-ID, or sha256 of the bytes
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    marked_at: Mapped[datetime | None]  # flagged or moved on the server


class MailboxState(Base):
    """What the poller last knew of a mailbox: its UIDVALIDITY and how far it has read."""

    __tablename__ = "mailbox_states"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
