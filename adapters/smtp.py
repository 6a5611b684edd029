"""A small SMTP transport shared by the e-mail sink and the e-mail channel.

Classifies every failure for the outbox: a server that cannot be reached, a timeout or a
4xx reply is transient (retried with backoff); a 5xx reply for the recipient or the message
is permanent (dead letter). See RFC 5321 §4.2.1 for the reply-code classes.

Each thread keeps its SMTP session open between messages (dropped after any error; one the
server closed while idle is replaced when MAIL fails on it, before anything was accepted):
connecting, greeting and EHLO cost more than sending a message.

Messages are written as bytes here (``mime``), not with ``email.message.EmailMessage``: its
header parsing, folding and content managers cost more CPU than the rest of a delivery. The
bytes are the ones EmailMessage with ``policy.default`` would produce (same headers, parts,
charset and transfer-encoding choice; checked by tests/sinks/test_smtp_mime.py); a header that
needs encoding or folding still goes through the email package's policy.
"""

from __future__ import annotations

import binascii
import random
import re
import smtplib
import sys
import threading
from email import policy, quoprimime
from email.utils import getaddresses, make_msgid

from .errors import AdapterMisconfiguredError, PermanentDeliveryError, TransientDeliveryError


class SmtpTransport:
    def __init__(
        self,
        host: str | None,
        port: int,
        sender: str | None,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ):
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings) -> SmtpTransport:
        return cls(
            host=settings.get("SMTP_HOST"),
            port=int(settings.get("SMTP_PORT") or 25),
            sender=settings.get("SMTP_FROM"),
            username=settings.get("SMTP_USER"),
            password=settings.get("SMTP_PASSWORD"),
            starttls=bool(settings.get("SMTP_STARTTLS")),
        )

    @property
    def domain(self) -> str:
        return (self.sender or "localhost").rpartition("@")[2] or "localhost"

    def message_id(self, key: str) -> str:
        """A Message-ID derived from an idempotency key, so a resend carries the same one."""
        safe = "".join(c if c.isalnum() or c in "-._" else "." for c in key)
        return f"<{safe}@{self.domain}>" if key else make_msgid(domain=self.domain)

    def send(self, headers: list[tuple[str, str]], text: str, html: str | None = None) -> str:
        """Send a message with these headers (To among them; From and Message-ID added if
        missing), ``text`` and, if given, ``html`` as its alternative; returns its Message-ID.

        Raises AdapterMisconfiguredError (no host or sender), TransientDeliveryError,
        PermanentDeliveryError.
        """
        if not self.host or not self.sender:
            raise AdapterMisconfiguredError("SMTP_HOST and SMTP_FROM must be set")
        names = {name.lower(): value for name, value in headers}
        if "message-id" not in names:
            names["message-id"] = make_msgid(domain=self.domain)
            headers = [*headers, ("Message-ID", names["message-id"])]
        if "from" not in names:
            headers = [*headers, ("From", self.sender)]
        recipients = _addresses(*(names[h] for h in ("to", "cc") if h in names))
        # As smtplib's send_message: SMTPUTF8 when an envelope address is not ASCII.
        options = () if "".join([*_addresses(self.sender), *recipients]).isascii() else ("SMTPUTF8", "BODY=8BITMIME")
        data = mime(headers, text, html, utf8=bool(options))
        try:
            try:
                self._transaction(recipients, data, options)
            except BaseException:
                self._drop()  # never reuse a session in an unknown state
                raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise _classify(next(iter(exc.recipients.values()))[0], "recipient refused") from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, "SMTP error") from exc
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            # Refused connection, timeout, dropped session: the server may be back later.
            raise TransientDeliveryError(f"SMTP server unreachable: {type(exc).__name__}") from exc
        return names["message-id"]

    def _transaction(self, recipients: list[str], data: bytes, options: tuple[str, ...]) -> None:
        """MAIL, RCPT, DATA as smtplib's sendmail, on this thread's session. A session kept
        from an earlier message is not probed with NOOP first (a round trip per message): if
        the server closed it meanwhile, MAIL fails (closed, or 421) before anything of this
        message was accepted, and MAIL is sent again once on a new session."""
        smtp, kept = getattr(self._local, "smtp", None), True
        if smtp is None:
            smtp, kept = self._session(), False
        try:
            code, reply = self._mail(smtp, len(data), options)
        except (OSError, smtplib.SMTPServerDisconnected):
            if not kept:
                raise
            code, reply = 421, b""
        if code == 421 and kept:  # the kept session was closed by the server: a new one
            self._drop()
            smtp = self._session()
            code, reply = self._mail(smtp, len(data), options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, self.sender)
        refused = {}
        for recipient in recipients:
            code, reply = _command(smtp, "rcpt", recipient)
            if code not in (250, 251):
                refused[recipient] = (code, reply)
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = smtp.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def _mail(self, smtp: smtplib.SMTP, size: int, options: tuple[str, ...]) -> tuple[int, bytes]:
        smtp.ehlo_or_helo_if_needed()
        if smtp.does_esmtp and smtp.has_extn("size"):
            options = (f"size={size}", *options)
        return _command(smtp, "mail", self.sender, options)

    def _session(self) -> smtplib.SMTP:
        """A new session for this thread, kept for its next messages."""
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        self._local.smtp = smtp
        return smtp

    def _drop(self) -> None:
        smtp, self._local.smtp = getattr(self._local, "smtp", None), None
        if smtp is not None:
            smtp.close()


# A bare addr-spec (dot-atom@domain): read as it is, as getaddresses and smtplib's quoteaddr
# would read it, without their character-by-character parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def _addresses(*fields: str) -> list[str]:
    if len(fields) == 1 and _PLAIN.fullmatch(fields[0]):
        return [fields[0]]
    return [address for _, address in getaddresses(fields)]


def _command(smtp: smtplib.SMTP, verb: str, address: str, options: tuple[str, ...] = ()) -> tuple[int, bytes]:
    """MAIL FROM or RCPT TO, as smtplib's ``mail`` and ``rcpt`` send them."""
    if not _PLAIN.fullmatch(address) or any(option.lower() == "smtputf8" for option in options):
        return smtp.mail(address, options) if verb == "mail" else smtp.rcpt(address)
    extra = " " + " ".join(options) if options and smtp.does_esmtp else ""
    smtp.putcmd(verb, f"{'from' if verb == 'mail' else 'TO'}:<{address}>{extra}")
    return smtp.getreply()


def _classify(code: int, what: str) -> Exception:
    if 400 <= code < 500:
        return TransientDeliveryError(f"{what} ({code})")
    return PermanentDeliveryError(f"{what} ({code})")


_MAX_LINE = 78  # the email package's policy.max_line_length (RFC 5322's recommended limit)
_CRLF = "\r\n"


def mime(headers: list[tuple[str, str]], text: str, html: str | None = None, utf8: bool = False) -> bytes:
    """The message as EmailMessage (policy.default) builds it with ``set_content(text)`` and
    ``add_alternative(html, subtype="html")``, flattened for SMTP: bytes with CRLF line ends.
    ``headers`` come first, then MIME-Version and Content-Type (a Content-* header among them
    stays on the message, not on its first part)."""
    lines = [header(name, value, utf8) for name, value in headers]
    cte, body = encode_text(text)
    if html is None:
        lines.append(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
                     + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode("ascii"))
        return b"".join(lines) + body
    html_cte, html_body = encode_text(html)
    boundary = _boundary((body, html_body))
    lines.append(b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n"
                 + f' boundary="{boundary}"\r\n'.encode("ascii"))
    return b"".join([
        *lines, f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
                 f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode("ascii"), body,
        f"\r\n--{boundary}\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
        f"Content-Transfer-Encoding: {html_cte}\r\nMIME-Version: 1.0\r\n\r\n".encode("ascii"), html_body,
        f"\r\n--{boundary}--\r\n".encode("ascii")])


def header(name: str, value: str, utf8: bool = False) -> bytes:
    """One header field, CRLF-terminated. A short printable ASCII value is written as it is
    (the policy would not change it); any other goes through the email package's policy:
    RFC 2047 encoded words, folding, and ValueError for a line break in the value."""
    if value.isascii() and value.isprintable() and len(name) + len(value) + 2 <= _MAX_LINE:
        return f"{name}: {value}\r\n".encode("ascii")
    if name in _UNSTRUCTURED and not utf8:
        words = _encoded_words(value)
        if words is not None:
            return _folded(name, words)
    style = policy.SMTPUTF8 if utf8 else policy.SMTP
    folded = style.header_store_parse(name, value)[1].fold(policy=style)
    return folded.encode("utf-8" if utf8 else "ascii", "surrogateescape")


_UNSTRUCTURED = {"Subject"}  # free text (RFC 5322 §3.6.5): words may be RFC 2047 encoded words
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")  # RFC 2047 §5(3)
_Q_TEXT = 40  # encoded characters per encoded word: the word stays well under 75 (§2)


def _encoded_words(value: str) -> list[str] | None:
    """``value`` as words of unstructured header text: ASCII words as they are, each run of
    words needing encoding as RFC 2047 encoded words (UTF-8, Q), which a reader decodes back
    to exactly ``value``. None for a value this does not handle (leading, trailing or repeated
    spaces, control characters, a very long word): the policy writes those."""
    words = value.split(" ")
    if not value.isprintable() or "" in words or any(len(word) > 60 for word in words):
        return None
    out: list[str] = []
    run: list[str] = []
    for word in [*words, None]:
        if word is not None and (not word.isascii() or "=?" in word):
            run.append(word)
            continue
        if run:  # the spaces inside a run are encoded too ("_"); between encoded words none is read
            out += _q_encoded(" ".join(run))
            run = []
        if word is not None:
            out.append(word)
    return out


def _q_encoded(text: str) -> list[str]:
    words, current = [], ""
    for char in text:
        if char in _Q_SAFE:
            code = char
        elif char == " ":
            code = "_"
        else:
            code = "".join(f"={byte:02X}" for byte in char.encode("utf-8"))
        if len(current) + len(code) > _Q_TEXT:
            words.append(f"=?utf-8?q?{current}?=")
            current = ""
        current += code
    return [*words, f"=?utf-8?q?{current}?="]


def _folded(name: str, words: list[str]) -> bytes:
    """``name: words`` folded before a word that would pass 78 characters (a reader unfolds
    the CRLF and keeps the space)."""
    lines, line = [], f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > _MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    return ("\r\n".join([*lines, line]) + "\r\n").encode("ascii")


def encode_text(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends) as the email package's
    ``set_content(text)`` chooses them (contentmanager._encode_text, policy.default): as is
    (7bit or 8bit) when no line is longer than 78 bytes, else quoted-printable or base64,
    whichever the first ten lines make shorter."""
    lines = text.encode("utf-8").splitlines()
    if max(map(len, lines), default=0) <= _MAX_LINE:
        return ("7bit" if text.isascii() else "8bit"), b"\r\n".join(lines) + b"\r\n"
    sniff = b"\n".join(lines[:10]) + b"\n"
    if len(quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE)) > len(binascii.b2a_base64(sniff)):
        encoded = binascii.b2a_base64(b"\n".join(lines) + b"\n", newline=False).decode("ascii")
        chunks = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]  # 57 bytes a line, as the package
        return "base64", (_CRLF.join(chunks) + _CRLF).encode("ascii")
    encoded = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    return "quoted-printable", (_CRLF.join(encoded.splitlines()) + _CRLF).encode("ascii")


def _boundary(bodies) -> str:
    """A boundary like the email generator's, absent from the bodies."""
    while True:
        boundary = f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="
        if not any(f"--{boundary}".encode("ascii") in body for body in bodies):
            return boundary
