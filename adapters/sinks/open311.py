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
error. No signature scheme (the api_key authenticates us); no idempotency key either, so a
2xx whose body cannot be read is a permanent error (the server may have created the request:
resending blindly could double it — an administrator checks, then retries).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from .. import http
from ..base import DeliveryReceipt, RequestSummary
from ..errors import AdapterMisconfiguredError, PermanentDeliveryError

TOKEN_PREFIX = "token:"
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
        """Raises AdapterMisconfiguredError, TransientDeliveryError, PermanentDeliveryError."""
        if target.get("notice") or target.get("update_ts"):
            return DeliveryReceipt()  # GeoReport v2 has no way to post a notice: nothing to send
        code = (target.get("service_codes") or {}).get(request.category or "")
        if not code:
            raise AdapterMisconfiguredError(f"open311 sink has no service code for category {request.category!r}")
        form = {"api_key": self._api_key(target), "service_code": str(code),
                "description": (request.description or "")[:4000],
                "address_string": request.address or "", "attribute[gateway_code]": request.code}
        if request.lat is not None and request.lon is not None:
            form.update(lat=str(request.lat), long=str(request.lon))
        if request.attachments:
            form["media_url"] = request.attachments[0]
        if target.get("jurisdiction_id"):
            form["jurisdiction_id"] = str(target["jurisdiction_id"])
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            response = http.send(client, "POST", f"{self._endpoint(target)}/requests.json",
                                 "open311 POST requests", data=form)
        return DeliveryReceipt(external_id=_created_id(response))

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



