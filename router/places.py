"""The city's named places (config/places.yaml): parks, arenas, libraries, the city hall.

Citizens often name one instead of an address: "le module de jeux du parc Central est
brisé", "graffitis sur l'aréna Guertin", "at Ross playground". Each place has its name in
French and English and the other names citizens give it (``also``), and one point. A name is
found in a text as whole words, whatever the case, accents, hyphens or apostrophes ("l'Hôtel-
de-Ville" names "Hôtel de ville"), the longest name first ("parc du Lac-Leamy" before "parc
du Lac"). A name two places share is refused on load rather than guessed. The place is
written with its name in the city's language, so two ways of naming it are one place.

The file is optional. The address register (router/addresses.py) looks here last: a house
number or a corner the citizen names is more precise than a park.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from pydantic import ValidationError

from normalizer.address import is_street_type
from normalizer.text import fold

from .geometry import NEAR_M, flat
from .schema import PlacesFile
from .yamlfile import ConfigError, Problem, load

_WORD = re.compile(r"[a-z0-9]+")
_FILLER = {"de", "du", "des", "la", "le", "l", "d", "the"}
MIN_NAME = 4  # letters: a shorter name ("CH", "parc") would be found in every other message


def words(text: str | None) -> tuple[str, ...]:
    return tuple(_WORD.findall(fold(text or "")))


def _in_street_name(found: tuple[str, ...], start: int, end: int) -> bool:
    """Whether the name at found[start:end] is part of a street's name: "avenue du Parc
    Central", "Central Park Street" name a street, not the park."""
    before = [word for word in found[max(0, start - 3):start] if word not in _FILLER]
    return (end < len(found) and is_street_type(found[end])) or (bool(before) and is_street_type(before[-1]))


class Landmarks:
    """Named places by their names' words, for finding them in a citizen's text."""

    def __init__(self, places: list[tuple[str, float, float, list[str]]] | None = None):
        self._by_words: dict[tuple[str, ...], tuple[str, float, float]] = {}  # ("parc", "central"): the place
        self._points = [(lat, lon, name) for name, lat, lon, _ in places or []]
        for name, lat, lon, names in places or []:
            for written in names:
                self._by_words[words(written)] = (name, lat, lon)
        self._longest = max((len(key) for key in self._by_words), default=0)
        self._first_words = {key[0] for key in self._by_words if key}  # where a name may start

    def __len__(self) -> int:
        return len(self._points)

    def find_in_text(self, text: str | None) -> tuple[str, float, float] | None:
        """(name, lat, lon) of the first place ``text`` names, or None."""
        if not self._by_words:
            return None
        found = words(text)
        for start in range(len(found)):
            if found[start] not in self._first_words:
                continue
            for size in range(min(self._longest, len(found) - start), 0, -1):
                place = self._by_words.get(found[start:start + size])
                if place is not None and not _in_street_name(found, start, start + size):
                    return place
        return None

    def example(self) -> str | None:
        """The first place's name, for a form's hint."""
        return self._points[0][2] if self._points else None

    def near(self, lat: float, lon: float) -> str | None:
        """The name of the nearest place within NEAR_M of (lat, lon), or None."""
        xy = flat(lat)
        here = xy((lat, lon))
        distances = [(math.dist(xy((plat, plon)), here), name) for plat, plon, name in self._points]
        best = min(distances, default=None)
        return best[1] if best is not None and best[0] <= NEAR_M else None

    @classmethod
    def load(cls, path: Path, language: str) -> Landmarks:
        """Raises ConfigError naming the file, line and field of every problem: a bad value, a
        name too short to find, a name two places share."""
        if not path.exists():
            return cls()
        doc = load(path)
        try:
            parsed = PlacesFile.model_validate(doc.data if doc.data is not None else {})
        except ValidationError as exc:
            raise ConfigError([doc.problem(tuple(error["loc"]), error["msg"]) for error in exc.errors()]) from exc
        problems: list[Problem] = []
        owners: dict[tuple[str, ...], int] = {}
        places = []
        for index, place in enumerate(parsed.places):
            names = [place.name.fr, place.name.en, *place.also]
            where = [("name", "fr"), ("name", "en")] + [("also", i) for i in range(len(place.also))]
            for written, field in zip(names, where, strict=True):
                key, loc = words(written), ("places", index, *field)
                if len("".join(key)) < MIN_NAME:
                    problems.append(doc.problem(loc, f"{written!r} is too short to be found in a text "
                                                     f"({MIN_NAME} letters at least)"))
                elif owners.setdefault(key, index) != index:
                    problems.append(doc.problem(loc, f"{written!r} also names places[{owners[key]}]: "
                                                     "a name may belong to one place only"))
            places.append((place.name.get(language), place.lat, place.lon, names))
        if problems:
            raise ConfigError(problems)
        return cls(places)
