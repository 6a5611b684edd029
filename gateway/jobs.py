"""Background entry points. Each takes an id, re-reads the database, and is safe to run twice."""

from __future__ import annotations

import gc
import logging
from datetime import datetime

from . import attachments, batch, claims, outbox
from .models import utcnow

log = logging.getLogger(__name__)
_worker_runtime = None


def process_inbound(runtime, inbound_id: int) -> None:
    """This message, and other waiting ones up to GATEWAY_PIPELINE_BATCH, in one transaction
    (one durable commit); their deliveries are enqueued once it is committed."""
    size = max(int(runtime.settings.get("GATEWAY_PIPELINE_BATCH") or 1), 1)
    deliveries, pending = batch.process_batch(runtime, [inbound_id], size)
    enqueue_deliveries(runtime, deliveries)
    for attachment_id in pending:
        runtime.jobs.enqueue("fetch_attachment", attachment_id)


def enqueue_deliveries(runtime, delivery_ids: list[int]) -> None:
    """One ``deliver_batch`` job per GATEWAY_DELIVERY_BATCH new deliveries, not one each: a job
    claims that many due deliveries anyway, and RQ costs a worker ~3 ms of CPU per job."""
    for delivery_id in delivery_ids[::int(runtime.settings["GATEWAY_DELIVERY_BATCH"])]:
        runtime.jobs.enqueue("deliver_batch", delivery_id)


def deliver_batch(runtime, delivery_id: int) -> None:
    """Send up to GATEWAY_DELIVERY_BATCH due deliveries, this one first if it is still due.

    The job stands for a whole batch of due deliveries, not for its own: it never withdraws
    another job. So the queue always holds at least one job per GATEWAY_DELIVERY_BATCH due
    deliveries (each job claims a full batch while that many are due, or all of them), and
    none waits for the sweeper. Deliveries a batch hands back unsent get a job of their own
    (gateway/outbox.py ``_release``)."""
    outbox.run_batch(runtime, first=delivery_id)


def deliver(runtime, delivery_id: int) -> None:
    """Send this delivery and, in the same claim, up to GATEWAY_DELIVERY_BATCH - 1 others that
    are due (gateway/outbox.py); then withdraw their own ``deliver`` jobs (one job per
    delivery, as a status change or an administrator enqueues them), which would find nothing
    to do. Each job withdrawn stands for a delivery this batch recorded, so every delivery
    still due keeps a job; ``deliver_batch`` jobs are never withdrawn."""
    started = utcnow()
    outcomes = outbox.run_batch(runtime, first=delivery_id)
    _withdraw_deliveries(runtime, set(outcomes) - {delivery_id}, started,
                         scan=2 * int(runtime.settings["GATEWAY_DELIVERY_BATCH"]))


# Remove a queued job only if it is still in the queue, atomically: a worker that already took
# it runs it (and finds nothing to do); one that takes it afterwards skips a missing job.
_WITHDRAW = "if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then redis.call('del', KEYS[2]) end"


def _withdraw_deliveries(runtime, done: set[int], started: datetime, scan: int) -> None:
    """Take out of the RQ queue (among its first ``scan`` jobs) the deliver jobs, enqueued
    before the batch began, of deliveries whose outcome the batch has just recorded: each would
    cost a worker ~3 ms of CPU to find nothing to do. A job enqueued since (an administrator's
    retry of a delivery the batch found dead) stays. Jobs are only transport: whatever is due
    again later is re-enqueued by the sweeper, so withdrawing never loses a delivery."""
    queue = getattr(runtime.jobs, "queue", None)  # RqQueue; the in-process queues have none
    if queue is None or not done:
        return
    from rq.job import Job

    try:
        ids = queue.get_job_ids(0, scan - 1)
        stale = [job for job in Job.fetch_many(ids, connection=queue.connection)
                 if job is not None and job.enqueued_at is not None and job.enqueued_at < started
                 and job.func_name == "gateway.jobs.rq_entry" and tuple(job.args[:1]) == ("deliver",)
                 and job.args[1] in done]
        if stale:
            withdraw = queue.connection.register_script(_WITHDRAW)
            with queue.connection.pipeline(transaction=False) as pipe:
                for job in stale:
                    withdraw(keys=[queue.key, job.key], args=[job.id], client=pipe)
                pipe.execute()
    except Exception as exc:  # only an optimization (Redis down, a job it cannot read): the jobs
        # left run and find nothing to do; the deliveries are recorded already
        log.warning("could not withdraw delivered jobs from the queue: %s", type(exc).__name__)


def sweep(runtime, _unused: int = 0) -> None:
    """Re-enqueue whatever is due in the database: the queue may have lost it."""
    for inbound_id in claims.pending_inbound(runtime):
        runtime.jobs.enqueue("process_inbound", inbound_id)
    enqueue_deliveries(runtime, outbox.due_deliveries(runtime))
    for attachment_id in attachments.pending_attachments(runtime):
        runtime.jobs.enqueue("fetch_attachment", attachment_id)


def fetch_attachment(runtime, attachment_id: int) -> None:
    attachments.fetch_attachment(runtime, attachment_id)


def tick(runtime, _unused: int = 0) -> None:
    """One pass of the scheduler (sweep, SLA, closing, Open311 polling): the embedded mode's
    background thread runs this; with Redis, the `scheduler` process does."""
    from .scheduler import run_once

    run_once(runtime)


JOBS = {"process_inbound": process_inbound, "deliver": deliver, "deliver_batch": deliver_batch, "sweep": sweep,
        "fetch_attachment": fetch_attachment, "tick": tick}


def run_logged(runtime, job: str, item_id: int) -> None:
    """Run one job in a background thread; a failure is logged, the sweeper retries it."""
    try:
        JOBS[job](runtime, item_id)
    except Exception:
        log.exception("job %s(%s) failed; it will be retried by the sweeper", job, item_id)


def rq_entry(job: str, item_id: int) -> None:
    """What RQ workers run: the worker process builds its runtime once."""
    global _worker_runtime
    if _worker_runtime is None:
        from .app import create_app

        _worker_runtime = create_app({"GATEWAY_INLINE_JOBS": False}).extensions["runtime"]
        # The runtime's ~150,000 objects (rules, templates, SQLAlchemy, adapters) live as long as
        # the worker: out of the collector's reach, a full collection no longer scans them
        # (~0.1 s each) nor does the interpreter's exit (~0.4 s). Only garbage cycles among
        # them would stay, once, not per job.
        gc.freeze()
    JOBS[job](_worker_runtime, item_id)
