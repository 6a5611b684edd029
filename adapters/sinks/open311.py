"""Open311 sink: the request POSTed to the department's existing GeoReport v2 server, then polled.

Provider docs: Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2): ``POST
<endpoint>/requests.json`` (form-encoded: api_key, service_code, lat, long, address_string,
description, media_url) answers ``[{"service_request_id": …}]`` or, for servers that create
requests later, ``[{"token": …}]`` (resolved with ``GET tokens/<token>.json``). Status comes
back with ``GET requests.json?service_request_id=a,b`` ("open"/"closed" + status_notes) and,
where the server offers mySociety's Open311 updates extension, ``GET
servicerequestupdates.xml?start_date=…&end_date=…`` (``<request_update>`` items with
update_id, service_request_id, status such as IN_PROGRESS/FIXED/NOT_COUNCILS_RESPONSIBILITY,
updated_datetime, description).

Configuration: ``{type: open311, endpoint: https://…/open311/v2, api_key_env: NAME,
service_codes: {pothole: "4fd3b…"}, jurisdiction_id: …, updates: true}``; the API key is read
from the environment variable NAME. A category without a service code is a configuration
error. No signature scheme (the api_key authenticates us).

Exactly once: GeoReport v2 has no idempotency key. Each POST carries an ``Idempotency-Key``
header with the outbox's key, the same on every retry (servers that follow the IETF draft
draft-ietf-httpapi-idempotency-key-header act once; the others ignore it), and the
description starts with the tracking code in brackets (``[R-2026-4821735] Gros
nid-de-poule…``, cut to GeoReport's 4000 characters), which a department's agent can quote
and a retry can search for. A retry (attempt > 1: the connection dropped or timed out after the server may have
acted, or a worker died before recording the answer) first reads ``GET requests.json`` with
the delivery's service_code and a ``start_date`` LOOKBACK ago (plus api_key: some servers
show descriptions only to keyed clients; and jurisdiction_id), and takes a request whose
description starts with exactly that bracketed code as the earlier success: its
service_request_id is the receipt, as if the first POST had been answered. When that search
fails (no GET requests, 404, 5xx, not JSON, down) the retry POSTs anyway: a double is better
than none. A dead delivery an administrator sends again searches too (its earlier attempts
count as one). Limits: a first attempt older than LOOKBACK, a server that lists a request
accepted with a token only once it has created it, or one that rewrites descriptions, can
still get the request twice.

A 2xx whose body cannot be read (not JSON, no service_request_id or token) is searched for
at once the same way: found, it is delivered; not found (or no search), it stays a
permanent error — the server may have created the request, and an administrator checks
before retrying. It is not made transient: against a server that keeps answering unreadable
2xx and cannot be searched, each retry would create one more request.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .. import http
from ..base import DeliveryReceipt, RequestSummary
from ..errors import AdapterMisconfiguredError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "token:"
DESCRIPTION_MAX = 4000  # GeoReport v2's request.json schema: description maxLength
# How far back a retry searches for its earlier request: the outbox's retries of one delivery
# span about an hour with the default backoff and GATEWAY_MAX_ATTEMPTS; two days leave room for
# the clocks' difference and slower settings, and keep the answer to one service's recent requests.
LOOKBACK = timedelta(days=2)
# mySociety's update statuses, and GeoReport's own two, in the gateway's terms.
STATUS_MAP = {
    "open": None, "closed": "resolved", "fixed": "resolved", "in_progress": "in_progress",
    "investigating": "in_progress", "action_scheduled": "in_progress", "not_councils_responsibility": "rejected",
    "no_further_action": "rejected", "duplicate": "duplicate", "internal_referral": "in_progress",
}


@dataclass(frozen=True)
class RemoteStatus:
    """One status read back from the department's server."""

    service_request_id: str
    status: str | None  # a gateway status, or None when nothing changed for the citizen
    remote: str  # the server's own word
    note: str | None
    updated: str | None


class Open311Sink(http.HttpSink):
    type = "open311"

    def _endpoint(self, target: dict[str, Any]) -> str:
        endpoint = target.get("endpoint")
        if not endpoint:
            raise AdapterMisconfiguredError("open311 sink needs an 'endpoint'")
        return str(endpoint).rstrip("/")

    def _api_key(self, target: dict[str, Any]) -> str:
        return http.referenced_secret(self.settings, target, "api_key_env", "open311 api key")

    def check(self, target: dict[str, Any]) -> None:
        """Raises AdapterMisconfiguredError when this target cannot be delivered to."""
        self._endpoint(target)
        self._api_key(target)
        if not target.get("service_codes"):
            raise AdapterMisconfiguredError("open311 sink needs 'service_codes' (category: service_code)")

    def deliver(
        self, request: RequestSummary, target: dict[str, Any], idempotency_key: str
    ) -> DeliveryReceipt:
        """POSTs the request; on a retry, first looks for the one an earlier attempt created.

        Raises AdapterMisconfiguredError, TransientDeliveryError, PermanentDeliveryError."""
        if target.get("notice") or target.get("update_ts"):
            return DeliveryReceipt()  # GeoReport v2 has no way to post a notice: nothing to send
        code = (target.get("service_codes") or {}).get(request.category or "")
        if not code:
            raise AdapterMisconfiguredError(f"open311 sink has no service code for category {request.category!r}")
        form = self._form(request, target, str(code))
        earlier = self._earlier_request(target, str(code), request.code) if int(target.get("attempt") or 1) > 1 else None
        if earlier is not None:
            return DeliveryReceipt(external_id=earlier)
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            response = http.send(client, "POST", f"{self._endpoint(target)}/requests.json", "open311 POST requests",
                                 data=form, headers={"Idempotency-Key": idempotency_key})
        try:
            return DeliveryReceipt(external_id=_created_id(response))
        except PermanentDeliveryError as exc:  # a 2xx we cannot read: the request may well exist now
            earlier = self._earlier_request(target, str(code), request.code)
            if earlier is None:
                raise PermanentDeliveryError(f"{exc}; {request.code} not found by GET requests either: check the "
                                             "department's server before retrying") from exc
            return DeliveryReceipt(external_id=earlier)

    def _form(self, request: RequestSummary, target: dict[str, Any], service_code: str) -> dict[str, str]:
        form = {"api_key": self._api_key(target), "service_code": service_code, "description": tagged_description(request),
                "address_string": request.address or "", "attribute[gateway_code]": request.code}
        if request.lat is not None and request.lon is not None:
            form.update(lat=str(request.lat), long=str(request.lon))
        if request.attachments:
            form["media_url"] = request.attachments[0]
        if target.get("jurisdiction_id"):
            form["jurisdiction_id"] = str(target["jurisdiction_id"])
        return form

    def _earlier_request(self, target: dict[str, Any], service_code: str, tracking_code: str) -> str | None:
        """The service_request_id of a request this delivery already created (the server acted,
        the gateway never heard its answer), found by its tracking code among the service's
        requests since LOOKBACK; None when there is none, or when the server cannot be searched
        (the caller then POSTs: a double is better than none)."""
        params = {"api_key": self._api_key(target), "service_code": service_code,
                  "start_date": (datetime.now(UTC) - LOOKBACK).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if target.get("jurisdiction_id"):
            params["jurisdiction_id"] = str(target["jurisdiction_id"])
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = http.send(client, "GET", f"{self._endpoint(target)}/requests.json",
                                     "open311 GET requests (earlier POST)", params=params)
            rows = _json_list(response, "GET requests (earlier POST)")
        except (TransientDeliveryError, PermanentDeliveryError) as exc:
            log.warning("open311: cannot search for an earlier %s, posting it (%s)", tracking_code, exc)
            return None
        for row in rows:
            if isinstance(row, dict) and row.get("service_request_id") and _is_ours(row.get("description"), tracking_code):
                log.info("open311: %s was already created (%s), not posted again", tracking_code, row["service_request_id"])
                return str(row["service_request_id"])
        return None

    def resolve_token(self, target: dict[str, Any], token: str) -> str | None:
        """The service_request_id behind ``token``, or None while the server has none yet.

        Raises TransientDeliveryError, PermanentDeliveryError (malformed answer)."""
        with httpx.Client(timeout=self.timeout) as client:
            response = http.send(client, "GET", f"{self._endpoint(target)}/tokens/{token}.json", "open311 tokens")
        rows = _json_list(response, "tokens")
        found = rows[0].get("service_request_id") if rows and isinstance(rows[0], dict) else None
        return str(found) if found else None

    def statuses(self, target: dict[str, Any], ids: list[str]) -> list[RemoteStatus]:
        """Current status of each of ``ids`` (GET requests.json).

        Raises TransientDeliveryError, PermanentDeliveryError (malformed answer)."""
        params = {"service_request_id": ",".join(ids)}
        if target.get("jurisdiction_id"):
            params["jurisdiction_id"] = str(target["jurisdiction_id"])
        with httpx.Client(timeout=self.timeout) as client:
            response = http.send(client, "GET", f"{self._endpoint(target)}/requests.json",
                                 "open311 GET requests", params=params)
        out = []
        for row in _json_list(response, "requests"):
            if not isinstance(row, dict) or not row.get("service_request_id") or not isinstance(row.get("status"), str):
                raise PermanentDeliveryError("open311 GET requests: an item lacks service_request_id or status")
            out.append(_remote(str(row["service_request_id"]), row["status"], row.get("status_notes"),
                               row.get("updated_datetime")))
        return out

    def updates(self, target: dict[str, Any], since: datetime, until: datetime) -> list[RemoteStatus]:
        """mySociety's servicerequestupdates between two times, oldest first.

        Raises TransientDeliveryError, PermanentDeliveryError (malformed XML)."""
        params = {"api_key": self._api_key(target), "start_date": since.isoformat(), "end_date": until.isoformat()}
        with httpx.Client(timeout=self.timeout) as client:
            response = http.send(client, "GET", f"{self._endpoint(target)}/servicerequestupdates.xml",
                                 "open311 GET servicerequestupdates", params=params)
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError as exc:
            raise PermanentDeliveryError(f"open311 servicerequestupdates: not XML ({exc})") from exc
        out = []
        for item in root.iter("request_update"):
            rid, status = item.findtext("service_request_id"), item.findtext("status")
            if not rid or not status:
                raise PermanentDeliveryError("open311 servicerequestupdates: an update lacks service_request_id or status")
            out.append(_remote(rid.strip(), status.strip(), item.findtext("description"), item.findtext("updated_datetime")))
        return sorted(out, key=lambda r: r.updated or "")


def tagged_description(request: RequestSummary) -> str:
    """What the department reads: the tracking code in brackets, then the citizen's words."""
    tag = f"[{request.code}]"
    return (f"{tag} {request.description}" if request.description else tag)[:DESCRIPTION_MAX]


def _is_ours(description: object, tracking_code: str) -> bool:
    """Exact: "[R-2026-12]" is not "[R-2026-123] …", nor a description that merely quotes the code."""
    return isinstance(description, str) and description.lstrip().startswith(f"[{tracking_code}]")


def _remote(rid: str, remote: str, note, updated) -> RemoteStatus:
    status = STATUS_MAP.get(remote.strip().lower().replace(" ", "_"))
    return RemoteStatus(rid, status, remote, (note or "").strip() or None, updated)


def _json_list(response: httpx.Response, what: str) -> list:
    try:
        document = response.json()
    except ValueError as exc:
        raise PermanentDeliveryError(f"open311 {what}: the answer is not JSON") from exc
    if not isinstance(document, list):
        raise PermanentDeliveryError(f"open311 {what}: expected a JSON array")
    return document


def _created_id(response: httpx.Response) -> str:
    rows = _json_list(response, "POST requests")
    first = rows[0] if rows and isinstance(rows[0], dict) else {}
    if first.get("service_request_id"):
        return str(first["service_request_id"])
    if first.get("token"):
        return TOKEN_PREFIX + str(first["token"])
    raise PermanentDeliveryError("open311 POST requests: neither service_request_id nor token in the answer")



