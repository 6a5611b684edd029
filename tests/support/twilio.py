"""A local stand-in for Twilio's REST API, and helpers to sign and post webhook fixtures.

The stand-in answers as Twilio documents: POST …/Messages.json → 201 with the message
resource (sid, status "queued"), errors as {"code", "message", "status"}; GET on a media or
recording URL → the bytes, behind HTTP basic auth. It records every request it receives.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-twilio-auth-token"
FROM_NUMBER = "+18195550100"
PUBLIC_URL = "http://127.0.0.1:8311"


@dataclass
class Received:
    method: str
    path: str
    form: dict[str, list[str]]
    auth: tuple[str, str] | None
    headers: dict[str, str] = field(default_factory=dict)


class TwilioStandIn:
    def __init__(self):
        self.requests: list[Received] = []
        self.media: dict[str, tuple[bytes, str]] = {}  # path → (content, content type)
        self.failures: list[tuple[int, dict]] = []  # next answers to POST Messages, then 201
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _auth(self):
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user, password

            def _answer(self, status: int, body: bytes, content_type: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                stand_in._record(self, {})
                if self._auth() != (ACCOUNT_SID, AUTH_TOKEN):
                    return self._answer(401, b'{"code": 20003, "message": "Authenticate", "status": 401}')
                if self.path not in stand_in.media:
                    return self._answer(404, b'{"code": 20404, "message": "Not found", "status": 404}')
                content, kind = stand_in.media[self.path]
                self._answer(200, content, kind)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                stand_in._record(self, form)
                if self._auth() != (ACCOUNT_SID, AUTH_TOKEN):
                    return self._answer(401, b'{"code": 20003, "message": "Authenticate", "status": 401}')
                with stand_in._lock:
                    failure = stand_in.failures.pop(0) if stand_in.failures else None
                if failure:
                    return self._answer(failure[0], json.dumps(failure[1]).encode())
                sid = "SM" + uuid.uuid4().hex
                resource = {"sid": sid, "account_sid": ACCOUNT_SID, "to": form["To"][0],
                            "from": form.get("From", [None])[0], "body": form["Body"][0], "status": "queued",
                            "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
                            "api_version": "2010-04-01", "num_segments": "1", "direction": "outbound-api",
                            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"}
                self._answer(201, json.dumps(resource).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, handler, form) -> None:
        with self._lock:
            self.requests.append(Received(handler.command, handler.path, form, handler._auth(), dict(handler.headers)))

    def start(self) -> TwilioStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sent(self, to: str | None = None) -> list[dict[str, str]]:
        """The messages the gateway asked Twilio to send (form fields, first value each)."""
        with self._lock:
            found = [{k: v[0] for k, v in r.form.items()} for r in self.requests
                     if r.method == "POST" and r.path.endswith("/Messages.json")]
        return [m for m in found if to is None or m.get("To") == to]


def twilio_settings(stand_in: TwilioStandIn | None) -> dict:
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "TWILIO_API_BASE": stand_in.url if stand_in else "http://127.0.0.1:9", "GATEWAY_PUBLIC_URL": PUBLIC_URL}


def load(folder: str, name: str) -> dict:
    return json.loads((FIXTURES / folder / f"{name}.json").read_text(encoding="utf-8"))


def sign(url: str, params: dict, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, MultiDict(params))


def post(client, fixture: dict, replace: dict | None = None, signature: str | None = "sign", path: str | None = None,
         token: str = AUTH_TOKEN, content_type: str = "application/x-www-form-urlencoded"):
    """Post a fixture's params signed for GATEWAY_PUBLIC_URL + its path (or ``path``)."""
    params = {k: _fill(v, replace or {}) for k, v in fixture["params"].items()}
    target = path or fixture["path"]
    headers = {}
    if signature == "sign":
        headers["X-Twilio-Signature"] = sign(PUBLIC_URL + fixture["path"], params, token)
    elif signature:
        headers["X-Twilio-Signature"] = signature
    return client.post(target, data=urlencode(params), content_type=content_type, headers=headers)


def _fill(value: str, replace: dict) -> str:
    for key, new in replace.items():
        value = value.replace("{" + key + "}", new)
    return value
