"""Every integration with the outside world: channels (citizens) and sinks (departments)."""

from .base import (
    Attachment,
    CitizenMessage,
    Contact,
    DeliveryReceipt,
    Location,
    OutboundMessage,
    RequestSummary,
)
from .errors import (
    AdapterError,
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    SignatureError,
    TransientDeliveryError,
    UnsupportedEventError,
)

__all__ = [
    "AdapterError",
    "AdapterMisconfiguredError",
    "Attachment",
    "CitizenMessage",
    "Contact",
    "DeliveryReceipt",
    "Location",
    "MalformedPayloadError",
    "OutboundMessage",
    "PermanentDeliveryError",
    "RequestSummary",
    "SignatureError",
    "TransientDeliveryError",
    "UnsupportedEventError",
]
