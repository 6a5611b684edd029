"""Files that came with a citizen's message, stored and size-limited.

Files inside the message itself (e-mail attachments and inline pictures) are written at once
by `add_received`; one the channel refused (too large, executable) is not kept and the reason
is recorded on the request.

Files that arrive by URL (MMS photos, call recordings) are fetched by a job:

The pipeline records each one as a pending Attachment; the `fetch_attachment` job downloads it
with the adapter of the channel it came by (which holds the provider's credentials) into
GATEWAY_DATA_DIR/attachments/<request id>/, then records size, type and SHA-256. A transient
failure leaves it pending for the sweeper (up to MAX_ATTEMPTS); a permanent one (too large,
refused, not the provider's host) marks it failed, recorded on the request for an agent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path

from sqlalchemy import select, update

from adapters.base import Attachment as IncomingFile
from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

from .models import Attachment, Event, InboundMessage, Message

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


def add_pending(session, request_id: int, message_id: int | None, files: tuple[IncomingFile, ...]) -> list[int]:
    """One pending Attachment per file given by URL; returns their ids."""
    rows = [Attachment(request_id=request_id, message_id=message_id, filename=_safe_name(f.filename),
                       content_type=_type(f.content_type), source_url=f.url.replace("\x00", "")[:1000], fetch_state="pending")
            for f in files if f.url]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def add_received(session, runtime, request_id: int, message_id: int | None,
                 files: tuple[IncomingFile, ...]) -> list[int]:
    """Store the files whose bytes came in the message; record the refused ones. Returns ids."""
    rows = []
    for item in files:
        if item.refused:
            session.add(Event(request_id=request_id, actor="system:attachments", type="attachment_refused",
                              data={"filename": item.filename, "content_type": item.content_type,
                                    "reason": item.refused, "message": message_id}))
        elif item.data is not None and not item.url:
            row = Attachment(request_id=request_id, message_id=message_id, filename=_safe_name(item.filename),
                             content_type=_type(item.content_type), size=len(item.data),
                             sha256=hashlib.sha256(item.data).hexdigest(), fetch_state="stored")
            session.add(row)
            session.flush()
            folder = Path(str(runtime.settings["GATEWAY_DATA_DIR"])) / "attachments" / str(request_id)
            row.storage_path = str(_write(folder, f"{row.id}-{row.filename}", item.data))
            rows.append(row.id)
    return rows


def pending_for_inbound(runtime, inbound_id: int) -> list[int]:
    with runtime.db.session() as session:
        return list(session.scalars(
            select(Attachment.id).join(Message, Attachment.message_id == Message.id)
            .where(Message.inbound_id == inbound_id, Attachment.fetch_state == "pending")))


def pending_attachments(runtime, limit: int = 200) -> list[int]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Attachment.id).where(Attachment.fetch_state == "pending")
                                    .order_by(Attachment.id).limit(limit)))


def fetch_attachment(runtime, attachment_id: int) -> str | None:
    """Download one pending attachment. Returns its new state; None if it was not pending, or
    another worker stored it meanwhile."""
    with runtime.db.session() as session:
        row = session.get(Attachment, attachment_id)
        if row is None or row.fetch_state != "pending":
            return None
        url, request_id, filename = row.source_url, row.request_id, row.filename
        channel = session.scalar(select(InboundMessage.channel).join(Message, Message.inbound_id == InboundMessage.id)
                                 .where(Message.id == row.message_id))
        row.fetch_attempts += 1
        attempts = row.fetch_attempts
    limit = int(runtime.settings.get("GATEWAY_ATTACHMENT_MAX_BYTES") or DEFAULT_MAX_BYTES)
    try:
        data, content_type = runtime.inbound_parser(channel).fetch(url, limit)
    except TransientDeliveryError as exc:
        if attempts < MAX_ATTEMPTS:
            log.warning("attachment %s not fetched yet (attempt %s): %s", attachment_id, attempts, exc)
            return "pending"
        return _failed(runtime, attachment_id, f"gave up after {attempts} attempts: {exc}")
    except (PermanentDeliveryError, AdapterMisconfiguredError) as exc:
        return _failed(runtime, attachment_id, f"{type(exc).__name__}: {exc}")
    path = _write(Path(str(runtime.settings["GATEWAY_DATA_DIR"])) / "attachments" / str(request_id),
                  f"{attachment_id}-{filename}", data)
    with runtime.db.session() as session:
        stored = session.execute(
            update(Attachment).where(Attachment.id == attachment_id, Attachment.fetch_state == "pending")
            .values(fetch_state="stored", size=len(data), content_type=_type(content_type),
                    sha256=hashlib.sha256(data).hexdigest(), storage_path=str(path), fetch_error=None)).rowcount
        if not stored:  # another worker (a job and the sweeper) fetched it at the same time: recorded once
            return None
        session.add(Event(request_id=request_id, actor="system:attachments", type="attachment_stored",
                          data={"attachment": attachment_id, "size": len(data), "content_type": content_type}))
    log.info("attachment %s stored (%s bytes)", attachment_id, len(data))
    return "stored"


def _failed(runtime, attachment_id: int, error: str) -> str:
    with runtime.db.session() as session:
        row = session.get(Attachment, attachment_id)
        row.fetch_state, row.fetch_error = "failed", error[:2000]
        session.add(Event(request_id=row.request_id, actor="system:attachments", type="attachment_failed",
                          data={"attachment": attachment_id, "error": error[:500]}))
    log.error("attachment %s failed: %s", attachment_id, error)
    return "failed"


def _write(folder: Path, name: str, data: bytes) -> Path:
    """Written under a temporary name then renamed: a reader never sees half a file. The
    temporary name is this writer's own: two fetching one file at once each rename theirs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    temporary = folder / f".{name}.{os.getpid()}-{threading.get_ident()}.part"
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return path


def _type(content_type: str) -> str:
    """A declared content type as its column holds it (100 characters, no NUL: a sender's
    header can carry anything, and PostgreSQL's text cannot hold a NUL)."""
    return content_type.replace("\x00", "")[:100] or "application/octet-stream"


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"
    return cleaned[:120]
