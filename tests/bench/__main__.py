"""`make bench` runs every benchmark in turn (``python -m tests.bench [--quick]``)."""

from __future__ import annotations

import sys

from . import dashboard, dedup_decisions

BENCHMARKS = [dedup_decisions.main, dashboard.main]  # one line per benchmark

if __name__ == "__main__":
    for run in BENCHMARKS:
        run(sys.argv[1:])
