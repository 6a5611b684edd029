"""The webhooks' RQ pushes, taken off the request thread and sent in batches.

A webhook answers once its message is durably committed; pushing the processing job to Redis
is transport only (gateway/queue.py): a lost push is found by the sweeper, which re-enqueues
every message still ``received`` (``claims.pending_inbound``, every GATEWAY_SWEEP_SECONDS).
So the request thread hands the job to this per-process pusher and answers; the pusher waits
``LINGER`` seconds for the jobs of the requests arriving meanwhile and sends them all in one
Redis pipeline. Measured (docs/benchmarks.md §1, round 3): a request that waits for its own
Redis round trip after the fsync runs its last part on a cold CPU again, ~0.4 ms of CPU per
webhook with 5 ms between requests (200/s); one round trip per batch costs a fraction of it.

One job per GATEWAY_PIPELINE_BATCH messages, not one each: a ``process_inbound`` job
processes its own message and the oldest waiting ones, up to that many, in one transaction
(gateway/jobs.py), so a batch of N stored messages needs ceil(N / size) jobs. One job per
message made the pusher run rq's ``enqueue_call`` for each (~0.08 ms of CPU per webhook in
the web worker) and left a pipeline worker 19 of every 20 jobs with nothing to do; the
deliveries are thinned the same way (``jobs.enqueue_deliveries``).

If the process dies with jobs not yet pushed, or Redis is down, the messages wait in the
database for the sweeper (tests/faults/test_web_worker_kill.py kills web workers mid-burst).
At a normal exit (gunicorn's SIGTERM) what is pending is pushed first (atexit).
Without Redis (InlineQueue, jobs in threads of this process) jobs are handed over at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

log = logging.getLogger(__name__)
LINGER = 0.05  # seconds: at 200 webhooks/s, ~10 jobs per round trip; the pipeline takes far longer


class DeferredPush:
    """``enqueue(job, id)`` returns at once; a daemon thread pushes batches with ``enqueue_many``."""

    def __init__(self, jobs, linger: float = LINGER, batch: int = 1):
        self.jobs = jobs
        self.linger = linger
        self.batch = max(int(batch), 1)  # messages a process_inbound job processes (GATEWAY_PIPELINE_BATCH)
        self._pending: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        atexit.register(self.flush)

    def enqueue(self, job: str, item_id: int) -> None:
        with self._lock:
            self._pending.append((job, item_id))
            first = len(self._pending) == 1
            if self._pid != os.getpid():  # first use in this process (gunicorn forks after import)
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="webhook-push", daemon=True)
                self._thread.start()
        if first:
            self._wake.set()

    def flush(self) -> None:
        """Push whatever is pending now, in the caller's thread."""
        with self._lock:
            items, self._pending = self._pending, []
        if items:
            try:
                self.jobs.enqueue_many(thinned(items, self.batch))
            except Exception:  # never lost: the sweeper re-enqueues what is still received
                log.exception("webhook push of %d job(s) failed; left for the sweeper", len(items))

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.linger)  # the jobs of the requests arriving meanwhile join this batch
            self.flush()


def thinned(items: list[tuple[str, int]], batch: int) -> list[tuple[str, int]]:
    """One ``process_inbound`` job for every ``batch`` of them (the first of each), the other
    jobs as they are."""
    inbound = [item for item in items if item[0] == "process_inbound"]
    return inbound[::batch] + [item for item in items if item[0] != "process_inbound"]


def for_app(app):
    """The app's pusher (made once, when the webhooks blueprint is registered), or its job
    queue itself when that has no batch push (InlineQueue: threads of this process)."""
    return app.extensions.get("webhook_push") or app.extensions["runtime"].jobs


def install(state) -> None:
    runtime = state.app.extensions["runtime"]
    if hasattr(runtime.jobs, "enqueue_many"):
        batch = runtime.settings.get("GATEWAY_PIPELINE_BATCH") or 1
        state.app.extensions["webhook_push"] = DeferredPush(runtime.jobs, batch=batch)
