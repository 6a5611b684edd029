"""The database: the source of truth. SQLAlchemy 2 models; Alembic migrations in migrations/.

Tables, in the order of the flow: inbound_messages (raw, unique per channel + provider id)
→ citizens / contact_points → requests → messages, events, attachments, followers →
deliveries (the outbox). Times are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
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
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


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
    __table_args__ = (UniqueConstraint("channel", "provider_id", name="uq_inbound_provider"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))  # the adapter that parses it
    provider_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    content_type: Mapped[str] = mapped_column(String(100), default="application/json")
    headers: Mapped[dict] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="received", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    reserved_code: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))
    processed_at: Mapped[datetime | None]


class Citizen(Base):
    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(2))
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    consent: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    contacts: Mapped[list[ContactPoint]] = relationship(back_populates="citizen", lazy="selectin")

    def contact(self, kind: str) -> ContactPoint | None:
        usable = [c for c in self.contacts if c.kind == kind and not c.undeliverable]
        return usable[0] if usable else None

    def __repr__(self) -> str:  # no personal data in reprs
        return f"<Citizen {self.id}>"


class ContactPoint(Base):
    """One way to reach a citizen: phone (E.164), email, messenger PSID, telegram chat id."""

    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_contact_point"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    citizen: Mapped[Citizen] = relationship(back_populates="contacts")

    def __repr__(self) -> str:
        return f"<ContactPoint {self.id} {self.kind}>"


class Request(Base):
    """The canonical request (see SPEC): one problem, followed to the end."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_status_created", "status", "created_at"),
        Index("ix_requests_dedup", "category", "status", "created_at"),
        # Dashboards: every aggregate is over a period; the extra columns make it index-only.
        Index("ix_requests_period", "created_at", "channel", "category", "department", "district"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    kind: Mapped[str] = mapped_column(String(24), default="service_request")
    priority: Mapped[str] = mapped_column(String(12), default="routine")
    category: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
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
    sla_due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None]
    routed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    citizen: Mapped[Citizen | None] = relationship(lazy="joined")
    duplicate_of: Mapped[Request | None] = relationship(remote_side=[id])
    messages: Mapped[list[Message]] = relationship(order_by="Message.id", back_populates="request")
    events: Mapped[list[Event]] = relationship(order_by="Event.id", back_populates="request")
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")
    deliveries: Mapped[list[Delivery]] = relationship(order_by="Delivery.id", back_populates="request")

    def __repr__(self) -> str:
        return f"<Request {self.code} {self.status}>"


class Follower(Base):
    """A citizen told of a request's progress without being its requester (duplicates)."""

    __tablename__ = "followers"
    __table_args__ = (UniqueConstraint("request_id", "citizen_id", name="uq_follower"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """The outbox: one row per delivery to a department's tool or message to a citizen."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # "sink" or "notify"
    target: Mapped[str] = mapped_column(String(64))  # sink type or citizen channel
    settings: Mapped[dict] = mapped_column(default=dict)  # sink settings / message to send
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
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
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


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
