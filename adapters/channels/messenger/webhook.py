"""Messenger's webhook side: the signature, the subscription check, and one stored item per
event of a batch (see the package's docstring for the provider's rules)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from ...errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    SignatureError,
    UnsupportedEventError,
)
from ...payload import json_object

NOT_EVENTS = ("delivery", "read", "optin", "referral", "account_linking", "reaction", "policy_enforcement")


def verify_signature(app_secret: str | None, body: bytes, header: str | None) -> None:
    """Raises AdapterMisconfiguredError (no secret) or SignatureError (missing or wrong)."""
    if not app_secret:
        raise AdapterMisconfiguredError("MESSENGER_APP_SECRET is not set")
    if not header or not header.startswith("sha256="):
        raise SignatureError("X-Hub-Signature-256 is missing")
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError("X-Hub-Signature-256 does not match the body")


def verify_subscription(verify_token: str | None, mode: str | None, token: str | None) -> bool:
    """The GET handshake: True when Meta may subscribe this webhook."""
    if not verify_token or mode != "subscribe" or token is None:
        return False
    return hmac.compare_digest(verify_token.encode(), token.encode())


@dataclass(frozen=True)
class BatchItem:
    provider_id: str
    body: bytes  # a one-event envelope: {"object": "page", "entry": [{…, "messaging": [event]}]}


@dataclass
class Batch:
    items: list[BatchItem]
    ignored: dict[str, int]
    rejected: list[dict]


def split_batch(body: bytes) -> Batch:
    """One item per storable event (messages, postbacks, edits). Raises MalformedPayloadError
    when the envelope itself cannot be read, UnsupportedEventError for other objects."""
    document = json_object(body)
    if document.get("object") != "page":
        raise UnsupportedEventError(f"object type {str(document.get('object'))[:40]!r} is not handled")
    entries = document.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayloadError("entry must be a list", field="entry")
    batch = Batch([], {}, [])
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            batch.rejected.append({"field": f"entry.{i}", "error": "not an object"})
            continue
        events = entry.get("messaging")
        if not isinstance(events, list):
            batch.ignored["entry without messaging"] = batch.ignored.get("entry without messaging", 0) + 1
            continue
        for j, event in enumerate(events):
            _split_event(batch, entry, event, f"entry.{i}.messaging.{j}")
    if len(entries) == len(batch.items) == 1 and len(entries[0]["messaging"]) == 1:
        # One event sent alone, the usual POST: it is already a one-event envelope, stored as
        # Meta sent it rather than written again.
        batch.items[0] = BatchItem(batch.items[0].provider_id, body)
    return batch


def _split_event(batch: Batch, entry: dict, event, where: str) -> None:
    if not isinstance(event, dict):
        batch.rejected.append({"field": where, "error": "not an object"})
        return
    kind = event_kind(event)
    if kind in NOT_EVENTS or kind == "echo":
        batch.ignored[kind] = batch.ignored.get(kind, 0) + 1
        return
    if kind is None:
        batch.ignored["unknown"] = batch.ignored.get("unknown", 0) + 1
        return
    if not sender_of(event):
        batch.rejected.append({"field": f"{where}.sender.id", "error": "missing sender"})
        return
    provider_id = _provider_id(kind, event)
    if provider_id is None:
        batch.rejected.append({"field": f"{where}.{kind}.mid", "error": "missing message id"})
        return
    one = {"object": "page", "entry": [{"id": entry.get("id"), "time": entry.get("time"), "messaging": [event]}]}
    batch.items.append(BatchItem(provider_id, json.dumps(one, ensure_ascii=False).encode()))


def event_kind(event: dict) -> str | None:
    message = event.get("message")
    if isinstance(message, dict):
        return "echo" if message.get("is_echo") else "message"
    for kind in ("postback", "message_edit", *NOT_EVENTS):
        if kind in event:
            return kind
    return None


def sender_of(event: dict) -> str | None:
    """The PSID of the event's sender, as text, or None."""
    sender = event.get("sender")
    value = sender.get("id") if isinstance(sender, dict) else None
    return str(value) if isinstance(value, str | int) and str(value) else None


def _provider_id(kind: str, event: dict) -> str | None:
    body = event.get(kind) if isinstance(event.get(kind), dict) else {}
    mid = body.get("mid")
    if kind == "message":
        return str(mid) if mid else None
    if kind == "message_edit":
        return f"{mid}:edit:{body.get('num_edit', 0)}" if mid else None
    return str(mid) if mid else f"postback:{sender_of(event)}:{event.get('timestamp', '')}"
