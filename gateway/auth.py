"""Staff accounts: hashed passwords (scrypt), sessions, roles."""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .models import ROLES, User

STAFF_ROLES = ROLES


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def add_user(runtime, email: str, role: str, password: str, name: str | None = None) -> User:
    """Raises ValueError for an unknown role, a short password or an existing e-mail."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    email = email.strip().lower()
    with runtime.db.session() as db:
        if db.scalar(select(User.id).where(User.email == email)) is not None:
            raise ValueError(f"an account already exists for {email}")
        user = User(email=email, role=role, password_hash=hash_password(password), name=name)
        db.add(user)
        db.flush()
        return user


def authenticate(runtime, email: str, password: str) -> User | None:
    with runtime.db.session() as db:
        user = db.scalar(select(User).where(User.email == email.strip().lower(), User.active.is_(True)))
    if user is None or not check_password_hash(user.password_hash, password):
        return None
    return user


def current_user() -> User | None:
    if "user" not in g:
        g.user = None
        user_id = session.get("user_id")
        if user_id is not None:
            with current_app.extensions["runtime"].db.session() as db:
                g.user = db.get(User, user_id)
    return g.user


def require_role(*roles: str):
    """Only signed-in staff with one of ``roles`` (all staff roles when none given)."""
    allowed = roles or STAFF_ROLES

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None or not user.active:
                return redirect(url_for("inbox.login", next=request.full_path))
            if user.role not in allowed:
                abort(403)  # the error page says whose page it is (app._register_errors)
            return view(*args, **kwargs)

        return wrapper

    return decorate
