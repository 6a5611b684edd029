"""Open311 answers in the two formats the spec requires: XML (mandatory) and JSON.

The views build plain lists of dicts; this module turns them into bytes. The spec's quirks:
- exact content types ``text/xml`` and ``application/json`` (the published validators compare
  the header literally), UTF-8 declared in the XML prolog;
- datetimes in UTC with a ``Z`` and no fractions;
- errors are ``<errors><error><code/><description/></error></errors>`` (JSON: a list of
  ``{"code", "description"}``) with the same code as the HTTP status;
- a field with no value is left out of the XML, and is ``null`` in JSON only where the
  schema allows it (``zipcode`` is never sent: the gateway has none).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree

from flask import Response

PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'
FORMATS = {"xml": "text/xml", "json": "application/json"}
# The tag of one item of a list, by the list's tag.
ITEM_TAGS = {
    "services": "service", "service_requests": "request", "attributes": "attribute",
    "values": "value", "endpoints": "endpoint", "formats": "format", "errors": "error",
    "service_request_updates": "request_update",
}


def utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def respond(fmt: str, root: str, document, status: int = 200) -> Response:
    """``document``: a list (JSON array; XML <root> with one item per element) or a dict."""
    if fmt == "json":
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        element = ElementTree.Element(root)
        _fill(element, root, document)
        body = PROLOG + ElementTree.tostring(element, encoding="unicode").encode()
    response = Response(body, status=status)
    response.headers["Content-Type"] = FORMATS[fmt]  # literally, without "; charset="
    return response


def error(fmt: str, status: int, description: str) -> Response:
    return respond(fmt if fmt in FORMATS else "xml", "errors",
                   [{"code": status, "description": description}], status)


def _fill(element, tag: str, value) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if item is not None:
                _fill(ElementTree.SubElement(element, key), key, item)
    elif isinstance(value, list):
        for item in value:
            _fill(ElementTree.SubElement(element, ITEM_TAGS.get(tag, "item")), "", item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
