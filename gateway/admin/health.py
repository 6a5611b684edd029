"""The health of every channel and sink, for administrators: configured or not, last
success, last error, dead deliveries. Read from the database (all processes' work) and
from this process's own record (Runtime.health)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from adapters import registry

from ..models import Delivery, InboundMessage

RECENT = 2000  # rows looked at for "last success / last error": recent activity only


@dataclass
class AdapterHealth:
    kind: str  # "inbound", "outbound", "sink"
    name: str
    misconfigured: str | None = None
    last_success: object = None
    last_error: str | None = None
    dead: int = 0


def report(runtime, session) -> list[AdapterHealth]:
    rows = [AdapterHealth(kind, name, runtime.misconfiguration(kind, name))
            for kind, names in (("inbound", registry.INBOUND), ("outbound", registry.OUTBOUND),
                                ("sink", registry.SINKS)) for name in names]
    _add_deliveries(session, rows)
    _add_inbound(session, rows)
    for row in rows:
        own = runtime.health.get(f"{'sink' if row.kind == 'sink' else 'notify'}:{row.name}", {})
        if own.get("error") and not row.last_error:
            row.last_error = own["error"]
        if row.last_error and row.last_error.startswith("AdapterMisconfiguredError") and not row.misconfigured:
            row.misconfigured = row.last_error.split(": ", 1)[-1]  # found when it last tried to send
    return rows


def _add_deliveries(session, rows: list[AdapterHealth]) -> None:
    by_key = {("sink" if r.kind == "sink" else "notify", r.name): r for r in rows if r.kind != "inbound"}
    recent = session.execute(
        select(Delivery.purpose, Delivery.target, Delivery.state, Delivery.delivered_at, Delivery.last_error)
        .order_by(Delivery.id.desc()).limit(RECENT)).all()
    for purpose, target, state, delivered_at, error in recent:
        _note(by_key.get((purpose, target)), state == "delivered", delivered_at, error)
    dead = session.execute(select(Delivery.purpose, Delivery.target, func.count())
                           .where(Delivery.state == "dead").group_by(Delivery.purpose, Delivery.target)).all()
    for purpose, target, count in dead:
        if (purpose, target) in by_key:
            by_key[(purpose, target)].dead = count


def _add_inbound(session, rows: list[AdapterHealth]) -> None:
    by_name = {r.name: r for r in rows if r.kind == "inbound"}
    recent = session.execute(select(InboundMessage.channel, InboundMessage.state, InboundMessage.received_at,
                                    InboundMessage.error)
                             .order_by(InboundMessage.id.desc()).limit(RECENT)).all()
    for channel, state, received_at, error in recent:
        _note(by_name.get(channel), state == "processed", received_at, error)


def _note(row: AdapterHealth | None, succeeded: bool, at, error: str | None) -> None:
    """Rows come newest first: the first error seen is the last one."""
    if row is None:
        return
    if succeeded and (row.last_success is None or at > row.last_success):
        row.last_success = at
    if error and row.last_error is None:
        row.last_error = error


def dead_deliveries(session, limit: int = 200) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.state == "dead")
                                .order_by(Delivery.id.desc()).limit(limit)))
