"""What the Twilio SMS and voice adapters share: the account, signatures, the REST client, media.

Docs: https://www.twilio.com/docs/usage/security#validating-requests (signature),
https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides (retries),
https://www.twilio.com/docs/messaging/api/media-resource (media, HTTP basic auth).

Signature: ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, full URL + every POST field
name and value, sorted by name)), checked with the library's RequestValidator against the
PUBLIC URL Twilio called (GATEWAY_PUBLIC_URL + path + query), so it holds behind a proxy and a
signature replayed on another URL fails. Quirks: Twilio signs with or without the default
port (the validator tries both); repeated keys are all signed; a Messaging Service signs with
the same account token.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

from ...download import read_limited
from ...errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    SignatureError,
    TransientDeliveryError,
)

TWILIO_API = "https://api.twilio.com"
MEDIA_HOSTS = ("api.twilio.com",)  # credentials are only ever sent to Twilio (or the stand-in)
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class TwilioAccount:
    account_sid: str
    auth_token: str
    from_number: str | None
    messaging_service_sid: str | None
    api_base: str
    public_url: str

    @classmethod
    def from_settings(cls, settings) -> TwilioAccount:
        """Raises AdapterMisconfiguredError when the SID, token or sender is missing."""
        sid, token = settings.get("TWILIO_ACCOUNT_SID"), settings.get("TWILIO_AUTH_TOKEN")
        sender, service = settings.get("TWILIO_FROM_NUMBER"), settings.get("TWILIO_MESSAGING_SERVICE_SID")
        if not sid or not token:
            raise AdapterMisconfiguredError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set")
        if not sender and not service:
            raise AdapterMisconfiguredError("TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID) must be set")
        return cls(str(sid), str(token), sender, service,
                   str(settings.get("TWILIO_API_BASE") or TWILIO_API).rstrip("/"),
                   str(settings.get("GATEWAY_PUBLIC_URL") or "").rstrip("/"))

    def __repr__(self) -> str:  # never the token
        return f"<TwilioAccount {self.account_sid[:6]}…>"

    def rest_client(self):
        from twilio.rest import Client

        return Client(self.account_sid, self.auth_token, http_client=BaseUrlHttpClient(self.api_base))

    def media_url(self, url: str) -> str:
        """``url`` rewritten to the configured API base; PermanentDeliveryError if not Twilio's."""
        parts = urlsplit(url)
        base = urlsplit(self.api_base)
        if parts.hostname == base.hostname and parts.port == base.port:
            return url
        if parts.scheme != "https" or parts.hostname not in MEDIA_HOSTS:
            raise PermanentDeliveryError("media URL is not on Twilio's API host; not fetched")
        return self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """Download one media file or recording: (content, content type).

        Raises PermanentDeliveryError (too large, 4xx, not Twilio's host) or
        TransientDeliveryError (network, 429, 5xx)."""
        target = self.media_url(url)
        try:
            # httpx drops the Authorization header when a redirect leaves the host (Twilio's CDN).
            with httpx.stream("GET", target, auth=(self.account_sid, self.auth_token),
                              follow_redirects=True, timeout=30) as response:
                _raise_for_status(response.status_code, response.headers.get("Retry-After"))
                return read_limited(response, max_bytes)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"media fetch failed: {type(exc).__name__}") from exc


def _raise_for_status(status: int, retry_after: str | None) -> None:
    if status == 429 or status >= 500:
        raise TransientDeliveryError(f"HTTP {status}", _seconds(retry_after))
    if status >= 400:
        raise PermanentDeliveryError(f"HTTP {status}")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class BaseUrlHttpClient(TwilioHttpClient):
    """The library's own HTTP client with scheme and host rewritten to TWILIO_API_BASE.

    Twilio's edge/region settings can only name Twilio hosts; this is the public
    ``http_client`` hook that lets tests point the real client at a local stand-in."""

    def __init__(self, base: str, timeout: float = 15.0):
        super().__init__(timeout=timeout)
        self.base = urlsplit(base)
        # The library logs request bodies (phone numbers, texts) at INFO: keep them out.
        self.logger.setLevel(logging.WARNING)

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self.base.scheme, self.base.netloc):
            url = parts._replace(scheme=self.base.scheme, netloc=self.base.netloc).geturl()
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


def verify_signature(auth_token: str, url: str, params: dict[str, list[str]], signature: str | None) -> None:
    """Raises SignatureError unless ``signature`` signs ``url`` + ``params`` with the token."""
    if not signature:
        raise SignatureError("missing X-Twilio-Signature")
    validator, fields = RequestValidator(auth_token), _MultiDict(params)
    # Twilio signs the URL it called: checked first (one HMAC); the validator then also tries
    # the URL with and without its default port (two more), as Twilio's back ends differ.
    if not (hmac.compare_digest(validator.compute_signature(url, fields).encode(), signature.encode())
            or validator.validate(url, fields, signature)):
        raise SignatureError("X-Twilio-Signature does not match")


class _MultiDict(dict):
    """The validator signs every value of a repeated key (its Flask MultiDict path)."""

    def getall(self, key):
        return self[key]


def form_fields(body: bytes, content_type: str) -> dict[str, list[str]]:
    """The form fields of a Twilio webhook body (every value of each key).

    Raises MalformedPayloadError for another content type or an undecodable body."""
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        raise MalformedPayloadError("Twilio webhooks are form-encoded", field="content_type")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayloadError("the body is not a readable form", field="body") from exc


def first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def required(fields: dict[str, list[str]], name: str) -> str:
    value = first(fields, name)
    if value is None or not value.strip():
        raise MalformedPayloadError(f"{name} is missing", field=name)
    return value.strip()
