"""kill -9 of a pipeline worker while it holds SQLite's writer's turn (gateway/turns.py).

`gateway serve` (2 workers), `gateway worker` and `gateway scheduler` run as real processes
on SQLite and redis-server. 40 signed SMS are stored while no worker runs; a worker then
takes them in batches, and while it holds the writer's turn (the lock file beside the
database, seen held from here) it gets SIGKILL. The turn must be free as soon as the process
is gone (the kernel releases a dead process's locks), so the webhooks that come next are
stored without waiting for anyone; a new worker then processes everything exactly once.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from normalizer.codes import find_codes

from ..support.servers import wait_until
from .conftest import report
from .stack import Stack, settle, tally
from .test_web_worker_kill import post_until_answered, sms

BEFORE, AFTER = 40, 20


@pytest.fixture
def sqlite_stack(fault_settings, tmp_path):
    running = Stack({**fault_settings, "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}"}, tmp_path)
    yield running
    running.stop()


def _held(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def test_a_pipeline_worker_killed_holding_the_writers_turn_holds_no_webhook_back(sqlite_stack, twilio, receiver,
                                                                               smtp_server):
    stack = sqlite_stack
    stack.serve(workers=2)
    answers: dict[str, str] = {}
    lock = threading.Lock()
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(post_until_answered, stack.url, sms(i), answers, lock, []) for i in range(BEFORE)]:
            future.result()
    assert tally(stack.database_url)["requests"] == 0  # stored, waiting: no worker yet

    writer = os.open(f"{stack.database_url.removeprefix('sqlite:///')}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        worker = stack.start()
        wait_until(lambda: _held(writer), timeout=60, every=0.0005)  # a batch under way
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert not _held(writer)  # released with the process: nobody waits for a dead batch
    finally:
        os.close(writer)
    processed_at_kill = tally(stack.database_url)["requests"]
    assert processed_at_kill < BEFORE  # killed in the middle of its work

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(post_until_answered, stack.url, sms(i), answers, lock, [])
                       for i in range(BEFORE, BEFORE + AFTER)]:
            future.result()
    stored_after_seconds = time.monotonic() - started

    stack.start()
    stack.scheduler()  # hands out again what the dead worker had taken
    figures = settle(stack, receiver, smtp_server, expected_requests=BEFORE + AFTER)
    final = tally(stack.database_url)
    assert sorted(final["inbound"]) == sorted(("twilio_sms", sms(i)["MessageSid"]) for i in range(BEFORE + AFTER))
    assert set(final["inbound"].values()) == {1}  # each SMS stored once
    assert {find_codes(text, "R")[0] for text in answers.values()} == final["request_codes"]
    assert figures["webhook_lost"] == figures["webhook_acted_twice"] == figures["webhook_unexpected"] == 0
    assert figures["email_lost"] == 0 and figures["email_expected"] == figures["webhook_expected"] == BEFORE + AFTER
    report("sqlite_turn_kill", {
        "sent": BEFORE + AFTER, "answered_200": len(answers), "requests_when_killed": processed_at_kill,
        "stored_inbound": sum(final["inbound"].values()), "requests": final["requests"], **figures,
        "sms_after_kill_stored_in_seconds": round(stored_after_seconds, 1)})
