"""The address register at a large city's size: ``python -m tests.bench.addresses [ADDRESSES]``.

Writes a register of ADDRESSES civic addresses (default 500,000, about Montréal's) on
streets of 84 addresses each, half running east–west and half north–south over a 30 × 22 km
city, then measures what every web and pipeline process pays for it: the time to load it
(at start and at each reload of config/) and the memory it keeps (peak resident memory before
and after, from getrusage); then the look-ups: an address field, a sentence naming a house, a
sentence naming a corner (the first time, when the corner is worked out, and again), and the
street or corner near a point (the first call builds the cells, in processes that draw the
dashboards).
"""

from __future__ import annotations

import random
import resource
import statistics
import sys
import time
from pathlib import Path

from router.addresses import AddressRegister

from .common import WORK

PER_STREET = 84


def write(path: Path, count: int, seed: int = 311) -> int:
    rng = random.Random(seed)
    streets = max(2, count // PER_STREET)
    with path.open("w", encoding="utf-8") as out:
        out.write("number,street,lat,lon\n")
        for s in range(streets):
            if s % 2 == 0:  # east–west; the next street, north–south, crosses it in its middle
                lat, lon = 45.40 + rng.random() * 0.2, -75.80 + rng.random() * 0.3
            east, half = s % 2 == 0, PER_STREET // 2
            for n in range(1, PER_STREET + 1):
                north = (lat + n * 0.00009 - half * 0.00009, lon + half * 0.00013) if not east else None
                point = north or (lat, lon + n * 0.00013)
                out.write(f"{2 * n},rue Numéro {s},{point[0]:.6f},{point[1]:.6f}\n")
    return streets * PER_STREET


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _each_ms(call, rounds: int = 200) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    count = int(argv[0]) if argv else 500_000
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "addresses.csv"
    written = write(path, count)
    before = _peak_mib()
    started = time.perf_counter()
    register = AddressRegister.load(path)
    loaded = time.perf_counter() - started
    after = _peak_mib()
    first = time.perf_counter()
    corner = register.find_in_text("Un trou au coin de Numéro 0 et Numéro 1")
    first = (time.perf_counter() - first) * 1000
    near_first = time.perf_counter()
    register.near(45.5, -75.65)
    near_first = time.perf_counter() - near_first
    print(f"register of {written:,} addresses ({len(register):,} loaded): load {loaded:.2f} s, peak RSS "
          f"{before:.0f} → {after:.0f} MiB (+{after - before:.0f})")
    print(f"  address field '84 Numéro 12': {_each_ms(lambda: register.find('84 Numéro 12')):.3f} ms")
    print(f"  sentence naming a house: "
          f"{_each_ms(lambda: register.find_in_text('Il y a un trou devant le 84 rue Numéro 12, merci')):.3f} ms")
    print(f"  sentence naming a corner ({corner.address if corner else 'no corner'}): first {first:.1f} ms, then "
          f"{_each_ms(lambda: register.find_in_text('Un trou au coin de Numéro 0 et Numéro 1')):.3f} ms")
    print(f"  sentence naming no place: {_each_ms(lambda: register.find_in_text('Ma poubelle na pas été ramassée')):.3f} ms")
    print(f"  street or corner near a point: first call {near_first:.2f} s (the cells; peak RSS now "
          f"{_peak_mib():.0f} MiB), then {_each_ms(lambda: register.near(45.5, -75.65)):.3f} ms")


if __name__ == "__main__":
    main()
