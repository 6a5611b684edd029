"""The days the city is closed all day, whatever its business hours: the statutory holidays
of its country and province (``business_hours.holidays: CA-QC``, from the ``holidays``
library: Fête nationale, Action de grâce, Vendredi saint…, moving ones included) and its own
closing days (``business_hours.closed``: "12-26" every year, "2026-12-24" once). A request
received on one of them is after hours: rules on ``after_hours`` (the on-call crew) apply.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays


class ClosedDays:
    def __init__(self, statutory: str | None = None, closed: list[str] | tuple = ()):
        self.statutory = statutory  # "CA-QC": country, and province or state
        self.every_year = {day for day in closed if len(day) == 5}  # "12-26"
        self.once = {day for day in closed if len(day) == 10}  # "2026-12-24"

    def closed_on(self, day: date) -> str | None:
        """Why the city is closed on ``day`` (the holiday's name, in French), or None."""
        iso = day.isoformat()
        if iso in self.once or iso[5:] in self.every_year:
            return "fermeture de la ville"
        if self.statutory:
            return _statutory(self.statutory, day.year).get(day)
        return None


@lru_cache(maxsize=64)
def _statutory(spec: str, year: int) -> dict[date, str]:
    """The holidays of ``spec`` ("CA-QC") in ``year``, worked out once per year."""
    country, _, subdivision = spec.partition("-")
    return dict(holidays.country_holidays(country, subdiv=subdivision or None, years=year, language="fr"))


def problem_with(spec: str | None, closed: list[str]) -> list[tuple[tuple, str]]:
    """(where in business_hours, what is wrong) for an unknown country or province, or a day
    that does not exist ("02-30")."""
    found = []
    if spec:
        try:
            _statutory(spec, 2000)
        except NotImplementedError:
            found.append((("holidays",), f"no holidays known for '{spec}' (a country code, and its province or "
                                         f"state: CA-QC, CA-ON, US-NY)"))
    for i, day in enumerate(closed):
        try:
            date.fromisoformat(day if len(day) == 10 else f"2000-{day}")  # 2000: a leap year, "02-29" exists
        except ValueError:
            found.append((("closed", i), f"not a day: '{day}' (MM-DD every year, or YYYY-MM-DD)"))
    return found
