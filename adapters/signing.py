"""The gateway's own webhook signature, used both ways with a department's shared secret.

Scheme (Stripe-like, so that the timestamp cannot be replaced without breaking the
signature): ``X-Gateway-Timestamp: <unix seconds>`` and
``X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>``.
A receiver rejects a timestamp more than five minutes away from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from .errors import SignatureError

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
WINDOW_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers that sign ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"sha256={digest}"}


def verify(secret: str, body: bytes, headers, now: float | None = None) -> None:
    """Raises SignatureError when the signature is missing, wrong or stale."""
    stamp = headers.get(TIMESTAMP_HEADER) or ""
    given = headers.get(SIGNATURE_HEADER) or ""
    if not stamp.isdigit() or not given.startswith("sha256="):
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    if abs((time.time() if now is None else now) - int(stamp)) > WINDOW_SECONDS:
        raise SignatureError("timestamp outside the five-minute window (replay?)")
    expected = sign(secret, body, int(stamp))[SIGNATURE_HEADER]
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError("signature does not match")
