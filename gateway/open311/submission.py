"""POST requests: the spec's form fields → the gateway's own intake document (web_form).

Everything is checked here before anything is stored: the service, the location, the
attributes against the catalogue's service definition. Then the document goes through
``intake.submit`` like every other channel's.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
TEXT_MAX = 1000


class Open311Error(Exception):
    """A request the spec answers with an error document: ``status`` is 400, 403 or 404."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def document_from_form(form, book, language: str) -> dict:
    """The web_form document for this POST. Raises Open311Error naming the bad field."""
    code = (form.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code is required")
    category = book.categories.get(code)
    if category is None:
        raise Open311Error(404, f"service_code '{code}' was not found")
    location = _location(form)
    attributes = _attributes(form, category)
    name = " ".join(filter(None, [(form.get("first_name") or "").strip(), (form.get("last_name") or "").strip()]))
    description = (form.get("description") or "").strip()
    document = {
        "channel": "open311",
        "category": code,
        # A report made only of a service and a point still needs words for the agents.
        "description": description or category.name.get(language),
        "citizen": {"name": name or None, "email": _blank(form.get("email")), "phone": _blank(form.get("phone"))},
        "location": location,
    }
    if not description:
        document["language"] = language
    if attributes:
        document["attributes"] = attributes
    return document


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _location(form) -> dict:
    lat, lon = _blank(form.get("lat")), _blank(form.get("long"))
    address = _blank(form.get("address_string"))
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long go together: give both or neither")
    location: dict = {}
    if lat is not None:
        location["lat"] = _coordinate("lat", lat, 90)
        location["lon"] = _coordinate("long", lon, 180)
    if address:
        location["address"] = address
    if not location:
        if _blank(form.get("address_id")):
            raise Open311Error(400, "address_id is not known to this server: give lat/long or address_string")
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    return location


def _coordinate(name: str, raw: str, limit: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise Open311Error(400, f"{name} must be between -{limit:g} and {limit:g}")
    return value


def _attributes(form, category) -> dict:
    given: dict[str, list[str]] = {}
    for key in form.keys():
        if not key.startswith("attribute"):
            continue
        match = ATTRIBUTE_KEY.match(key)
        if match is None:
            raise Open311Error(400, f"malformed attribute field '{key[:80]}': use attribute[code]=value")
        values = [v.strip() for v in form.getlist(key) if v.strip()]
        given.setdefault(match.group(1), []).extend(values)
    declared = {a.code: a for a in category.attributes if a.variable}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise Open311Error(400, f"attribute[{unknown[0][:64]}]: service '{category.code}' has no such attribute")
    answers: dict = {}
    for code, attribute in declared.items():
        values = given.get(code, [])
        if not values:
            if attribute.required:
                raise Open311Error(400, f"attribute[{code}] is required for service '{category.code}'")
            continue
        answers[code] = _checked(attribute, values)
    return answers


def _checked(attribute, values: list[str]):
    code, kind = attribute.code, attribute.datatype
    if kind == "multivaluelist":
        keys = {v.key for v in attribute.values}
        wrong = [v for v in values if v not in keys]
        if wrong:
            raise Open311Error(400, f"attribute[{code}]: '{wrong[0][:64]}' is not one of {sorted(keys)}")
        return list(dict.fromkeys(values))
    if len(values) > 1:
        raise Open311Error(400, f"attribute[{code}] takes one value")
    value = values[0]
    if kind == "singlevaluelist" and value not in {v.key for v in attribute.values}:
        raise Open311Error(400, f"attribute[{code}]: '{value[:64]}' is not one of {sorted(v.key for v in attribute.values)}")
    if kind == "number":
        try:
            float(value)
        except ValueError:
            raise Open311Error(400, f"attribute[{code}] must be a number") from None
    if kind == "datetime":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise Open311Error(400, f"attribute[{code}] must be an ISO 8601 date and time") from None
    if len(value) > TEXT_MAX:
        raise Open311Error(400, f"attribute[{code}] is longer than {TEXT_MAX} characters")
    return value
