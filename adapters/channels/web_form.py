"""The gateway's own intake format: the JSON API, the public /report page and the counter.

All three submit the same document (the forms build it from their fields), so one parser
validates them all. Validation is strict: a wrong type is an error naming its field, not a
silent conversion. Schema (``POST /api/v1/requests``)::

    {"channel": "walk_in|web|api|phone", "description": "...", "language": "fr|en",
     "subject": "...", "category": "pothole",
     "citizen": {"name", "email", "phone", "preferred_channel", "consent"},
     "location": {"lat", "lon", "address"}, "attributes": {"code": "value" | ["values"]}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..base import CitizenMessage, Contact, Location, RawInbound
from ..errors import MalformedPayloadError
from ..payload import json_object

MAX_DESCRIPTION = 10_000
CHANNELS = ("walk_in", "web", "api", "phone", "open311")
CONTACT_CHANNELS = ("email", "sms", "phone", "messenger", "telegram", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class CitizenIn(_Strict):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, max_length=40, pattern=r"^[0-9+().\s-]{7,40}$")
    preferred_channel: Literal[CONTACT_CHANNELS] | None = None  # type: ignore[valid-type]
    consent: bool = True

    @field_validator("name", "email", "phone", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value


class LocationIn(_Strict):
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    address: str | None = Field(None, max_length=300)


class Submission(_Strict):
    channel: Literal[CHANNELS] = "api"  # type: ignore[valid-type]
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION)
    subject: str | None = Field(None, max_length=300)
    language: Literal["fr", "en"] | None = None
    category: str | None = Field(None, max_length=64)
    citizen: CitizenIn = Field(default_factory=CitizenIn)
    location: LocationIn = Field(default_factory=LocationIn)
    attributes: dict[str, str | list[str]] | None = None  # checked against the catalogue by the caller


class WebFormChannel:
    """Parses the gateway's own submission document (API, /report, counter)."""

    name = "web_form"

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError naming the field at fault."""
        submission = validate(raw.body)
        citizen, where = submission.citizen, submission.location
        return CitizenMessage(
            channel=submission.channel,
            text=submission.description,
            subject=submission.subject,
            language=submission.language,
            category=submission.category,
            contact=Contact(
                name=citizen.name,
                email=citizen.email,
                phone=citizen.phone,
                preferred_channel=citizen.preferred_channel,
                consent=citizen.consent,
            ),
            location=Location(lat=where.lat, lon=where.lon, address=where.address),
            attributes=submission.attributes,
        )


def validate(body: bytes) -> Submission:
    """The submission in ``body``, or MalformedPayloadError naming the first bad field."""
    document = json_object(body)
    try:
        return Submission.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise MalformedPayloadError(f"{field}: {first['msg']}", field=field) from exc
