"""Districts from the city's GeoJSON boundaries: which one holds a point (shapely)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import Point, shape
from shapely.prepared import prep

from .yamlfile import ConfigError, Problem


@dataclass(frozen=True)
class District:
    code: str
    name: str


class Areas:
    def __init__(self, features: list[tuple[District, object]]):
        self._features = [(district, prep(geometry)) for district, geometry in features]
        self.districts = {district.code: district for district, _ in features}

    @classmethod
    def load(cls, path: Path) -> Areas:
        """Raises ConfigError naming the file and the feature at fault."""
        if not path.exists():
            return cls([])
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            raise ConfigError([Problem(str(path), line, "", f"not valid GeoJSON: {exc}")]) from exc
        features = []
        for i, feature in enumerate(document.get("features", [])):
            props = feature.get("properties") or {}
            try:
                geometry = shape(feature["geometry"])
                district = District(str(props["code"]), str(props.get("name", props["code"])))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ConfigError(
                    [Problem(str(path), None, f"features[{i}]", f"bad feature: {exc!r}")]
                ) from exc
            features.append((district, geometry))
        return cls(features)

    def locate(self, lat: float | None, lon: float | None) -> District | None:
        if lat is None or lon is None:
            return None
        point = Point(lon, lat)  # GeoJSON order: longitude, latitude
        for district, geometry in self._features:
            if geometry.contains(point):
                return district
        return None
