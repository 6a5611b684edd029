"""Staff accounts: hashed passwords (scrypt), sessions, roles."""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .models import ROLES, User

STAFF_ROLES = ROLES


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def add_user(runtime, email: str, role: str, password: str, name: str | None = None,
             department: str | None = None) -> User:
    """Raises ValueError (its text in the page's language) for an unknown role, a short
    password, an existing e-mail, or a department member without one of the city's departments."""
    if role not in ROLES:
        raise ValueError(_l("Unknown role %(role)s (one of: %(roles)s).", role=repr(role), roles=", ".join(ROLES)))
    department = checked_department(runtime, role, department)
    if len(password) < 10:
        raise ValueError(_l("The password must have at least 10 characters."))
    email = email.strip().lower()
    with runtime.db.session() as db:
        if db.scalar(select(User.id).where(User.email == email)) is not None:
            raise ValueError(_l("An account already exists for %(email)s.", email=email))
        user = User(email=email, role=role, password_hash=hash_password(password), name=name, department=department)
        db.add(user)
        db.flush()
        return user


def checked_department(runtime, role: str, department: str | None) -> str | None:
    """The department an account of ``role`` belongs to: one of config/departments.yaml for a
    department member (who sees that department's requests only), none for the other roles."""
    if role != "department":
        return None
    departments = runtime.rules.current.departments
    if not department:
        raise ValueError(_l("A department member needs a department (one of: %(departments)s).",
                            departments=", ".join(sorted(departments))))
    if department not in departments:
        raise ValueError(_l("Unknown department %(department)s (one of: %(departments)s).", department=repr(department),
                            departments=", ".join(sorted(departments))))
    return department


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
