"""Logging that never writes citizens' phone numbers or e-mail addresses.

Log lines carry ids and tracking codes; as a last line of defence this filter masks
anything that looks like an e-mail address or a phone number in every record.
"""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w(-])\+?\(?\d[\d ().-]{8,}\d")  # "(819) 555-0142" whole, its parenthesis too


def mask(text: str, email: str = "<email>", phone: str = "<phone>") -> str:
    """``text`` with what looks like an e-mail address or a phone number replaced."""
    if "@" in text:  # no address without one: most lines (every access line) skip its search
        text = _EMAIL.sub(email, text)
    return _PHONE.sub(lambda m: m.group(0) if _is_code_or_date(m.group(0)) else phone, text)


def _is_code_or_date(text: str) -> bool:
    # Tracking codes (2026-4821735) and ISO dates are not phone numbers.
    return bool(re.fullmatch(r"\d{4}-\d{7}|\d{4}-\d{2}-\d{2}.*", text))


_base_factory = logging.getLogRecordFactory()


def _masking_factory(*args, **kwargs) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    # Kept formatted: the handler's formatter then reads the message instead of formatting it
    # again (an access line's dozen fields: 5 % of a webhook's CPU, docs/benchmarks.md §1).
    record.msg, record.args = mask(record.getMessage()), None
    return record


def configure(level: str) -> None:
    """Every record of every logger is masked at creation, whatever handler writes it."""
    logging.setLogRecordFactory(_masking_factory)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "httpx", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
