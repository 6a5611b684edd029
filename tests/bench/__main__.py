"""`python -m tests.bench [--quick] [--only intake,pipeline,deliveries,dedup,dashboard,addresses]` (`make bench`).

Runs the chosen benchmarks in turn and prints their figures; this package's own ones (intake,
pipeline, deliveries) are also saved in var/bench/results-<selection>.json. Not a test:
nothing here is collected by pytest, and no figure fails the build; docs/benchmarks.md
records them. One line per benchmark in ``main`` below.
"""

from __future__ import annotations

import argparse
import time

from .common import WORK, Results, durable_commit_ms, machine, section

ALL = ("intake", "pipeline", "deliveries", "dedup", "dashboard", "addresses")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, small data (a few minutes)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--db", default="sqlite,postgres", help="databases for intake, pipeline, deliveries")
    parser.add_argument("--rounds", type=int, default=None, help="intake: saturation runs per target (median)")
    parser.add_argument("--requests", type=int, default=None, help="pipeline: generated requests")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = Results(quick=args.quick)
    section("machine")
    results.machine = {**machine(), **durable_commit_ms()}
    for key, value in results.machine.items():
        print(f"  {key}: {value}")
    started = time.monotonic()
    databases = [d.strip() for d in args.db.split(",") if d.strip()]
    for name in chosen:
        if name == "intake":
            from . import intake

            intake.run(results, args.quick, databases, args.rounds or (1 if args.quick else 3))
            if "sqlite" in databases:  # a worst day: messages arriving while the pipeline catches up
                from . import intake_busy

                intake_busy.run(results, args.quick)
        elif name == "pipeline":
            from . import pipeline

            pipeline.run(results, args.quick, args.requests, databases)
        elif name == "deliveries":
            from . import deliveries

            deliveries.run(results, args.quick, databases)
        elif name == "dedup":  # 10 k / 100 k / 1 M open requests (the dedup issue's benchmark)
            from . import dedup_decisions

            section("dedup")
            dedup_decisions.main(["--quick"] if args.quick else [])
        elif name == "dashboard":
            from . import dashboard

            section("dashboards")
            dashboard.main([] if not args.quick else [f"sqlite:///{WORK / 'dashboard.db'}", "100000"])
        elif name == "addresses":  # the address register at a large city's size
            from . import addresses

            section("address register")
            addresses.main(["50000"] if args.quick else [])
    saved = WORK / f"results-{'-'.join(chosen)}{'-quick' if args.quick else ''}.json"
    results.save(saved)
    print(f"\nall done in {time.monotonic() - started:.0f} s; figures saved in {saved}")


if __name__ == "__main__":
    main()
