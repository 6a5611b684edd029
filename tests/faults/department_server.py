"""A department's webhook receiver as its own process, so a test can kill it with SIGKILL.

    python -m tests.faults.department_server PORT SECRET JOURNAL

The DepartmentWebhook stand-in (tests/support/standins.py) with a journal: each request's
idempotency key is written ("seen KEY") when it arrives and ("acted KEY") when the department
acts on it, flushed to disk before answering. A restarted server reads the journal back, so it
still recognizes keys it acted upon before the crash, as a real department's database would.
Each request is held 0.2 s before the answer, so a kill lands while deliveries are in flight.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ..support.standins import DepartmentWebhook


class JournaledDepartment(DepartmentWebhook):
    def __init__(self, secret: str, port: int, journal: str):
        super().__init__(secret, port)
        self.journal = open(journal, "a", encoding="utf-8")  # noqa: SIM115
        self._write_lock = threading.Lock()
        with open(journal, encoding="utf-8") as previous:
            self.accepted = [line.split(" ", 1)[1].strip() for line in previous if line.startswith("acted ")]

    def _write(self, line: str) -> None:
        with self._write_lock:
            self.journal.write(line + "\n")
            self.journal.flush()
            os.fsync(self.journal.fileno())

    def answer(self, recorded):
        key = recorded.headers.get("idempotency-key")
        self._write(f"seen {key}")
        known = key in self.accepted
        answer = super().answer(recorded)
        if answer.status == 201 and not known:
            self._write(f"acted {key}")
        time.sleep(0.2)
        return answer


def main() -> None:
    port, secret, journal = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = JournaledDepartment(secret, port, journal)
    server.server.serve_forever(0.05)


if __name__ == "__main__":
    main()
