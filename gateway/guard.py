"""Input that no database can hold, refused at the door: the NUL character (U+0000).

PostgreSQL's text columns cannot contain it: a NUL that reaches a query, even a look-up
(a tracking code in a URL, an e-mail at sign-in, an Idempotency-Key), fails in the driver
with a 500, and one stored in a message for later fails the pipeline at every retry. No
citizen, agent or client writes one on purpose, so a request carrying one in its path,
query string, headers, form fields or JSON strings is answered 400 before any view runs.
Provider webhooks keep their bodies: they are stored as the provider sent them (bytes), and
the text taken from them is cleaned of control characters by the normalizer.
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import BadRequest

WHY = "a NUL character (U+0000) is not allowed in a request"


class NulCharacter(BadRequest):
    description = WHY


def refuse_nul() -> None:
    """Called first for every request (gateway/app.py ``_checks``)."""
    if "\x00" in request.path or b"%00" in request.query_string or b"\x00" in request.query_string:
        raise NulCharacter()
    if any("\x00" in value for key, value in request.environ.items()  # the headers, without their dict's cost
           if key.startswith(("HTTP_", "CONTENT_")) and isinstance(value, str)):
        raise NulCharacter()
    if request.path.startswith("/webhooks/"):
        return  # signed provider bodies: stored as bytes, their text cleaned later
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if any("\x00" in key or "\x00" in value for key, value in request.form.items(multi=True)):
            raise NulCharacter()
    elif request.is_json and _holds_nul(request.get_json(silent=True)):
        raise NulCharacter()


def _holds_nul(document) -> bool:
    if isinstance(document, str):
        return "\x00" in document
    if isinstance(document, dict):
        return any(_holds_nul(key) or _holds_nul(value) for key, value in document.items())
    if isinstance(document, list):
        return any(_holds_nul(item) for item in document)
    return False
