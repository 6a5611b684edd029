"""Citizens' photos, voice notes and files: fetched from the provider by a background job.

A channel's parser only names where a file is (a Messenger CDN URL, a Telegram file id); the
pipeline records an Attachment row without the file; this job asks the channel's adapter for
the bytes and stores them under GATEWAY_DATA_DIR/attachments/<request id>/. A transient
failure is tried again by the sweeper with backoff, up to MAX_FETCH_ATTEMPTS.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

from .models import Attachment, Message, utcnow

log = logging.getLogger(__name__)
MAX_FETCH_ATTEMPTS = 5
MAX_BYTES = 25 * 1024 * 1024  # Messenger's own limit; Telegram bots may fetch 20 MB


def fetch_for_inbound(runtime, inbound_id: int) -> int:
    """Fetch every file the inbound message carried; returns how many were stored."""
    with runtime.db.session() as session:
        ids = list(session.scalars(
            select(Attachment.id).join(Message, Attachment.message_id == Message.id)
            .where(Message.inbound_id == inbound_id, Attachment.storage_path.is_(None),
                   Attachment.source_url.is_not(None), Attachment.fetch_attempts < MAX_FETCH_ATTEMPTS)
        ))
    return sum(fetch_one(runtime, attachment_id) for attachment_id in ids)


def fetch_one(runtime, attachment_id: int) -> bool:
    with runtime.db.session() as session:
        row = session.get(Attachment, attachment_id)
        if row is None or row.storage_path or not row.source_url or row.fetch_attempts >= MAX_FETCH_ATTEMPTS:
            return False
        row.fetch_attempts += 1
        channel = session.scalar(select(Message.channel).where(Message.id == row.message_id))
        source, request_id, filename = row.source_url, row.request_id, row.filename
    try:
        adapter = runtime.outbound(channel)
        if adapter is None or not hasattr(adapter, "fetch"):
            raise AdapterMisconfiguredError(f"no adapter can fetch files for {channel}")
        data, content_type = adapter.fetch(source)
        if len(data) > MAX_BYTES:
            raise PermanentDeliveryError(f"file larger than {MAX_BYTES // (1024 * 1024)} MB")
    except TransientDeliveryError as exc:
        return _failed(runtime, attachment_id, str(exc), give_up=False)
    except (PermanentDeliveryError, AdapterMisconfiguredError) as exc:
        return _failed(runtime, attachment_id, str(exc), give_up=True)
    path = _write(Path(str(runtime.settings["GATEWAY_DATA_DIR"])), request_id, attachment_id, filename, data)
    with runtime.db.session() as session:
        row = session.get(Attachment, attachment_id)
        row.storage_path, row.size, row.fetch_error = str(path), len(data), None
        row.sha256 = hashlib.sha256(data).hexdigest()
        if content_type and content_type.split(";")[0].strip() not in ("", "application/octet-stream"):
            row.content_type = content_type.split(";")[0].strip()[:100]
    log.info("attachment %s of request id %s stored (%s bytes)", attachment_id, request_id, len(data))
    return True


def pending(runtime, limit: int = 500) -> list[int]:
    """Inbound ids whose files are still to fetch and whose backoff has passed."""
    base = float(runtime.settings["GATEWAY_BACKOFF_SECONDS"])
    now = utcnow()
    with runtime.db.session() as session:
        rows = session.execute(
            select(Message.inbound_id, Attachment.fetch_attempts, Attachment.created_at)
            .join(Message, Attachment.message_id == Message.id)
            .where(Attachment.storage_path.is_(None), Attachment.source_url.is_not(None),
                   Attachment.fetch_attempts < MAX_FETCH_ATTEMPTS, Message.inbound_id.is_not(None))
            .limit(limit)
        ).all()
    due = {inbound for inbound, attempts, created in rows
           if now - created >= timedelta(seconds=base * 2 ** attempts)}
    return sorted(due)


def _failed(runtime, attachment_id: int, error: str, give_up: bool) -> bool:
    with runtime.db.session() as session:
        row = session.get(Attachment, attachment_id)
        row.fetch_error = error[:2000]
        if give_up:
            row.fetch_attempts = MAX_FETCH_ATTEMPTS
    log.warning("attachment %s not fetched%s: %s", attachment_id, " (given up)" if give_up else "", error)
    return False


def _write(root: Path, request_id: int, attachment_id: int, filename: str, data: bytes) -> Path:
    folder = root / "attachments" / str(request_id)
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "file"
    path = folder / f"{attachment_id}-{safe[:120]}"
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(data)
    os.replace(temporary, path)  # a reader never sees half a file
    return path
