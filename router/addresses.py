"""The city's address register (config/addresses.csv): the place an address names.

One row per civic address, as a city's register lists them: ``number,street,lat,lon``
("145,rue Wellington,45.4401,-75.7281"). An address typed on a form or given to an agent is
read as a house number and a street key (normalizer/address.py), so "145 Wellington",
"145, rue Wellington Nord" and "145 Wellington Street" find the same row; so does a sentence
that names it ("devant le 145 rue Wellington, les autos…"). A street key two
streets of the register share ("rue King" and "avenue King") with that number is left
unmatched rather than guessed. The file is optional: without it, addresses stay as typed.

Where two streets meet is a place too ("au coin de Wellington et King", "Wellington & King"
in an address field): the register's addresses of the two streets show where, when they come
within CORNER_M of each other at an angle (parallel streets a block apart do not meet). The
corner is written "rue King / rue Wellington" (in alphabetical order, whichever was named
first), at the middle of the two nearest addresses.

A named place of config/places.yaml (router/places.py: "parc Central", "l'hôtel de ville")
is looked for last: a house number or a corner is more precise than a park.
"""

from __future__ import annotations

import csv
import math
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

from normalizer.address import corners_in_text, numbers_in_text, parse_address, street_words
from normalizer.text import fold

from .geometry import NEAR_M, Grid, Point, flat, meeting
from .places import Landmarks
from .yamlfile import ConfigError, Problem

COLUMNS = ("number", "street", "lat", "lon")


@dataclass(frozen=True)
class Place:
    address: str  # as the register writes it: "145, rue Wellington"
    lat: float
    lon: float


class Street:
    """One street of the register and its addresses, in arrays sorted by house number (a
    city's half-million addresses would take ten times the memory as objects)."""

    __slots__ = ("name", "key", "numbers", "lats", "lons")

    def __init__(self, name: str, key: str):
        self.name, self.key = name, key  # "rue Saint-Jean", "jean"
        self.numbers, self.lats, self.lons = array("l"), array("d"), array("d")

    def add(self, number: int, lat: float, lon: float) -> None:
        self.numbers.append(number)
        self.lats.append(lat)
        self.lons.append(lon)

    def sort(self) -> None:
        order = sorted(range(len(self.numbers)), key=self.numbers.__getitem__)
        self.numbers = array("l", (self.numbers[i] for i in order))
        self.lats, self.lons = array("d", (self.lats[i] for i in order)), array("d", (self.lons[i] for i in order))

    def at(self, number: int) -> Point | None:
        """Where ``number`` is; None if the street has no such number, or two rows give it
        two places."""
        i = bisect_left(self.numbers, number)
        if i == len(self.numbers) or self.numbers[i] != number:
            return None
        found = {(self.lats[j], self.lons[j]) for j in range(i, bisect_left(self.numbers, number + 1, i))}
        return found.pop() if len(found) == 1 else None

    def points(self) -> list[Point]:
        return list(zip(self.lats, self.lons, strict=True))


class AddressRegister:
    def __init__(self, streets: list[Street] | None = None, landmarks: Landmarks | None = None):
        self._all = streets or []
        self.landmarks = landmarks or Landmarks()
        self._by_key: dict[str, list[Street]] = {}  # "king": rue King and avenue King
        for street in self._all:
            self._by_key.setdefault(street.key, []).append(street)
        self._corners: dict[tuple[str, str], Point | None] = {}  # worked out once asked
        self._grid: Grid | None = None  # every address by cell, for near(): made once asked

    def __len__(self) -> int:
        return sum(len(street.numbers) for street in self._all)

    def find(self, address: str | None) -> Place | None:
        """The place an address field names: a house number of one street, else a corner, else
        a named place ("Parc Central")."""
        parsed = parse_address(address)
        if parsed is not None and parsed[0] is not None:
            return self._house(*parsed)
        return self._first_corner(address, whole=True) or self._landmark(address)

    def _house(self, number: int, key: str) -> Place | None:
        """(number, street key) on exactly one street of the register, else None: "145 King"
        when both rue King and avenue King have a 145 is not guessed."""
        found = {(street.name, point) for street in self._by_key.get(key, ()) if (point := street.at(number))}
        if len(found) != 1:
            return None
        name, (lat, lon) = found.pop()
        return Place(f"{number}, {name}", lat, lon)

    def find_in_text(self, text: str | None) -> Place | None:
        """The first place of the register that ``text`` names as a house number followed by
        a street ("Il y a un trou devant le 145 rue Wellington Nord, …"). Only an exact
        (number, street) pair of the register counts: "3 nids-de-poule sur la rue King" or
        "depuis 2 semaines" name no place. Else the first corner it names, else the first
        named place."""
        for number, rest in numbers_in_text(text):
            name = street_words(rest)
            for size in range(len(name), 0, -1):  # "wellington nord" → "wellington"
                place = self._house(number, " ".join(name[:size]))
                if place is not None:
                    return place
        return self._first_corner(text) or self._landmark(text)

    def _landmark(self, text: str | None) -> Place | None:
        found = self.landmarks.find_in_text(text)
        return Place(*found) if found is not None else None

    def _street(self, key: str) -> Street | None:
        """The one street of the register with that key (None: none, or several)."""
        streets = self._by_key.get(key, ())
        return streets[0] if len(streets) == 1 else None

    def _first_corner(self, text: str | None, whole: bool = False) -> Place | None:
        for before, after in corners_in_text(text, whole):
            first, second = self._street_in(before, ending=True), self._street_in(after)
            if first is not None and second is not None and first is not second:
                point = self.corner(first.key, second.key)
                if point is not None:  # one writing whichever street is named first
                    return Place(_corner_name(first, second), *point)
        return None

    def _street_in(self, words: list[str], ending: bool = False) -> Street | None:
        """The register's street ``words`` begin with (the longest one); with ``ending``,
        the one they end with ("des rues cartier", "trou pres de wellington")."""
        spans = [(start, len(words)) for start in range(len(words))] if ending else \
            [(0, end) for end in range(len(words), 0, -1)]
        for start, end in spans:
            street = self._street(" ".join(words[start:end]))
            if street is not None:
                return street
        return None

    def corner(self, one: str, other: str) -> Point | None:
        """Where the streets of keys ``one`` and ``other`` meet, or None: they never come within
        CORNER_M of each other, or only side by side."""
        pair = (min(one, other), max(one, other))
        if pair not in self._corners:
            first, second = self._street(pair[0]), self._street(pair[1])
            self._corners[pair] = meeting(first.points(), second.points()) if first and second else None
        return self._corners[pair]

    def near(self, lat: float, lon: float) -> str | None:
        """Where (lat, lon) is, in street names for a reader: the corner of the street of the
        nearest address and another street, if within NEAR_M ("rue King / rue Wellington"),
        else that street ("rue Wellington"); None beyond NEAR_M of every address. No house
        number: a place to read, not someone's address. A named place within NEAR_M comes
        first ("Parc Central")."""
        named = self.landmarks.near(lat, lon)
        if named is not None:
            return named
        if self._grid is None:
            self._grid = Grid(lat, ((i, street.lats, street.lons) for i, street in enumerate(self._all)
                                    if self._street(street.key) is street))
        streets = [self._all[i] for i, _ in self._grid.streets_near((lat, lon))]
        if not streets:
            return None
        xy = flat(lat)
        here, best = xy((lat, lon)), None
        for other in streets[1:]:
            point = self.corner(streets[0].key, other.key)
            if point is not None:
                away = math.dist(xy(point), here)
                if away <= NEAR_M and (best is None or away < best[0]):
                    best = (away, other)
        return streets[0].name if best is None else _corner_name(streets[0], best[1])

    @classmethod
    def load(cls, path: Path) -> AddressRegister:
        """Raises ConfigError naming the file, line and column of every bad row."""
        if not path.exists():
            return cls()
        problems: list[Problem] = []
        streets: dict[str, Street | None] = {}  # by the name the register writes; None: no street name
        try:
            with path.open(encoding="utf-8", newline="") as rows:
                reader = csv.reader(rows)
                if tuple(next(reader, ())) != COLUMNS:
                    raise ConfigError([Problem(str(path), 1, "", f"the columns must be {','.join(COLUMNS)}")])
                for row in reader:
                    _add_row(str(path), reader.line_num, row, streets, problems)
        except UnicodeDecodeError as exc:
            raise ConfigError([Problem(str(path), None, "", f"not UTF-8 text: {exc}")]) from exc
        if problems:
            raise ConfigError(problems[:20])
        found = [street for street in streets.values() if street is not None]
        for street in found:
            street.sort()
        return cls(found)


def _corner_name(one: Street, other: Street) -> str:
    return " / ".join(sorted((one.name, other.name), key=fold))


def _add_row(path: str, line: int, row: list[str], streets: dict[str, Street | None], problems: list[Problem]) -> None:
    number, name, lat, lon = (row + ["", "", "", ""])[:4]
    try:
        house = int(number)
        if not 0 < house < 1_000_000:
            raise ValueError("out of range")
    except ValueError:
        problems.append(Problem(path, line, "number", f"not a house number: {number!r}"))
        return
    name = name.strip()
    if name not in streets:  # a street's name is read once, not once per address
        parsed = parse_address(f"1 {name}")
        streets[name] = Street(name, parsed[1]) if parsed is not None else None
    street = streets[name]
    if street is None:
        problems.append(Problem(path, line, "street", f"no street name: {name!r}"))
        return
    try:
        latitude, longitude = float(lat), float(lon)
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError("out of range")
    except ValueError:
        problems.append(Problem(path, line, "lat", f"not a latitude and longitude: {lat!r}, {lon!r}"))
        return
    street.add(house, latitude, longitude)
