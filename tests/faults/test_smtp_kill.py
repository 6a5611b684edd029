"""kill -9 of the SMTP server while department e-mails and acknowledgements go out.

The SMTP server is aiosmtpd as its own process (its Mailbox handler writes each message to a
Maildir before answering 250), killed with SIGKILL in the middle of the deliveries, then
started again on the same port after a pause. SMTP has no idempotency of its own: a message
whose 250 was lost with the server is sent again, with the same Message-ID (derived from the
delivery's idempotency key), so a resend is recognizable. The gentler "SMTP down / refusing"
cases are tests/gateway/test_outbox_faults.py.
"""

from __future__ import annotations

import email.policy
import mailbox
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from ..support.servers import free_port, wait_for_port, wait_until
from .conftest import report
from .stack import Stack, message_id, sink_deliveries
from .test_worker_and_redis_kill import RECOVERY_LIMIT, submit

COUNT = 20


def start_smtp(port: int, maildir: Path, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                                "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
                               stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    wait_for_port(port)
    return process


def message_ids(maildir: Path) -> Counter:
    box = mailbox.Maildir(maildir, factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default))
    return Counter(str(message["Message-ID"]) for message in box)


def deliveries_done(stack: Stack):
    rows = sink_deliveries(stack.database_url, purpose=None)
    mails = [d for d in rows if d.target in ("email_smtp", "email")]
    return mails if len(mails) == 2 * COUNT and all(d.state == "delivered" for d in rows) else None


def test_smtp_server_killed_mid_delivery_and_back(fault_settings, tmp_path):
    port, maildir = free_port(), tmp_path / "Maildir"
    stack = Stack({**fault_settings, "SMTP_PORT": port}, tmp_path)
    smtp = start_smtp(port, maildir, tmp_path / "smtp.log")
    try:
        stack.serve(workers=2)
        stack.start()
        stack.start()
        stack.scheduler()
        codes = [submit(stack.url, i) for i in range(COUNT)]
        wait_until(lambda: sum(message_ids(maildir).values()) >= 8, timeout=60, every=0.02)
        os.kill(smtp.pid, signal.SIGKILL)
        smtp.wait(timeout=10)
        killed_at = time.monotonic()
        time.sleep(4)
        smtp = start_smtp(port, maildir, tmp_path / "smtp.log")
        back_at = time.monotonic()
        mails = wait_until(lambda: deliveries_done(stack), timeout=RECOVERY_LIMIT, every=0.5)
        recovered = time.monotonic() - back_at
    finally:
        stack.stop()
        if smtp.poll() is None:
            smtp.terminate()
            smtp.wait(timeout=10)

    domain = "bellerive.example.org"
    expected = {message_id(d.idempotency_key, domain) for d in mails}
    received = message_ids(maildir)
    assert set(received) == expected  # every e-mail arrived, none unexpected
    resent = sum(n - 1 for n in received.values())
    assert resent <= 4  # only what was in flight at the kill, and under the same Message-ID
    retried = sum(1 for d in mails if d.attempts > 1)
    report("smtp_kill", {"sent": COUNT, "answered_201": COUNT, "requests": len(codes),
                         "emails_expected": len(expected), "emails_received_distinct": len(received),
                         "department_emails": sum(1 for d in mails if d.target == "email_smtp"),
                         "acknowledgements": sum(1 for d in mails if d.target == "email"),
                         "resent_same_message_id": resent, "deliveries_retried": retried, "lost": 0,
                         "smtp_down_seconds": round(back_at - killed_at, 1),
                         "all_delivered_seconds_after_smtp_back": round(recovered, 1)})
