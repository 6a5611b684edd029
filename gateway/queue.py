"""One seam to run background work by id: RQ on Redis when REDIS_URL is set, threads otherwise.

The queue is only transport: every job re-reads the database, and the sweeper finds work
that a lost queue, a dead worker or a down Redis left behind. Enqueueing never fails the
caller: if Redis is down, the work waits in the database for the next sweep.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
QUEUE_NAME = "gateway"


class InlineQueue:
    """Background threads in this process; a sweeper thread looks for due work."""

    def __init__(self, runtime, workers: int = 2):
        self.runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway-job")
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def enqueue(self, job: str, item_id: int) -> None:
        from . import jobs

        self._pool.submit(jobs.run_logged, self.runtime, job, item_id)

    def start_sweeper(self, every: float) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep_loop, args=(every,), name="gateway-sweeper", daemon=True
            )
            self._sweeper.start()

    def _sweep_loop(self, every: float) -> None:
        from . import jobs

        while not self._stop.wait(every):
            jobs.run_logged(self.runtime, "tick", 0)

    def shutdown(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


class RqQueue:
    """Jobs on Redis for RQ workers (`gateway worker`)."""

    def __init__(self, redis_url: str):
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def enqueue(self, job: str, item_id: int) -> None:
        self.enqueue_many([(job, item_id)])

    def enqueue_many(self, items: list[tuple[str, int]]) -> None:
        """(job, id) pairs in one Redis round trip (one pipeline)."""
        from redis.exceptions import RedisError

        try:
            with self.redis.pipeline() as pipe:
                for job, item_id in items:
                    self.queue.enqueue_call("gateway.jobs.rq_entry", args=(job, item_id), timeout=300, result_ttl=0,
                                            failure_ttl=86400, pipeline=pipe)
                pipe.execute()
        except RedisError as exc:
            log.warning("queue unavailable, %d job(s) (%s %s…) left for the sweeper: %s", len(items), *items[0],
                        type(exc).__name__)

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def shutdown(self) -> None:
        self.redis.close()


class ImmediateQueue:
    """Runs each job at once in the caller's thread: for one-shot commands (`poll-email --once`)
    that must finish their work before exiting, without Redis."""

    def __init__(self, runtime):
        self.runtime = runtime

    def enqueue(self, job: str, item_id: int) -> None:
        from . import jobs

        jobs.run_logged(self.runtime, job, item_id)

    def shutdown(self) -> None:
        pass
