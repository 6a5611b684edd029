"""Who may see and do what in the inbox and the console (privacy by role).

Citizens' contact points and names are personal data: only the people who answer them see
them. Addresses are needed by the crews who fix things, so departments see them too; managers
and read-only readers (the ombudsman) read the history without who wrote it or where they live.
A department member sees their own department's requests only.
"""

from __future__ import annotations

from sqlalchemy import false

from .models import Request

ANSWERS_CITIZENS = ("agent", "supervisor", "admin")  # reply, reroute, assign, merge, spam, walk-in
REPORTS_PROGRESS = ANSWERS_CITIZENS + ("department",)  # change status, internal notes
SEES_CONTACTS = ANSWERS_CITIZENS
SEES_ADDRESS = ANSWERS_CITIZENS + ("department",)
ADMINISTERS = ("admin",)


def can(user, roles: tuple[str, ...]) -> bool:
    return user is not None and user.active and user.role in roles


def scope(user) -> list:
    """The conditions on requests a user may see at all: a department member, their
    department's (none while their account has no department); everyone else, every request."""
    if user is None or user.role != "department":
        return []
    return [Request.department == user.department] if user.department else [false()]


def may_see(user, request) -> bool:
    return user is not None and (user.role != "department" or
                                 (user.department is not None and request.department == user.department))
