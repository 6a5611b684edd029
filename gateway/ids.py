"""Ids that come from outside (a URL, a form field, a query string) on their way to the database.

The id columns are INTEGER: 64 bits on SQLite, 32 on PostgreSQL, while Python's int has no
bound. A larger number handed to the database fails where the caller expects "not found"
(SQLite: OverflowError past 64 bits; PostgreSQL: "integer out of range" past 32, the ORM
casting its parameter to INTEGER). Beyond 2³¹−1 a number is therefore no id, on either
database: a URL holding one matches no route (404), a field holding one is empty.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

LARGEST = 2**31 - 1  # PostgreSQL's INTEGER, the narrower of the two


class DatabaseIdConverter(IntegerConverter):
    """Every ``<int:…>`` of the gateway's routes: 0 to LARGEST, else the URL does not match."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = 0, max: int | None = LARGEST,  # noqa: A002
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def database_id(value: str) -> int:
    """``request.form.get(name, type=database_id)``: the number, or (ValueError, which
    werkzeug turns into the default) none beyond LARGEST."""
    number = int(value)
    if not -LARGEST - 1 <= number <= LARGEST:
        raise ValueError(f"{value[:30]} is beyond the id columns' INTEGER")
    return number
