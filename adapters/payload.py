"""Reading a provider's JSON body: one place for the two ways it can be unreadable."""

from __future__ import annotations

import json

from .errors import MalformedPayloadError


def json_object(body: bytes) -> dict:
    """The JSON object in ``body``. Raises MalformedPayloadError (field "body") otherwise."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayloadError("the body is not valid JSON", field="body") from exc
    if not isinstance(document, dict):
        raise MalformedPayloadError("the body must be a JSON object", field="body")
    return document
