"""`make bench`: the benchmarks, one after the other (the dashboards' for now)."""

import sys

from . import dashboard

sys.exit(dashboard.main(sys.argv[1:]))
