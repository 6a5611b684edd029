"""Generic webhook sink: the canonical request as JSON, POSTed to the department's URL, signed.

Configuration (config/departments.yaml): ``{type: webhook, url: https://…, secret_env: NAME}``;
the shared secret is read from the environment variable NAME, never from the file.

Wire format: ``POST <url>`` with ``Content-Type: application/json``, the request (see
``payload``), ``Idempotency-Key`` (the same on every retry of one delivery: the receiver
drops a key it has already seen), and the gateway signature of adapters/signing.py
(``X-Gateway-Timestamp`` + ``X-Gateway-Signature: sha256=…`` over "<timestamp>.<body>").
The department reports progress to ``callback_url`` (POST …/api/v1/requests/<code>/status)
signed the same way with the same secret. A JSON answer with an ``id`` is kept as the
delivery's external id. Quirks: redirects are not followed (a moved URL is a configuration
error); any 2xx counts as accepted.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import httpx

from .. import http
from ..base import DeliveryReceipt, RequestSummary
from ..errors import AdapterMisconfiguredError
from ..signing import sign


class WebhookSink(http.HttpSink):
    type = "webhook"

    def secret(self, target: dict[str, Any]) -> str:
        """Raises AdapterMisconfiguredError when the secret's variable is not set."""
        return http.referenced_secret(self.settings, target, "secret_env", "webhook secret")

    def check(self, target: dict[str, Any]) -> None:
        """Raises AdapterMisconfiguredError when this target cannot be delivered to."""
        if not target.get("url"):
            raise AdapterMisconfiguredError("webhook sink needs a 'url'")
        self.secret(target)

    def deliver(
        self, request: RequestSummary, target: dict[str, Any], idempotency_key: str
    ) -> DeliveryReceipt:
        """Raises AdapterMisconfiguredError, TransientDeliveryError, PermanentDeliveryError."""
        self.check(target)
        url = target["url"]
        body = json.dumps(payload(request, target), ensure_ascii=False, default=_iso).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                   "User-Agent": "citizen-gateway", **sign(self.secret(target), body)}
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            response = http.send(client, "POST", url, "webhook", content=body, headers=headers)
        return DeliveryReceipt(external_id=_answer_id(response))


def payload(request: RequestSummary, target: dict[str, Any]) -> dict:
    """The canonical request, plus what the department needs to answer."""
    document = {"event": "request.routed", **asdict(request)}
    document["attachments"] = list(request.attachments)
    document["callback_url"] = request.track_url.replace("/track/", "/api/v1/requests/") + "/status"
    notice = target.get("notice")
    if notice:
        document["event"] = f"request.{notice['kind']}"
        document["notice"] = notice["text"]
    return document


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not serializable: {type(value).__name__}")


def _answer_id(response: httpx.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None  # a 2xx with no JSON is still an acceptance
    value = document.get("id") if isinstance(document, dict) else None
    return str(value)[:255] if value is not None else None
