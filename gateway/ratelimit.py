"""Slows down password guessing: a few failed sign-ins per address and per account, then wait.

Failures are kept in the database (login_failures), so every web process and machine counts
the same ones. Keys for accounts are hashed: the table holds no e-mail address.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete, func, select

from .models import LoginFailure, utcnow

WINDOW = timedelta(minutes=15)
IP_FACTOR = 4


def keys(remote_addr: str | None, email: str) -> list[str]:
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]
    return [f"ip:{remote_addr or '-'}", f"email:{account}"]


def blocked(session, keys_: list[str], limit: int) -> bool:
    """True when the account has had ``limit`` failures within the window, or the address
    four times as many (several agents may share one address behind the city's proxy)."""
    since = utcnow() - WINDOW
    for key in keys_:
        failures = session.scalar(select(func.count()).select_from(LoginFailure)
                                  .where(LoginFailure.key == key, LoginFailure.at >= since))
        if failures >= (limit * IP_FACTOR if key.startswith("ip:") else limit):
            return True
    return False


def record_failure(session, keys_: list[str]) -> None:
    now = utcnow()
    session.add_all([LoginFailure(key=key, at=now) for key in keys_])
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - WINDOW))


def forget(session, keys_: list[str]) -> None:
    """After a successful sign-in, the account's failures no longer count."""
    session.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys_[1:])))
