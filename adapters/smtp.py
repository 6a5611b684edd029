"""A small SMTP transport shared by the e-mail sink and the e-mail channel.

Classifies every failure for the outbox: a server that cannot be reached, a timeout or a
4xx reply is transient (retried with backoff); a 5xx reply for the recipient or the message
is permanent (dead letter). See RFC 5321 §4.2.1 for the reply-code classes.

Each thread keeps its SMTP session open between messages (checked with NOOP before reuse,
dropped after any error): connecting, greeting and EHLO cost more than sending a message.
"""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage
from email.utils import make_msgid

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

    def send(self, message: EmailMessage) -> str:
        """Send ``message``; returns its Message-ID.

        Raises AdapterMisconfiguredError (no host or sender), TransientDeliveryError,
        PermanentDeliveryError.
        """
        if not self.host or not self.sender:
            raise AdapterMisconfiguredError("SMTP_HOST and SMTP_FROM must be set")
        if "From" not in message:
            message["From"] = self.sender
        if "Message-ID" not in message:
            message["Message-ID"] = make_msgid(domain=self.domain)
        try:
            try:
                self._session().send_message(message)
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
        return str(message["Message-ID"])

    def _session(self) -> smtplib.SMTP:
        """This thread's open session if the server still answers NOOP, else a new one."""
        smtp = getattr(self._local, "smtp", None)
        if smtp is not None:
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except (OSError, smtplib.SMTPException):
                pass  # closed by the server while idle: open another
            self._drop()
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


def _classify(code: int, what: str) -> Exception:
    if 400 <= code < 500:
        return TransientDeliveryError(f"{what} ({code})")
    return PermanentDeliveryError(f"{what} ({code})")
