"""A local stand-in for Twilio's REST API, and helpers to sign and post webhook fixtures.

The stand-in answers as Twilio documents: POST …/Messages.json → 201 with the message
resource (sid, status "queued", ``date_created`` in RFC 2822), errors as {"code", "message",
"status"}; GET …/Messages.json → a page of the messages it holds, newest first, filtered by
``To`` and ``From`` (``PageSize``, ``Page``; the ``DateSent`` filters are not honoured), as
https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
shows it; GET on a media or recording URL → the bytes, behind HTTP basic auth. It records
every request it receives. Faults: ``failures`` (answers to the next POSTs), ``list_failures``
(to the next GETs of the list), ``drop_answers`` (the next POSTs are accepted, the message
kept, and the connection closed without an answer: what a sender sees when it is killed or
the network fails after Twilio took the message).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-twilio-auth-token"
FROM_NUMBER = "+18195550100"
PUBLIC_URL = "http://127.0.0.1:8311"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


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
        self.list_failures: list[tuple[int, dict]] = []  # next answers to GET Messages, then 200
        self.drop_answers = 0  # the next POST Messages accepted, then the connection closed unanswered
        self.messages: list[dict] = []  # the message resources held (accepted or added), oldest first
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
                path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
                stand_in._record(self, query)
                if self._auth() != (ACCOUNT_SID, AUTH_TOKEN):
                    return self._answer(401, b'{"code": 20003, "message": "Authenticate", "status": 401}')
                if path == MESSAGES:
                    with stand_in._lock:
                        failure = stand_in.list_failures.pop(0) if stand_in.list_failures else None
                    if failure:
                        return self._answer(failure[0], json.dumps(failure[1]).encode())
                    return self._answer(200, json.dumps(stand_in._page(query)).encode())
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
                resource = stand_in.add_message(form["To"][0], form["Body"][0], status="queued",
                                                from_=form.get("From", [None])[0],
                                                service=form.get("MessagingServiceSid", [None])[0])
                with stand_in._lock:
                    dropped, stand_in.drop_answers = stand_in.drop_answers > 0, max(stand_in.drop_answers - 1, 0)
                if dropped:  # accepted and kept, but the sender never hears of it
                    self.close_connection = True
                    return
                self._answer(201, json.dumps(resource).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, handler, form) -> None:
        with self._lock:
            self.requests.append(Received(handler.command, handler.path, form, handler._auth(), dict(handler.headers)))

    def add_message(self, to: str, body: str, status: str = "delivered", from_: str | None = FROM_NUMBER,
                    service: str | None = None, created: datetime | None = None,
                    direction: str = "outbound-api") -> dict:
        """Hold a message resource as Twilio would (one the gateway sent, or any other)."""
        created = created or datetime.now(UTC)
        sid = "SM" + uuid.uuid4().hex
        resource = {"sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from_, "body": body,
                    "status": status, "messaging_service_sid": service, "direction": direction,
                    "date_created": format_datetime(created), "date_updated": format_datetime(created),
                    "date_sent": None if status in ("queued", "accepted", "scheduled") else format_datetime(created),
                    "api_version": "2010-04-01", "num_segments": "1", "num_media": "0", "price": None,
                    "price_unit": "USD", "error_code": None, "error_message": None,
                    "uri": f"{MESSAGES[:-5]}/{sid}.json",
                    "subresource_uris": {"media": f"{MESSAGES[:-5]}/{sid}/Media.json"}}
        with self._lock:
            self.messages.append(resource)
        return resource

    def _page(self, query: dict[str, list[str]]) -> dict:
        """One page of the list, newest first (Twilio sorts by DateSent; a queued message has none
        yet: its creation stands in for it)."""
        size = min(int(query.get("PageSize", ["50"])[0]), 1000)
        number = int(query.get("Page", ["0"])[0])
        wanted = {name: query[name][0] for name in ("To", "From") if name in query}
        with self._lock:
            held = list(enumerate(self.messages))
        found = [m for _, m in sorted(held, key=lambda item: (_when(item[1]), item[0]), reverse=True)
                 if all(m[name.lower()] == value for name, value in wanted.items())]
        chunk = found[number * size:(number + 1) * size]

        def uri(page: int) -> str:
            return f"{MESSAGES}?{urlencode({**wanted, 'PageSize': size, 'Page': page})}"

        more = len(found) > (number + 1) * size
        return {"messages": chunk, "uri": uri(number), "first_page_uri": uri(0),
                "next_page_uri": uri(number + 1) if more else None,
                "previous_page_uri": uri(number - 1) if number else None,
                "page": number, "page_size": size, "start": number * size, "end": number * size + len(chunk) - 1}

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


def _when(message: dict) -> datetime:
    return parsedate_to_datetime(message["date_sent"] or message["date_created"])


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
