"""One error taxonomy for every adapter; each error has exactly one outcome.

=============================  ==============================================================
error                          outcome
=============================  ==============================================================
SignatureError                 403, logged without the body, nothing stored
MalformedPayloadError          400 with the field at fault, nothing stored
UnsupportedEventError          200, ignored and counted (a provider event we do not act on)
AdapterMisconfiguredError      that adapter is disabled and shown in health; the process runs on
TransientDeliveryError         the delivery is retried with backoff
PermanentDeliveryError         the delivery goes to the dead letters now
=============================  ==============================================================
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base of every error an adapter raises."""


class SignatureError(AdapterError):
    """The provider's signature is missing or wrong."""


class MalformedPayloadError(AdapterError):
    """The payload cannot be read; ``field`` names the part at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class UnsupportedEventError(AdapterError):
    """A well-formed provider event that the gateway does not act on.

    ``bounce`` carries what a delivery failure notice says about mail we sent, so the
    gateway can stop writing to an address that does not exist.
    """

    def __init__(self, message: str, bounce=None):
        super().__init__(message)
        self.bounce = bounce


class AdapterMisconfiguredError(AdapterError):
    """A required setting is missing or invalid; the adapter cannot run."""


class DeliveryError(AdapterError):
    """Base of the two delivery outcomes."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later (timeouts, refused connections, 429, 5xx, SMTP 4xx).

    ``retry_after`` is the provider's own hint in seconds, when it gave one.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (4xx, unknown recipient, rejected content)."""
