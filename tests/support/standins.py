"""Local stand-ins for departments' tools: Slack's Web API, an Open311 server, a webhook receiver.

Each is a real HTTP server on a free 127.0.0.1 port that records every request (method,
path, query, headers, body) and answers as the real service documents. A test can script
the next answers of a path (``fail_next``) with a failure: a status code with a body and
headers (429 + Retry-After, 500, 400…), a body that is not JSON, a hang longer than the
client's timeout, or a connection closed without an answer; with ``act`` the server first
does what the request asks (an Open311 request is created) and the failure comes after.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from adapters.signing import verify

SAMPLE_CONFIG = Path(__file__).resolve().parent.parent.parent / "config"
TRANSIT_URL = "https://transit.bellerive.example.org/311/requests"
GEOREPORT_SPAN = timedelta(days=90)  # the longest span GET requests.json searches


def sample_config(folder: Path, departments: dict[str, str]) -> Path:
    """A copy of the sample city in ``folder``, with text replaced in departments.yaml
    (to point a department's sink at a local stand-in)."""
    shutil.copytree(SAMPLE_CONFIG, folder)
    path = folder / "departments.yaml"
    text = path.read_text()
    for old, new in departments.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return folder


def works_with_open311(folder: Path, endpoint: str, key_env: str, options: str = "") -> Path:
    """The sample city whose public works also receive their requests on an Open311 server
    (``endpoint``; the API key in ``key_env``), beside their e-mail; ``options``: more keys of
    the sink (``"updates: true, "``)."""
    email = "      - {type: email_smtp, to: travaux.publics@bellerive.example.org}\n"
    sink = (f'      - {{type: open311, endpoint: "{endpoint}", api_key_env: {key_env}, {options}'
            f'service_codes: {{pothole: "POTHOLE", graffiti: "GRAFFITI"}}}}\n')
    return sample_config(folder, {email: email + sink})


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (a server that hangs)
    act: bool = False  # do what the request asks first (its usual answer's side effects), then answer this
    drop: bool = False  # close the connection without answering (the client cannot know what happened)


class StandIn:
    """A recording HTTP server; subclasses implement ``answer(recorded)``."""

    def __init__(self, port: int = 0):
        self.requests: list[Recorded] = []
        self.scripted: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                recorded = Recorded(self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                with outer._lock:
                    outer.requests.append(recorded)
                    queue = outer.scripted.get(parts.path) or []
                    answer = queue.pop(0) if queue else None
                if answer is None or answer.act:
                    usual = outer.answer(recorded)
                    answer = answer or usual
                if answer.hang:
                    time.sleep(answer.hang)
                if answer.drop:
                    self.close_connection = True
                    return
                body = answer.body
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                elif isinstance(body, str):
                    body = body.encode()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is what the test wanted

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def answer(self, recorded: Recorded) -> Answer:
        return Answer(404, {"error": "not found"})

    def fail_next(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self.scripted.setdefault(path, []).extend(answers)

    def to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlackStandIn(StandIn):
    """Slack's Web API as documented: HTTP 200 with ``ok`` true/false; checks the bot token."""

    def __init__(self, token: str = "xoxb-test-token"):
        super().__init__()
        self.token = token
        self._ts = itertools.count(1)
        self.history: dict[str, list[dict]] = {}  # channel -> messages, newest first

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return Answer(200, {"ok": False, "error": "invalid_auth"})
        document = recorded.json() if recorded.body.startswith(b"{") else {**recorded.query, **recorded.form()}
        channel = document.get("channel")
        if recorded.path == "/api/chat.postMessage":
            ts = f"1764000000.{next(self._ts):06d}"
            message = {"type": "message", "ts": ts, "text": document.get("text")}
            if document.get("metadata"):
                message["metadata"] = document["metadata"]
            with self._lock:
                self.history.setdefault(channel, []).insert(0, message)
            return Answer(200, {"ok": True, "channel": channel, "ts": ts, "message": message})
        if recorded.path == "/api/conversations.history":
            with self._lock:
                messages = list(self.history.get(channel, []))
            if document.get("include_all_metadata") not in (True, "true", "1", 1):
                messages = [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
            return Answer(200, {"ok": True, "messages": messages[: int(document.get("limit") or 100)],
                                "has_more": False})
        if recorded.path == "/api/chat.update":
            return Answer(200, {"ok": True, "channel": channel, "ts": document.get("ts"), "text": document.get("text")})
        return Answer(200, {"ok": False, "error": "unknown_method"})

    def posts(self) -> list[dict]:
        return [r.json() for r in self.to("/api/chat.postMessage")]

    def updates(self) -> list[dict]:
        return [r.json() for r in self.to("/api/chat.update")]


class Open311StandIn(StandIn):
    """A department's GeoReport v2 server under /v2: creates requests, answers searches of
    them (GET requests.json), lets tests set status."""

    def __init__(self, api_key: str = "dept-api-key", records: dict | None = None, tokens: bool = False):
        super().__init__()
        self.api_key = api_key
        self.tokens = tokens
        self.records = records or {}
        self.created: dict[str, dict] = {}  # service_request_id -> the request object served
        self.pending_tokens: dict[str, str | None] = {}
        self.update_items: list[dict] = []
        self._ids = itertools.count(900001)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v2"

    def set_status(self, rid: str, status: str, notes: str | None = None) -> None:
        with self._lock:
            self.created[rid].update(status=status, status_notes=notes, updated_datetime="2026-11-22T10:00:00-05:00")

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.method == "POST" and recorded.path == "/v2/requests.json":
            form = recorded.form()
            if form.get("api_key") != self.api_key:
                return Answer(403, [{"code": 403, "description": "Invalid api_key"}])
            if not form.get("service_code"):
                return Answer(400, [{"code": 400, "description": "service_code is required"}])
            rid = str(next(self._ids))
            template = self.records.get("open", {})
            self.created[rid] = {**template, "service_request_id": rid, "status": "open", "status_notes": None,
                                 "service_code": form["service_code"], "description": form.get("description"),
                                 "requested_datetime": datetime.now(UTC).isoformat(timespec="seconds")}
            if self.tokens:
                token = f"tok-{rid}"
                self.pending_tokens[token] = None
                return Answer(201, [{"token": token}])
            return Answer(201, [{"service_request_id": rid, "service_notice": "Merci", "account_id": None}])
        if recorded.method == "GET" and recorded.path.startswith("/v2/tokens/"):
            token = recorded.path.rsplit("/", 1)[1].removesuffix(".json")
            return Answer(200, [{"token": token, "service_request_id": self.pending_tokens.get(token)}])
        if recorded.method == "GET" and recorded.path == "/v2/requests.json":
            return self._search(recorded.query)
        if recorded.method == "GET" and recorded.path == "/v2/servicerequestupdates.xml":
            items = "".join(
                "<request_update>" + "".join(f"<{k}>{v}</{k}>" for k, v in item.items()) + "</request_update>"
                for item in self.update_items)
            return Answer(200, f"<?xml version='1.0' encoding='utf-8'?><service_requests_updates>{items}"
                               "</service_requests_updates>", {"Content-Type": "text/xml; charset=utf-8"})
        return Answer(404, [{"code": 404, "description": "not found"}])

    def _search(self, query: dict) -> Answer:
        """GET requests.json as GeoReport v2 documents it: ``service_request_id`` (a comma list)
        overrides every other filter; else ``service_code`` (a comma list) and a span of
        ``requested_datetime`` from ``start_date`` to ``end_date``, 90 days at most, the last 90
        days when neither is given. Newest first."""
        with self._lock:
            rows = list(self.created.values())
        if query.get("service_request_id"):
            wanted = query["service_request_id"].split(",")
            return Answer(200, [r for r in rows if r["service_request_id"] in wanted])
        try:
            start, end = _span(query.get("start_date"), query.get("end_date"))
        except ValueError as exc:
            return Answer(400, [{"code": 400, "description": str(exc)}])
        codes = {c for c in (query.get("service_code") or "").split(",") if c}
        found = [r for r in rows if (not codes or r["service_code"] in codes)
                 and start <= datetime.fromisoformat(r["requested_datetime"]) <= end]
        return Answer(200, found[::-1])


def _span(raw_start: str | None, raw_end: str | None) -> tuple[datetime, datetime]:
    """Raises ValueError for a date that is not ISO 8601 or a span over 90 days."""
    start, end = (_moment(raw) if raw else None for raw in (raw_start, raw_end))
    if start is None and end is None:
        end = datetime.now(UTC)
    start = start or end - GEOREPORT_SPAN
    end = end or start + GEOREPORT_SPAN
    if end - start > GEOREPORT_SPAN:
        raise ValueError("start_date and end_date may not span more than 90 days")
    return start, end


def _moment(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DepartmentWebhook(StandIn):
    """A department's receiver: checks the gateway signature, drops idempotency keys it has seen.

    ``hold`` (a threading.Event) makes it keep the next delivery open until set: a test can
    kill the gateway's worker while the department holds the request.
    """

    def __init__(self, secret: str, port: int = 0):
        super().__init__(port)
        self.secret = secret
        self.accepted: list[str] = []  # idempotency keys acted upon, in order
        self.hold: threading.Event | None = None
        self.held: threading.Event | None = None
        self.holding = threading.Event()

    def release(self) -> None:
        """Let go of a held delivery (its client, killed, will never read the answer)."""
        if self.held is not None:
            self.held.set()

    def answer(self, recorded: Recorded) -> Answer:
        try:
            verify(self.secret, recorded.body, {"X-Gateway-Timestamp": recorded.headers.get("x-gateway-timestamp"),
                                                "X-Gateway-Signature": recorded.headers.get("x-gateway-signature")})
        except Exception as exc:
            return Answer(401, {"error": str(exc)})
        if self.hold is not None:
            self.held, self.hold = self.hold, None
            self.holding.set()
            self.held.wait(60)
            return Answer(503, {"error": "the connection was abandoned"})
        key = recorded.headers.get("idempotency-key")
        with self._lock:
            if key in self.accepted:
                return Answer(200, {"id": f"WO-{self.accepted.index(key) + 1}", "duplicate": True})
            self.accepted.append(key)
            return Answer(201, {"id": f"WO-{len(self.accepted)}"})
