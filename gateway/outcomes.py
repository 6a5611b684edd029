"""How the outbox records the outcome of a send: committed before the next send, only if the
sender still holds its claim (the lease it was given), with its event, and for a citizen
notice the ``Message`` and the request's ``acknowledged_at``.

A batch keeps one connection (``Records``); on PostgreSQL an outcome is one statement in
autocommit (the lease-guarded UPDATE, the rest in data-modifying CTEs that read its RETURNING
row): one round trip and one durable commit. SQLite has no UPDATE or INSERT inside WITH: the
same statements in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlalchemy import and_, bindparam, cast, insert, literal, select, update
from sqlalchemy.exc import DBAPIError

from .models import Delivery, Event, Message, Request, utcnow

_D = Delivery.__table__
HELD = and_(_D.c.state == "sending", _D.c.lease_until == bindparam("held", type_=_D.c.lease_until.type))
_FINISH = update(_D).where(_D.c.id == bindparam("row_id"), HELD)  # SET: the columns given
_EVENT = insert(Event.__table__)
_MESSAGE = insert(Message.__table__)
_R = Request.__table__
_ACKNOWLEDGED = update(_R).where(_R.c.id == bindparam("request"), _R.c.acknowledged_at.is_(None)).values(
    acknowledged_at=bindparam("at", type_=_R.c.acknowledged_at.type))


class Records:
    """Where a batch claims and records its outcomes: one connection for the whole batch (one
    pool checkout and liveness ping, not one per delivery), no transaction open while a
    message is sent. Each outcome is committed before the next send:

    - PostgreSQL: one statement in autocommit (its own transaction, durable when it returns):
      the row's update, guarded by our lease, and in data-modifying CTEs that read the
      update's RETURNING row its event, the ``Message`` and ``acknowledged_at`` of a citizen
      notice. Nothing is written if the update matched no row, as before; one round trip and
      one commit instead of BEGIN, two to four statements and COMMIT.
    - SQLite (no UPDATE or INSERT inside WITH): the same statements, one transaction.

    A connection the database dropped while a message was being sent (a restart) is replaced
    once, as the pool's ping did for a connection taken per outcome; the outcome's statement
    is guarded by the lease, so running it again after a lost reply writes nothing twice."""

    def __init__(self, engine):
        self.engine = engine
        self.single = engine.dialect.name == "postgresql"
        self.connection = engine.connect()
        self.autocommit = False

    def write(self, work):
        """Run ``work(connection)`` and commit it (PostgreSQL: ``work`` runs one statement)."""
        try:
            return self._write(work)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            self.connection.close()
            self.connection, self.autocommit = self.engine.connect(), False
            return self._write(work)

    def _write(self, work):
        if not self.single:
            with self.connection.begin():
                return work(self.connection)
        if not self.autocommit:
            self.connection.execution_options(isolation_level="AUTOCOMMIT")
            self.autocommit = True
        return work(self.connection)

    def close(self) -> None:
        self.connection.close()


def finish(records, row, held: datetime, **values) -> bool:
    """Write the outcome and its event in one commit, only if we still hold the claim (our
    lease, not taken over by another worker after it ran out)."""
    if values.get("last_error"):  # a provider's answer may carry a NUL, which PostgreSQL's text cannot hold
        values["last_error"] = values["last_error"].replace("\x00", "\\x00")
    if records.single:
        return records.write(lambda connection: connection.execute(
            _outcome(row, values), _outcome_parameters(row, held, values)).first() is not None)

    def write(connection) -> bool:
        result = connection.execute(_FINISH, {**values, "row_id": row.id, "held": held})
        if result.rowcount != 1:
            return False
        if row.request_id is not None:  # a chat reply about no request: the outbox row is the record
            _record(connection, row, values)
        return True

    return records.write(write)


def _event_data(row, values: dict) -> dict:
    data = {"delivery": row.id, "target": row.target, "attempt": row.attempts, "state": values["state"]}
    if values.get("last_error"):
        data["error"] = values["last_error"]
    return data


def _event_kind(row, values: dict) -> tuple[str, str]:
    kind = {"delivered": "delivered", "pending": "delivery_retry", "dead": "delivery_dead"}[values["state"]]
    return f"{'sink' if row.purpose == 'sink' else 'channel'}:{row.target}", kind


def _message_values(row, values: dict) -> dict:
    message = row.settings["message"]
    return {"request_id": row.request_id, "direction": "out", "channel": row.target, "body": message["text"],
            "subject": message.get("subject"), "external_id": values.get("external_id"), "delivery_id": row.id,
            "author": row.settings.get("author")}


def _record(connection, row, values: dict) -> None:
    state = values["state"]
    actor, kind = _event_kind(row, values)
    connection.execute(_EVENT, {"request_id": row.request_id, "actor": actor, "type": kind,
                                "data": _event_data(row, values)})
    if state == "delivered" and row.purpose == "notify":
        connection.execute(_MESSAGE, _message_values(row, values))
        if row.settings.get("kind") == "acknowledgement":
            connection.execute(_ACKNOWLEDGED, {"request": row.request_id, "at": values["delivered_at"]})


def _writes(row, values: dict) -> tuple[bool, bool, bool]:
    """What an outcome writes besides its row: (an event, a Message, acknowledged_at)."""
    event = row.request_id is not None
    message = event and values["state"] == "delivered" and row.purpose == "notify"
    return event, message, message and row.settings.get("kind") == "acknowledgement"


def _outcome(row, values: dict):
    return _outcome_statement(tuple(sorted(values)), *_writes(row, values))


_E, _M = Event.__table__, Message.__table__


def _typed(name: str, column):
    """A parameter in a SELECT list, cast to its column's type (PostgreSQL would read it as text)."""
    return cast(bindparam(name, type_=column.type), column.type)


@lru_cache(maxsize=32)
def _outcome_statement(columns: tuple[str, ...], event: bool, message: bool, acknowledged: bool):
    """PostgreSQL: the outcome in one statement (see ``Records``); a row back if it was ours.
    The parameters are prefixed ("o_"): no name is taken for a column to set."""
    done = update(_D).where(_D.c.id == bindparam("o_row"), _D.c.state == "sending",
                            _D.c.lease_until == bindparam("o_held", type_=_D.c.lease_until.type))
    done = done.values({name: bindparam(f"o_{name}", type_=_D.c[name].type) for name in columns}).returning(_D.c.id)
    if not event:
        return done
    done = done.cte("done")
    writes = [insert(_E).from_select(
        ["request_id", "at", "actor", "type", "public", "data"],
        select(_typed("o_request", _E.c.request_id), _typed("o_at", _E.c.at), _typed("o_actor", _E.c.actor),
               _typed("o_type", _E.c.type), literal(False), _typed("o_data", _E.c.data)).select_from(done),
    ).cte("event")]
    if message:
        names = ["request_id", "direction", "channel", "body", "subject", "external_id", "delivery_id", "author"]
        writes.append(insert(_M).from_select(
            [*names, "created_at"],
            select(*(_typed(f"o_m_{name}", _M.c[name]) for name in names), _typed("o_at", _M.c.created_at))
            .select_from(done),
        ).cte("message"))
    if acknowledged:
        writes.append(update(_R).where(_R.c.id == bindparam("o_request"), _R.c.acknowledged_at.is_(None),
                                       select(done.c.id).exists())
                      .values(acknowledged_at=bindparam("o_delivered_at", type_=_R.c.acknowledged_at.type),
                              updated_at=bindparam("o_at", type_=_R.c.updated_at.type))
                      .cte("acknowledged"))
    return select(done.c.id).add_cte(*writes)


def _outcome_parameters(row, held: datetime, values: dict) -> dict:
    parameters = {f"o_{name}": value for name, value in values.items()}
    parameters.update(o_row=row.id, o_held=held)
    event, message, _ = _writes(row, values)
    if event:
        actor, kind = _event_kind(row, values)
        parameters.update(o_request=row.request_id, o_at=utcnow(), o_actor=actor, o_type=kind,
                          o_data=_event_data(row, values))
    if message:
        parameters.update({f"o_m_{name}": value for name, value in _message_values(row, values).items()})
    return parameters
