"""Ids that come from outside (a URL, a form field, a query string) on their way to the database.

Both databases store ids as 64-bit integers, while Python's int has no bound: a larger number
handed to SQLite raises OverflowError where the caller expects "not found" (PostgreSQL
compares it as a numeric and finds nothing). Beyond that range a number is therefore no id,
on either database: a URL holding one matches no route (404), a field holding one is empty.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

LARGEST = 2**63 - 1


class DatabaseIdConverter(IntegerConverter):
    """Every ``<int:…>`` of the gateway's routes: 0 to LARGEST, else the URL does not match."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = 0, max: int | None = LARGEST,  # noqa: A002
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def database_id(value: str) -> int:
    """``request.form.get(name, type=database_id)``: the number, or (ValueError, which
    werkzeug turns into the default) none beyond the databases' 64-bit integers."""
    number = int(value)
    if not -LARGEST - 1 <= number <= LARGEST:
        raise ValueError(f"{value[:30]} is beyond a 64-bit integer")
    return number
