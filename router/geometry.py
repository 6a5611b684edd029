"""Where the address register's streets are: where two of them meet, and which are near a
point. Distances are in metres on a flat map of the city (a city is small enough for it).
"""

from __future__ import annotations

import math
from array import array

CORNER_M = 60.0  # the nearest addresses of two streets that meet: across the corner's lots
LOCAL_M = 150.0  # a street's direction at a corner: that of its addresses this near
MEET_DEGREES = 30.0  # two streets closer in direction than this run side by side
NEAR_M = 100.0  # a point is "near" a street or a corner this close to it
METRES_PER_DEGREE = 111_195.0

Point = tuple[float, float]  # (lat, lon)


def flat(latitude: float):
    """(lat, lon) → metres east and north, flat over a city around ``latitude``."""
    scale = math.cos(math.radians(latitude)) * METRES_PER_DEGREE

    def xy(point: Point) -> tuple[float, float]:
        return point[1] * scale, point[0] * METRES_PER_DEGREE

    return xy


def meeting(one: list[Point], other: list[Point]) -> Point | None:
    """The middle of the nearest two addresses, one of each street, if they are within
    CORNER_M and the streets' directions there differ by MEET_DEGREES or more. The
    addresses of ``other`` are put in cells CORNER_M wide, so each of ``one`` is compared
    with those of its cell and the eight around it only."""
    if not one or not other:
        return None
    xy = flat(one[0][0])
    cells: dict[tuple[int, int], list] = {}
    for point in other:
        x, y = xy(point)
        cells.setdefault((int(x // CORNER_M), int(y // CORNER_M)), []).append(((x, y), point))
    best = None
    for point in one:
        x, y = xy(point)
        column, row = int(x // CORNER_M), int(y // CORNER_M)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for (ox, oy), near in cells.get((column + dx, row + dy), ()):
                    distance = math.hypot(x - ox, y - oy)
                    if distance <= CORNER_M and (best is None or distance < best[0]):
                        best = (distance, point, near)
    if best is None:
        return None
    turn = abs(direction([xy(p) for p in one], xy(best[1])) - direction([xy(p) for p in other], xy(best[2])))
    if min(turn, 180.0 - turn) < MEET_DEGREES:
        return None
    return round((best[1][0] + best[2][0]) / 2, 6), round((best[1][1] + best[2][1]) / 2, 6)


def direction(points: list[tuple[float, float]], at: tuple[float, float]) -> float:
    """A street's direction near ``at``, in degrees from 0 to 180: the main axis of its
    addresses within LOCAL_M (the two sides of the street make a band, not a line)."""
    near = [(x, y) for x, y in points if math.hypot(x - at[0], y - at[1]) <= LOCAL_M]
    mean_x, mean_y = sum(x for x, _ in near) / len(near), sum(y for _, y in near) / len(near)
    xx = sum((x - mean_x) ** 2 for x, _ in near)
    yy = sum((y - mean_y) ** 2 for _, y in near)
    xy = sum((x - mean_x) * (y - mean_y) for x, y in near)
    return math.degrees(0.5 * math.atan2(2 * xy, xx - yy)) % 180.0


class Grid:
    """Every address in cells NEAR_M wide, to find the streets near a point: the cells hold
    indexes into flat arrays (a city's half-million addresses in a few tens of MiB)."""

    def __init__(self, latitude: float, streets):
        """``streets``: (the street's number, its addresses' latitudes, their longitudes),
        read once (an iterator: no list of every address is made)."""
        self.xy = flat(latitude)
        self.xs, self.ys, self.owner = array("d"), array("d"), array("l")
        cells: dict[tuple[int, int], array] = {}
        for street, lats, lons in streets:
            for point in zip(lats, lons, strict=True):
                x, y = self.xy(point)
                cells.setdefault((int(x // NEAR_M), int(y // NEAR_M)), array("l")).append(len(self.xs))
                self.xs.append(x)
                self.ys.append(y)
                self.owner.append(street)
        self.cells = cells

    def streets_near(self, point: Point) -> list[tuple[int, float]]:
        """(street's number, metres to its nearest address) within NEAR_M, the nearest first."""
        x, y = self.xy(point)
        column, row, found = int(x // NEAR_M), int(y // NEAR_M), {}
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for i in self.cells.get((column + dx, row + dy), ()):
                    away = math.hypot(self.xs[i] - x, self.ys[i] - y)
                    if away <= NEAR_M and away < found.get(self.owner[i], math.inf):
                        found[self.owner[i]] = away
        return sorted(found.items(), key=lambda item: item[1])
