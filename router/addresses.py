"""The city's address register (config/addresses.csv): the place an address names.

One row per civic address, as a city's register lists them: ``number,street,lat,lon``
("145,rue Wellington,45.4401,-75.7281"). An address typed on a form or given to an agent is
read as a house number and a street key (normalizer/address.py), so "145 Wellington",
"145, rue Wellington Nord" and "145 Wellington Street" find the same row; so does a sentence
that names it ("devant le 145 rue Wellington, les autos…"). A street key two
streets of the register share ("rue King" and "avenue King") with that number is left
unmatched rather than guessed. The file is optional: without it, addresses stay as typed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from normalizer.address import numbers_in_text, parse_address, street_words

from .yamlfile import ConfigError, Problem

COLUMNS = ("number", "street", "lat", "lon")


@dataclass(frozen=True)
class Place:
    address: str  # as the register writes it: "145, rue Wellington"
    lat: float
    lon: float


class AddressRegister:
    def __init__(self, places: dict[tuple[int, str], Place | None]):
        self._places = places  # None: two streets of the register share the key

    def __len__(self) -> int:
        return len(self._places)

    def find(self, address: str | None) -> Place | None:
        parsed = parse_address(address)
        if parsed is None or parsed[0] is None:  # a street alone is not a place
            return None
        return self._places.get(parsed)

    def find_in_text(self, text: str | None) -> Place | None:
        """The first place of the register that ``text`` names as a house number followed by
        a street ("Il y a un trou devant le 145 rue Wellington Nord, …"). Only an exact
        (number, street) pair of the register counts: "3 nids-de-poule sur la rue King" or
        "depuis 2 semaines" name no place."""
        for number, rest in numbers_in_text(text):
            name = street_words(rest)
            for size in range(len(name), 0, -1):  # "wellington nord" → "wellington"
                place = self._places.get((number, " ".join(name[:size])))
                if place is not None:
                    return place
        return None

    @classmethod
    def load(cls, path: Path) -> AddressRegister:
        """Raises ConfigError naming the file, line and column of every bad row."""
        if not path.exists():
            return cls({})
        problems: list[Problem] = []
        places: dict[tuple[int, str], Place | None] = {}
        try:
            with path.open(encoding="utf-8", newline="") as rows:
                reader = csv.DictReader(rows)
                if tuple(reader.fieldnames or ()) != COLUMNS:
                    raise ConfigError([Problem(str(path), 1, "", f"the columns must be {','.join(COLUMNS)}")])
                for row in reader:
                    place = _place(path, reader.line_num, row, problems)
                    if place is not None:
                        key = parse_address(place.address)
                        places[key] = None if key in places and places[key] != place else place
        except UnicodeDecodeError as exc:
            raise ConfigError([Problem(str(path), None, "", f"not UTF-8 text: {exc}")]) from exc
        if problems:
            raise ConfigError(problems[:20])
        return cls(places)


def _place(path: Path, line: int, row: dict, problems: list[Problem]) -> Place | None:
    try:
        number = int(row["number"])
        if not 0 < number < 1_000_000:
            raise ValueError("out of range")
    except (TypeError, ValueError):
        problems.append(Problem(str(path), line, "number", f"not a house number: {row.get('number')!r}"))
        return None
    street = (row.get("street") or "").strip()
    if parse_address(f"{number} {street}") is None:
        problems.append(Problem(str(path), line, "street", f"no street name: {street!r}"))
        return None
    try:
        lat, lon = float(row["lat"]), float(row["lon"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError("out of range")
    except (TypeError, ValueError):
        problems.append(Problem(str(path), line, "lat", f"not a latitude and longitude: {row.get('lat')!r}, "
                                                        f"{row.get('lon')!r}"))
        return None
    return Place(f"{number}, {street}", lat, lon)
