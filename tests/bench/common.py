"""What every benchmark shares: servers started and stopped on loopback, the machine's
description, process memory, and how results are collected and printed.

Nothing here is collected by pytest (no ``test_`` names): benchmarks print figures, the test
suite checks correctness.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# On the real disk, never tmpfs: durable commits must pay for their fsync.
WORK = ROOT / "var" / "bench"


def fresh_dir(name: str) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- processes ---------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM) in MiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_peak_rss_mb() -> float:
    return peak_rss_mb(os.getpid()) or 0.0


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


# --- the machine -------------------------------------------------------------------------------

def _first_line(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not installed"
    return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    packages = {name: metadata.version(name) for name in
                ("flask", "gunicorn", "sqlalchemy", "rq", "redis", "twilio", "psycopg")}
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(int(memory.split()[1]) / 1024 / 1024, 1),
        "load_average": Path("/proc/loadavg").read_text().split()[:3],  # the machine is shared: say how busy
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "redis_server": _first_line(["redis-server", "--version"]),
        "wrk": _first_line(["wrk", "-v"]),
        "packages": packages,
    }


def durable_commit_ms(rounds: int = 200) -> dict:
    """The physical limit of any durable intake here: one fsync'd append, and one SQLite WAL
    commit with synchronous=FULL, one writer, in milliseconds (medians)."""
    folder = fresh_dir("disk")
    fd = os.open(folder / "append", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    fsyncs = []
    for _ in range(rounds):
        start = time.perf_counter()
        os.write(fd, b"x" * 512)
        os.fsync(fd)
        fsyncs.append(time.perf_counter() - start)
    os.close(fd)
    connection = sqlite3.connect(folder / "commits.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    commits = []
    for _ in range(rounds):
        start = time.perf_counter()
        connection.execute("INSERT INTO t (body) VALUES (?)", (b"x" * 800,))
        commits.append(time.perf_counter() - start)
    connection.close()
    return {"fsync_ms": round(median(fsyncs) * 1000, 2), "sqlite_full_commit_ms": round(median(commits) * 1000, 2)}


# --- results -----------------------------------------------------------------------------------

@dataclass
class Results:
    """Figures by benchmark, printed as they come and saved as JSON at the end."""

    quick: bool
    figures: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict = field(default_factory=dict)

    def add(self, bench: str, name: str, value, unit: str = "") -> None:
        self.figures.setdefault(bench, {})[name] = {"value": value, "unit": unit}
        shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"  {bench:<11} {name:<58} {shown} {unit}".rstrip(), flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"quick": self.quick, "machine": self.machine or machine(), "figures": self.figures,
                                    "notes": self.notes}, indent=2, ensure_ascii=False))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)
