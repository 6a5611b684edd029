"""HTTP outcomes, classified once for every HTTP sink (webhook, Open311).

Transient (retry with backoff): timeouts, refused or dropped connections, 408, 425, 429
(honouring Retry-After) and 5xx. Permanent (dead letter): every other 4xx, and redirects
(a department's URL that moved is a configuration matter, not something to follow blindly).
"""

from __future__ import annotations

import httpx

from .errors import AdapterMisconfiguredError, PermanentDeliveryError, TransientDeliveryError

TRANSIENT_STATUSES = {408, 425, 429}
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class HttpSink:
    """What the HTTP sinks share: the settings (to read referenced secrets) and a timeout."""

    def __init__(self, settings, timeout: httpx.Timeout = DEFAULT_TIMEOUT):
        self.settings = settings
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings):
        return cls(settings, timeout_from(settings))


def timeout_from(settings) -> httpx.Timeout:
    """GATEWAY_HTTP_TIMEOUT_SECONDS (default 10): a department server that hangs is a transient error."""
    seconds = float(settings.get("GATEWAY_HTTP_TIMEOUT_SECONDS") or 10)
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


def send(client: httpx.Client, method: str, url: str, what: str, **kwargs) -> httpx.Response:
    """One HTTP call; returns a 2xx response or raises a delivery error naming ``what``."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"{what}: unreachable ({type(exc).__name__})") from exc
    check(response, what)
    return response


def check(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in TRANSIENT_STATUSES or status >= 500:
        raise TransientDeliveryError(f"{what}: HTTP {status}", retry_after=retry_after(response))
    raise PermanentDeliveryError(f"{what}: HTTP {status} {response.text[:200]!r}")


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for APIs and ignored)."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def referenced_secret(settings, target: dict, field: str, what: str) -> str:
    """The secret held in the environment variable that ``target[field]`` names.

    Raises AdapterMisconfiguredError naming the field or the variable that is missing."""
    name = target.get(field)
    if not name:
        raise AdapterMisconfiguredError(f"{what} needs '{field}' (the variable holding its secret)")
    value = settings.get(name)
    if not value:
        raise AdapterMisconfiguredError(f"{what} variable {name} is not set")
    return str(value)
