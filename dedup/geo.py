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

from normalizer.address import parse_address  # noqa: F401  (dedup's scoring and index use it)

CELL_LAT = 0.0014  # degrees
CELL_LON = 0.002
EARTH_M = 6_371_000.0
METERS_PER_HOUSE_NUMBER = 5.0  # 106 → 108: two numbers apart, ~10 m along the street
MIN_COORDINATE = 0.01  # degrees from (0, 0): "null island" is a device without a fix


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


def cells_in_box(south: float, north: float, west: float, east: float, size: int = 0) -> list[str]:
    """Exactly the cells a point inside the box can be filed under: ``cell_of`` of every
    point with south ≤ lat ≤ north and west ≤ lon ≤ east is among them (floor is monotonic),
    and each of them holds such points. For a radius smaller than a cell, 1 to 4 cells
    where ``cells_around`` gives 9. ``size``: the list is padded to that length with its
    first cell repeated, so a statement built on it keeps one text (and stays in the
    database's statement cache) wherever the box falls on the grid."""
    rows = range(math.floor(south / CELL_LAT), math.floor(north / CELL_LAT) + 1)
    columns = range(math.floor(west / CELL_LON), math.floor(east / CELL_LON) + 1)
    cells = [f"{y}:{x}" for y in rows for x in columns]
    return cells + cells[:1] * (size - len(cells))


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
