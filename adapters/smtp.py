"""A small SMTP transport shared by the e-mail sink and the e-mail channel.

Classifies every failure for the outbox: a server that cannot be reached, a timeout or a
4xx reply is transient (retried with backoff); a 5xx reply for the recipient or the message
is permanent (dead letter). See RFC 5321 §4.2.1 for the reply-code classes.

Each thread keeps its SMTP session open between messages (dropped after any error; one the
server closed while idle is replaced when MAIL fails on it, before anything was accepted):
connecting, greeting and EHLO cost more than sending a message.

Messages are built by the email package's compat32 classes (``mime``: MIMEMultipart,
MIMEText with a UTF-8 quoted-printable charset, Header), the cheapest of its ways measured
(docs/benchmarks.md §3): EmailMessage's header parsing and content manager cost about three
times as much CPU. tests/sinks/test_smtp_mime.py checks that a recipient reads what the
EmailMessage code sent before.
"""

from __future__ import annotations

import random
import smtplib
import sys
import threading
from email import policy
from email.charset import BASE64, QP, Charset
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, getaddresses, make_msgid
from functools import lru_cache

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

    def _transaction(self, recipients: tuple[str, ...], data: bytes, options: tuple[str, ...]) -> None:
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
            code, reply = smtp.rcpt(recipient)
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
        return smtp.mail(self.sender, options)

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


@lru_cache(maxsize=1024)
def _addresses(*fields: str) -> tuple[str, ...]:
    """The addresses in these header values (remembered: the sender's and a department's
    recur in every message)."""
    return tuple(address for _, address in getaddresses(fields))


def _classify(code: int, what: str) -> Exception:
    if 400 <= code < 500:
        return TransientDeliveryError(f"{what} ({code})")
    return PermanentDeliveryError(f"{what} ({code})")


_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # 7-bit lines of at most 76 characters: no 8BITMIME needed, no 998-byte limit to watch
_UTF8.header_encoding = BASE64  # "B" encoded words: Header splits Q words by re-measuring each longer prefix


class _Compat32(policy.Compat32):
    """compat32 with CRLF line ends (smtplib sends bytes as they are), its folding of a text
    header value remembered: the same fields recur in every message (From, Reply-To,
    MIME-Version, each part's Content-Type and Content-Transfer-Encoding, a department's
    address), and compat32 folds each by building a Header and splitting it again (about half
    of a message's CPU). The folded bytes are the library's own, computed once per value.
    (The generator clones the policy for each part: the cache is the module's, for this
    policy's settings only.)"""

    def fold_binary(self, name, value):
        if type(value) is str and _settings(self) == _REFERENCE:
            return _folded(name, value)
        return super().fold_binary(name, value)  # a Header (encoded words): not hashable


_PLAIN_CRLF = policy.compat32.clone(linesep="\r\n")


def _settings(compat32: policy.Compat32) -> tuple:
    """What the folding of a header depends on, besides the header."""
    return compat32.linesep, compat32.max_line_length, compat32.cte_type


_REFERENCE = _settings(_PLAIN_CRLF)


@lru_cache(maxsize=512)
def _folded(name: str, value: str) -> bytes:
    return _PLAIN_CRLF.fold_binary(name, value)


_CRLF = _Compat32(linesep="\r\n")
_ADDRESS_FIELDS = {"from", "to", "cc", "reply-to"}


def mime(headers: list[tuple[str, str]], text: str, html: str | None = None, utf8: bool = False) -> bytes:
    """The message built by the email package, flattened for SMTP (CRLF line ends): ``text``
    as a text/plain part in UTF-8 (quoted-printable), and ``html``, if given, as its
    text/html alternative. Raises ValueError for a line break in a header value.

    The compat32 classes (MIMEText, MIMEMultipart, Header): EmailMessage's header parsing,
    folding and content manager cost about three times their CPU (docs/benchmarks.md §3).
    With an address that is not ASCII (``utf8``: SMTPUTF8), EmailMessage and
    policy.SMTPUTF8 write the headers in UTF-8 as RFC 6532 wants."""
    for name, value in headers:
        if "\r" in value or "\n" in value:
            raise ValueError(f"line break in the {name} header")
    if utf8:
        return _international(headers, text, html)
    message = MIMEText(text, "plain", _UTF8)
    if html is not None:
        message = MIMEMultipart("alternative", boundary=_boundary(), _subparts=[message, MIMEText(html, "html", _UTF8)])
    for name, value in headers:
        message[name] = _header(name, value)
    return message.as_bytes(policy=_CRLF)


def _boundary() -> str:
    """A random boundary shaped as the generator's own. The generator, given none, checks its
    choice against the parts' text with a regular expression compiled for each message (~15 %
    of a citizen message's CPU); here that cannot match: the parts are quoted-printable, where
    "=" is always followed by two hexadecimal digits or a line end, never by "=" as in
    "--===============…"."""
    return f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="


def _header(name: str, value: str) -> str | Header:
    """ASCII as it is (folded by the generator); otherwise RFC 2047 encoded words (UTF-8, B):
    for an address field only its display names (formataddr), for any other the whole value.
    ASCII that looks like an encoded word is encoded too, so it reads back as written."""
    if value.isascii() and "=?" not in value:
        return value
    if name.lower() in _ADDRESS_FIELDS:
        return ", ".join(formataddr(pair, _UTF8) for pair in getaddresses([value]))
    return Header(value, _UTF8, header_name=name)


def _international(headers: list[tuple[str, str]], text: str, html: str | None) -> bytes:
    message = EmailMessage(policy=policy.SMTPUTF8)
    message.set_content(text)  # before the headers: it would drop a Content-Language
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, value in headers:
        message[name] = value
    return message.as_bytes()
