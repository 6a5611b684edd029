"""The GeoReport v2 resources as plain dicts: services, service definitions, requests, updates."""

from __future__ import annotations

from ..models import Request
from .formats import utc

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CLOSED = {"resolved", "closed", "duplicate", "rejected"}
# mySociety's servicerequestupdates extension has a richer status list than open/closed.
UPDATE_STATUS = {
    "new": "open", "acknowledged": "open", "routed": "open", "in_progress": "in_progress",
    "needs_info": "investigating", "resolved": "fixed", "closed": "closed", "duplicate": "duplicate",
    "rejected": "no_further_action",
}
DESCRIPTION_MAX = 4000  # request.json: description maxLength


def service(book, category, language: str) -> dict:
    department = book.departments.get(category.department)
    return {
        "service_code": category.code,
        "service_name": category.name.get(language),
        "description": category.name.get(language),
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": ", ".join(getattr(category.keywords, language)[:12]) or None,
        "group": department.name.get(language) if department else None,
    }


def definition(category, language: str) -> dict:
    attributes = []
    for number, attribute in enumerate(category.attributes, 1):
        row = {
            "variable": attribute.variable,
            "code": attribute.code,
            "datatype": attribute.datatype,
            "required": attribute.required,
            "datatype_description": None,
            "order": attribute.order if attribute.order is not None else number,
            "description": attribute.description.get(language),
        }
        if attribute.values:
            row["values"] = [{"key": v.key, "name": v.name.get(language)} for v in attribute.values]
        attributes.append(row)
    return {"service_code": category.code, "attributes": attributes}


def request_record(book, request: Request, language: str, notes: str | None, with_description: bool) -> dict:
    """One request as GeoReport v2 shows it. The citizen's words only for keyed clients: they
    may hold names or phone numbers, and GET requests is open to anyone."""
    department = book.departments.get(request.department or "")
    description = request.description[:DESCRIPTION_MAX] if with_description else None
    return {
        "service_request_id": request.code,
        "status": "closed" if request.status in CLOSED else "open",
        "status_notes": notes,
        "service_name": book.category_name(request.category, language),
        "service_code": request.category or "triage",
        "description": description,
        "agency_responsible": department.name.get(language) if department else None,
        "service_notice": None,
        "requested_datetime": utc(request.created_at),
        "updated_datetime": utc(request.updated_at),
        "expected_datetime": utc(request.sla_due_at),
        "address": request.address,
        "lat": request.lat,
        "long": request.lon,
    }


def update_record(event, code: str) -> dict:
    data = event.data or {}
    return {
        "update_id": str(event.id),
        "service_request_id": code,
        "status": UPDATE_STATUS.get(data.get("to", ""), "open"),
        "updated_datetime": utc(event.at),
        "description": data.get("note") or "",
        "media_url": None,
        "external_status_code": data.get("external_status_code"),
    }


def discovery(base_url: str, changeset: str, contact: str) -> dict:
    return {
        "changeset": changeset,
        "contact": contact,
        "key_service": "API keys are issued by the city's 311 office.",
        "endpoints": [{
            "specification": SPEC_URL,
            "url": base_url,
            "changeset": changeset,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    }
