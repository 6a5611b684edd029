"""`gateway poll-email`: reads the city's mailboxes over IMAP and stores every message.

For each message, in this order: store the raw RFC 822 bytes (committed), record the IMAP
receipt, enqueue processing, and only then mark it processed on the server (a keyword flag,
or a move to another folder). A crash anywhere before the mark makes the next pass read the
message again; its receipt — unique on (mailbox, UIDVALIDITY, UID) and on (mailbox,
Message-ID) — makes that a no-op, so nothing is lost and nothing is doubled. When the server
renumbers the mailbox (a new UIDVALIDITY), old messages come back under new UIDs and are
recognized by their Message-ID (or, without one, by a hash of their bytes).

Parsing happens later, in the pipeline job: a message that cannot be parsed is already stored
and never blocks the mailbox. IDLE (RFC 2177) is used when the server offers it, polling
otherwise; a dropped connection is retried with exponential backoff and jitter.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import ssl
import threading
import time
from dataclasses import dataclass, field

from imapclient import IMAPClient
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from .intake import store_inbound
from .mailboxes import Mailbox
from .models import EmailReceipt, InboundMessage, MailboxState, utcnow

log = logging.getLogger(__name__)
FETCH_BATCH = 25
IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
MAX_BACKOFF_SECONDS = 300.0
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class PassResult:
    """What one pass over a mailbox did."""

    stored: int = 0  # new messages stored
    already: int = 0  # read again, recognized by their receipt
    marked: int = 0  # flagged or moved on the server
    uidvalidity_changed: bool = False
    inbound_ids: list[int] = field(default_factory=list)


class MailboxPoller:
    """One mailbox: connect, read what is new, store it, mark it; again, forever."""

    def __init__(self, runtime, mailbox: Mailbox):
        self.runtime = runtime
        self.mailbox = mailbox
        self.max_bytes = int(runtime.settings.get("EMAIL_MAX_MESSAGE_BYTES") or 25 * 1024 * 1024)
        self.keep_oversized = str(runtime.settings.get("EMAIL_OVERSIZE_POLICY") or "reject") == "strip"
        self._folder_ready = False
        # imapclient logs the whole protocol at DEBUG, message bodies included: never ours to log.
        logging.getLogger("imapclient").setLevel(max(logging.INFO, logging.getLogger("imapclient").level))

    # --- connection ------------------------------------------------------------------------

    def connect(self) -> IMAPClient:
        """A logged-in client. Raises IMAPClientError (LoginError…) or OSError."""
        box = self.mailbox
        context = ssl.create_default_context(cafile=box.tls_ca_file)
        client = IMAPClient(box.host, port=box.port, ssl=box.tls == "tls", ssl_context=context,
                            timeout=box.timeout_seconds)
        try:
            if box.tls == "starttls":
                client.starttls(context)
            client.login(box.user, box.password)
        except BaseException:
            _close(client)
            raise
        return client

    def run_forever(self, stop: threading.Event) -> None:
        """Read, wait for news (IDLE or polling), read again; reconnect with backoff on failure.

        Any failure (the server, the network, the database) ends the session and is retried:
        nothing was marked processed that was not stored, so starting over loses nothing."""
        failures = 0
        while not stop.is_set():
            client = None
            try:
                client = self.connect()
                self.sync(client)
                failures = 0
                while not stop.is_set():
                    self._wait_for_news(client, stop)
                    if not stop.is_set():
                        self.sync(client)
            except Exception as exc:  # IMAP, network or database: retry, never die
                failures += 1
                delay = backoff_delay(failures)
                self._record_error(exc)
                log.warning("mailbox %s: %s; reconnecting in %.1fs", self.mailbox.name, type(exc).__name__, delay)
                stop.wait(delay)
            finally:
                if client is not None:
                    _close(client)

    def poll_once(self) -> PassResult:
        """Connect, read everything new, disconnect. Raises IMAPClientError or OSError."""
        client = self.connect()
        try:
            return self.sync(client)
        finally:
            _close(client)

    # --- one pass --------------------------------------------------------------------------

    def sync(self, client: IMAPClient) -> PassResult:
        """Store and mark every message not yet marked processed. Raises IMAPClientError, OSError."""
        box = self.mailbox
        selected = client.select_folder(box.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        result = PassResult(uidvalidity_changed=self._note_uidvalidity(uidvalidity))
        criteria = ["NOT", "DELETED"]
        if box.processed == "flag":
            criteria += ["NOT", "KEYWORD", box.processed_flag]
        uids = sorted(client.search(criteria))
        for start in range(0, len(uids), FETCH_BATCH):
            for uid, raw, size in self._fetch(client, uids[start:start + FETCH_BATCH]):
                inbound_id, created = self.store(uidvalidity, uid, raw, size)
                result.stored += created
                result.already += not created
                result.inbound_ids.append(inbound_id)
                self.mark(client, uidvalidity, uid)
                result.marked += 1
        self._record_success(uidvalidity, uids)
        if result.stored or result.already:
            log.info("mailbox %s: %s stored, %s already stored, %s marked", box.name, result.stored,
                     result.already, result.marked)
        return result

    def _fetch(self, client: IMAPClient, uids: list[int]):
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        whole = [u for u in uids if u in sizes and (sizes[u][b"RFC822.SIZE"] <= self.max_bytes or self.keep_oversized)]
        heads = [u for u in uids if u in sizes and u not in whole]
        bodies = client.fetch(whole, ["BODY.PEEK[]"]) if whole else {}
        # Over the limit and refused by policy: keep the headers only; the parser records why.
        bodies.update(client.fetch(heads, ["BODY.PEEK[HEADER]"]) if heads else {})
        for uid in uids:
            data = bodies.get(uid)
            if data is None:
                continue  # expunged meanwhile by someone else
            raw = data.get(b"BODY[]") or data.get(b"BODY[HEADER]") or b""
            yield uid, raw, int(sizes[uid][b"RFC822.SIZE"])

    def store(self, uidvalidity: int, uid: int, raw: bytes, size: int) -> tuple[int, bool]:
        """(inbound id, created): the message stored once, whatever was read before."""
        runtime, box = self.runtime, self.mailbox
        key = message_key(raw)
        with runtime.db.session() as session:
            receipt = session.scalar(select(EmailReceipt).where(
                EmailReceipt.mailbox == box.name,
                or_(and_(EmailReceipt.uidvalidity == uidvalidity, EmailReceipt.uid == uid),
                    EmailReceipt.message_key == key)))
            if receipt is not None:
                return receipt.inbound_id, False
        headers = {"mailbox": box.name, "uidvalidity": uidvalidity, "uid": uid, "size": size}
        if len(raw) < size and size > self.max_bytes:
            headers["truncated"] = True
        inbound_id, created = store_inbound(runtime, "email", f"{box.name}/{uidvalidity}/{uid}", raw,
                                            "message/rfc822", headers)
        try:
            with runtime.db.session() as session:
                session.add(EmailReceipt(mailbox=box.name, uidvalidity=uidvalidity, uid=uid,
                                         message_key=key, inbound_id=inbound_id))
        except IntegrityError:
            log.info("mailbox %s: uid %s already has a receipt", box.name, uid)
        self._hand_over(inbound_id)
        return inbound_id, created

    def _hand_over(self, inbound_id: int) -> None:
        """Enqueue processing unless it is already done (a re-read after a crash)."""
        with self.runtime.db.session() as session:
            state = session.scalar(select(InboundMessage.state).where(InboundMessage.id == inbound_id))
        if state == "received":
            self.runtime.jobs.enqueue("process_inbound", inbound_id)

    def mark(self, client: IMAPClient, uidvalidity: int, uid: int) -> None:
        """Tell the server the message is processed: a keyword, or a move to another folder."""
        box = self.mailbox
        if box.processed == "flag":
            client.add_flags([uid], [box.processed_flag], silent=True)
        else:
            self._ensure_folder(client)
            if client.has_capability("MOVE"):
                client.move([uid], box.processed_folder)
            else:
                client.copy([uid], box.processed_folder)
                client.delete_messages([uid], silent=True)
                client.uid_expunge([uid]) if client.has_capability("UIDPLUS") else client.expunge()
        with self.runtime.db.session() as session:
            receipt = session.scalar(select(EmailReceipt).where(
                EmailReceipt.mailbox == box.name, EmailReceipt.uidvalidity == uidvalidity, EmailReceipt.uid == uid))
            if receipt is not None:
                receipt.marked_at = utcnow()

    def _ensure_folder(self, client: IMAPClient) -> None:
        if not self._folder_ready:
            if not client.folder_exists(self.mailbox.processed_folder):
                client.create_folder(self.mailbox.processed_folder)
            self._folder_ready = True

    def _wait_for_news(self, client: IMAPClient, stop: threading.Event) -> None:
        if self.mailbox.idle and client.has_capability("IDLE"):
            client.idle()
            started = time.monotonic()
            # Mail that arrives between a read and the start of IDLE is announced before IDLE's
            # continuation and never reaches idle_check: re-reading every poll_seconds bounds
            # how long such a message waits (instead of until the next IDLE renewal).
            limit = min(IDLE_RENEW_SECONDS, self.mailbox.poll_seconds)
            try:
                while not stop.is_set() and time.monotonic() - started < limit:
                    if client.idle_check(timeout=1):
                        return  # EXISTS, EXPUNGE, FETCH…: something changed
            finally:
                client.idle_done()
        else:
            stop.wait(self.mailbox.poll_seconds)
            client.noop()

    # --- bookkeeping -----------------------------------------------------------------------

    def _note_uidvalidity(self, uidvalidity: int) -> bool:
        """Remember the mailbox's UIDVALIDITY; True when it changed since the last pass."""
        with self.runtime.db.session() as session:
            state = session.get(MailboxState, self.mailbox.name)
            if state is None:
                session.add(MailboxState(name=self.mailbox.name, uidvalidity=uidvalidity, last_uid=0))
                return False
            if state.uidvalidity == uidvalidity:
                return False
            log.warning("mailbox %s: UIDVALIDITY changed (%s → %s); messages already stored are "
                        "recognized by Message-ID", self.mailbox.name, state.uidvalidity, uidvalidity)
            state.uidvalidity, state.last_uid = uidvalidity, 0
            return True

    def _record_success(self, uidvalidity: int, uids: list[int]) -> None:
        with self.runtime.db.session() as session:
            state = session.get(MailboxState, self.mailbox.name)
            state.last_uid = max([state.last_uid or 0, *uids])
            state.last_success_at, state.last_error = utcnow(), None
        self.runtime.record_health(f"mailbox:{self.mailbox.name}", ok=True)

    def _record_error(self, exc: Exception) -> None:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        self.runtime.record_health(f"mailbox:{self.mailbox.name}", ok=False, detail=detail)
        try:
            with self.runtime.db.session() as session:
                state = session.get(MailboxState, self.mailbox.name)
                if state is None:
                    state = MailboxState(name=self.mailbox.name, last_uid=0)
                    session.add(state)
                state.last_error = detail
        except Exception:  # the database may be what failed; the log line above still tells
            log.exception("mailbox %s: could not record the error", self.mailbox.name)


def message_key(raw: bytes) -> str:
    """The Message-ID, or a hash of the bytes for mail that has none."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = _MESSAGE_ID.search(head)
    if match:
        return match.group(1).decode("ascii", errors="replace")[:255]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def backoff_delay(failures: int) -> float:
    """1 s, 2 s, 4 s … up to 5 minutes, with ±20 % jitter."""
    return min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS) * random.uniform(0.8, 1.2)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection is already gone: nothing to close politely
        try:
            client.shutdown()
        except Exception:
            log.debug("IMAP connection already closed")


def poll_all_once(runtime, mailboxes: list[Mailbox]) -> dict[str, PassResult | Exception]:
    """One pass over each mailbox; a failing mailbox does not stop the others."""
    outcome: dict[str, PassResult | Exception] = {}
    for mailbox in mailboxes:
        poller = MailboxPoller(runtime, mailbox)
        try:
            outcome[mailbox.name] = poller.poll_once()
        except Exception as exc:  # reported per mailbox; the others still run
            poller._record_error(exc)
            outcome[mailbox.name] = exc
    return outcome


def run_all(runtime, mailboxes: list[Mailbox], stop: threading.Event) -> None:
    """One thread per mailbox until ``stop`` is set."""
    threads = [threading.Thread(target=MailboxPoller(runtime, m).run_forever, args=(stop,),
                                name=f"poller-{m.name}", daemon=True) for m in mailboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)


__all__ = ["MailboxPoller", "PassResult", "backoff_delay", "message_key", "poll_all_once", "run_all"]
