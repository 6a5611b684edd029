"""Local stand-ins for the Graph API (Messenger) and the Telegram Bot API.

Small threaded HTTP/1.1 servers that keep connections alive (as the real APIs do: a stand-in
that closes every connection hides client bugs such as a Bot reused across event loops),
record every request, and answer as the providers document. ``fail_next`` queues an error
answer for one method, to test retries and dead letters.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    client: tuple  # (host, port): the same port twice means a kept-alive connection
    data: dict = field(default_factory=dict)  # JSON or form fields, flattened


class StandIn:
    """Base: serves ``handle(recorded) -> (status, body bytes, content type, headers)``."""

    def __init__(self):
        self.requests: list[Recorded] = []
        self.failures: dict[str, list[tuple[int, dict, dict]]] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                owner._serve(self, "GET")

            def do_POST(self):
                owner._serve(self, "POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, method: str, status: int, body: dict, headers: dict | None = None) -> None:
        with self._lock:
            self.failures.setdefault(method, []).append((status, body, headers or {}))

    def calls(self, method: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.rsplit("/", 1)[-1] == method]

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        recorded = Recorded(method, unquote(parts.path), {k: v[0] for k, v in parse_qs(parts.query).items()},
                            dict(handler.headers), body, handler.client_address, _fields(handler.headers, body))
        with self._lock:
            self.requests.append(recorded)
            queued = self.failures.get(recorded.path.rsplit("/", 1)[-1])
            failure = queued.pop(0) if queued else None
        if failure is not None:
            status, payload, headers = failure
            content, content_type = json.dumps(payload).encode(), "application/json"
        else:
            status, content, content_type, headers = self.handle(recorded)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(content)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(content)

    def handle(self, recorded: Recorded):
        raise NotImplementedError


def _fields(headers, body: bytes) -> dict:
    kind = headers.get("Content-Type", "")
    if "json" in kind and body:
        return json.loads(body)
    if "x-www-form-urlencoded" in kind:
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}
    return {}


def _json(status: int, payload) -> tuple:
    return status, json.dumps(payload).encode(), "application/json", {}


class GraphApiStandIn(StandIn):
    """``POST /{version}/me/messages`` (Send API) and a CDN serving ``files`` at /cdn/<name>."""

    def __init__(self, page_token: str):
        super().__init__()
        self.page_token = page_token
        self.files: dict[str, tuple[bytes, str]] = {}
        self._sent = 0

    def sent(self) -> list[Recorded]:
        return self.calls("messages")

    def handle(self, recorded: Recorded):
        if recorded.method == "GET" and recorded.path.startswith("/cdn/"):
            found = self.files.get(recorded.path.removeprefix("/cdn/"))
            return (200, found[0], found[1], {}) if found else _json(404, {"error": "not found"})
        if recorded.method == "POST" and recorded.path.endswith("/me/messages"):
            if recorded.query.get("access_token") != self.page_token:
                return _json(400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                             "code": 190, "fbtrace_id": "Atest"}})
            with self._lock:
                self._sent += 1
                number = self._sent
            return _json(200, {"recipient_id": recorded.data["recipient"]["id"], "message_id": f"m_sent_{number}"})
        return _json(404, {"error": {"message": "Unknown path", "code": 803}})


class BotApiStandIn(StandIn):
    """``/bot<token>/<method>`` (getMe, sendMessage, getFile, setWebhook) and
    ``/file/bot<token>/<path>`` serving ``files`` by file id."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token
        self.files: dict[str, tuple[bytes, str]] = {}  # file id -> (bytes, file_path)
        self._next_message = 100

    def messages_to(self, chat_id) -> list[str]:
        return [r.data["text"] for r in self.calls("sendMessage") if str(r.data.get("chat_id")) == str(chat_id)]

    def handle(self, recorded: Recorded):
        prefix, file_prefix = f"/bot{self.token}/", f"/file/bot{self.token}/"
        if recorded.path.startswith(file_prefix):
            wanted = recorded.path.removeprefix(file_prefix)
            data = next((data for data, path in self.files.values() if path == wanted), None)
            return (200, data, "application/octet-stream", {}) if data is not None else _json(404, {"ok": False})
        if not recorded.path.startswith(prefix):
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = recorded.path.removeprefix(prefix)
        if method == "getFile" and recorded.data.get("file_id") not in self.files:
            return _json(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"})
        return _json(200, {"ok": True, "result": self._result(method, recorded.data)})

    def _result(self, method: str, data: dict):
        if method == "getMe":
            return {"id": 5550199, "is_bot": True, "first_name": "Bellerive 311", "username": "bellerive311_bot"}
        if method == "sendMessage":
            with self._lock:
                self._next_message += 1
                number = self._next_message
            return {"message_id": number, "date": int(time.time()), "text": data.get("text", ""),
                    "chat": {"id": int(data["chat_id"]), "type": "private"}}
        if method == "getFile":
            content, path = self.files[data["file_id"]]
            return {"file_id": data["file_id"], "file_unique_id": data["file_id"][-8:], "file_size": len(content),
                    "file_path": path}
        if method in ("setWebhook", "deleteWebhook"):
            return True
        return None
