"""Staff accounts and signing in through the HTML forms, for the inbox and console tests."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from gateway import intake
from gateway.auth import add_user
from gateway.models import Request
from tests.conftest import FIXTURES

PASSWORD = "un mot de passe solide"


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def make_user(runtime, role: str, email: str | None = None, department: str | None = None) -> str:
    email = email or f"{role}@bellerive.example.org"
    if role == "department" and department is None:
        department = "travaux_publics"
    add_user(runtime, email, role, PASSWORD, name=role.capitalize(), department=department)
    return email


def sign_in(client, email: str, password: str = PASSWORD):
    token = csrf(client.get("/inbox/login").get_data(as_text=True))
    return client.post("/inbox/login", data={"email": email, "password": password, "csrf_token": token})


def post_form(client, url: str, data: dict, page: str | None = None):
    """POST ``data`` with the CSRF token of ``page`` (or of ``url``'s own page)."""
    token = csrf(client.get(page or url).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / "web_form" / f"{name}.json").read_text())


def submit(runtime, document: dict) -> str:
    return intake.submit(runtime, document).code


def get_request(runtime, code: str) -> Request:
    with runtime.db.session() as db:
        return db.scalar(select(Request).where(Request.code == code))


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)
