"""Downloading a citizen's file from a provider, never past a size limit."""

from __future__ import annotations

import httpx

from .errors import PermanentDeliveryError


def read_limited(response: httpx.Response, max_bytes: int) -> tuple[bytes, str]:
    """(content, content type) of a streamed response, read chunk by chunk.

    Raises PermanentDeliveryError as soon as the declared or received size passes ``max_bytes``."""
    declared = int(response.headers.get("Content-Length") or 0)
    if declared > max_bytes:
        raise PermanentDeliveryError(f"media is {declared} bytes, over the {max_bytes} limit")
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > max_bytes:
            raise PermanentDeliveryError(f"media is over the {max_bytes} bytes limit")
    return bytes(data), response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
