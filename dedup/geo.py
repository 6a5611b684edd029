"""Places: distances, the grid cells that index requests, and addresses without coordinates.

The grid is fixed (CELL_LAT × CELL_LON degrees, about 155 m × 157 m at 45° N) so a cell
computed when a request was created stays valid; the cells to search around a point are
derived from the radius and the cell's real width at that latitude. A street key
("myrtle st") indexes requests that have an address but no coordinates, and house numbers
on the same street give a distance: "108 Myrtle St" and "106 Myrtle Street" are neighbours.
Street keys carry the block of the house number, so a long street is not one bucket.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from normalizer.text import fold

CELL_LAT = 0.0014  # degrees
CELL_LON = 0.002
EARTH_M = 6_371_000.0
METERS_PER_HOUSE_NUMBER = 5.0  # 106 → 108: two numbers apart, ~10 m along the street
MIN_COORDINATE = 0.01  # degrees from (0, 0): "null island" is a device without a fix

# Street types, directions and "saint" are left out of the street key: "145, rue Wellington
# Nord" and "145 Wellington" are one street; Myrtle St and Myrtle Ave share a key, and
# scoring (numbers, coordinates) tells them apart.
_NOT_NAME = frozenset("""
street st rue r avenue ave av road rd boulevard blvd boul bd chemin ch drive dr place pl lane
ln court ct terrace ter square sq highway hwy circle cir parkway pkwy way montee route rte
north nord n south sud s east est e west ouest w o saint sainte ste
""".split())
_TYPES = _NOT_NAME - frozenset("north nord n south sud s east est e west ouest w o saint sainte".split())
_FILLER = {"de", "du", "des", "la", "le", "l", "d", "of", "the"}
_NUMBER = re.compile(r"^\s*(\d{1,6})(?:\s*[-–]\s*\d+)?[a-z]?\b[\s,]*", re.IGNORECASE)
_INTERSECTION = re.compile(r"^\s*intersection of\s+", re.IGNORECASE)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def cell_of(lat: float, lon: float) -> str:
    return f"{math.floor(lat / CELL_LAT)}:{math.floor(lon / CELL_LON)}"


def cells_around(lat: float, lon: float, radius_m: float) -> list[str]:
    """Every cell that may hold a point within ``radius_m`` of (lat, lon)."""
    height = CELL_LAT * math.pi / 180 * EARTH_M
    width = CELL_LON * math.pi / 180 * EARTH_M * max(0.05, math.cos(math.radians(lat)))
    ny, nx = math.ceil(radius_m / height), math.ceil(radius_m / width)
    y, x = math.floor(lat / CELL_LAT), math.floor(lon / CELL_LON)
    return [f"{y + dy}:{x + dx}" for dy in range(-ny, ny + 1) for dx in range(-nx, nx + 1)]


def usable_point(lat: float | None, lon: float | None, bounds: tuple | None) -> str | None:
    """None when (lat, lon) can be used; otherwise why not (recorded with the decision)."""
    if lat is None or lon is None:
        return "no coordinates"
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "coordinates out of range"
    if abs(lat) < MIN_COORDINATE and abs(lon) < MIN_COORDINATE:
        return "coordinates (0, 0)"
    if bounds is not None:
        south, west, north, east = bounds
        if not (south <= lat <= north and west <= lon <= east):
            return "coordinates outside the city"
    return None


@lru_cache(maxsize=16384)  # the same open requests are compared again and again
def parse_address(address: str | None) -> tuple[int | None, str] | None:
    """(house number or None, street key) or None when no street can be read.

    "108 Myrtle St Beacon Hill" and "106, Myrtle Street" give (108, "myrtle st ...") and
    (106, "myrtle st"); the key keeps the street name and its type, and stops there.
    """
    if not address or not address.strip():
        return None
    text = _INTERSECTION.sub("", address)
    number = None
    found = _NUMBER.match(text)
    if found:
        number, text = int(found.group(1)), text[found.end():]
    street = re.split(r",|&| and | et ", text)[0]
    words = [w for w in fold(street).split() if w not in _FILLER]
    key = []
    for word in words:
        if word not in _NOT_NAME:
            key.append(word)
        elif key and word in _TYPES:
            break  # "108 Myrtle St Beacon Hill": the street ends with its type
    key = key or words
    if not key or all(k.isdigit() for k in key):
        return None
    return number, " ".join(key)[:120]


BLOCK = 100  # house numbers per block of a street key: "wellington#1" holds 100 to 199


def street_key(address: str | None) -> str | None:
    """The key an address is indexed under: the street and the block of its number
    ("wellington#1"), or "wellington#?" without a number. A long street is then not one
    huge bucket; neighbours are in the same block or the next ones."""
    parsed = parse_address(address)
    if parsed is None:
        return None
    number, street = parsed
    return f"{street[:110]}#{'?' if number is None else number // BLOCK}"


def street_keys_around(address: str | None, radius_m: float) -> list[str]:
    """Every street key that may hold an address within ``radius_m`` along the street."""
    parsed = parse_address(address)
    if parsed is None:
        return []
    number, street = parsed
    if number is None:
        return [f"{street[:110]}#?"]
    reach = math.ceil(radius_m / METERS_PER_HOUSE_NUMBER)
    blocks = range((number - reach) // BLOCK, (number + reach) // BLOCK + 1)
    return [f"{street[:110]}#{b}" for b in blocks if b >= 0] + [f"{street[:110]}#?"]


def address_distance_m(a: str | None, b: str | None) -> float | None:
    """Metres along the street between two addresses of the same street, None otherwise."""
    pa, pb = parse_address(a), parse_address(b)
    if pa is None or pb is None or pa[1] != pb[1]:
        return None
    if pa[0] is None or pb[0] is None:
        return None  # same street, place unknown: a street can be kilometres long
    return abs(pa[0] - pb[0]) * METERS_PER_HOUSE_NUMBER
