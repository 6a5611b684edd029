"""Files that came with a citizen's message: stored on disk by content hash, listed in the
database, or refused with the reason recorded (too large, executable — see the channel's policy)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .models import Attachment, Event


def save_attachments(session, runtime, request_id: int, message_id: int | None, files) -> int:
    """Store ``files`` (adapters.base.Attachment) for a request; returns how many were kept."""
    kept = 0
    for item in files:
        if item.refused:
            session.add(Event(request_id=request_id, actor="system:attachments", type="attachment_refused",
                              data={"filename": item.filename, "content_type": item.content_type,
                                    "reason": item.refused, "message": message_id}))
            continue
        row = Attachment(request_id=request_id, message_id=message_id, filename=item.filename,
                         content_type=item.content_type, source_url=item.url)
        if item.data is not None:
            row.sha256 = hashlib.sha256(item.data).hexdigest()
            row.size = len(item.data)
            row.storage_path = str(_write(runtime, row.sha256, item.data))
        session.add(row)
        kept += 1
    return kept


def _write(runtime, digest: str, data: bytes) -> Path:
    """Content-addressed, written atomically: the same file twice is stored once."""
    folder = Path(str(runtime.settings["GATEWAY_DATA_DIR"])) / "attachments" / digest[:2]
    path = folder / digest
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    return path
