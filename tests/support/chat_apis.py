"""Local stand-ins for the Graph API (Messenger) and the Telegram Bot API.

Small threaded HTTP/1.1 servers that keep connections alive (as the real APIs do: a stand-in
that closes every connection hides client bugs such as a Bot reused across event loops),
record every request, and answer as the providers document. ``fail_next`` queues an error
answer for one method, to test retries and dead letters (a ``bytes`` body is sent as it is:
an answer that is not JSON); ``drop_next`` closes the connection instead of answering, the
request not acted upon.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

    def fail_next(self, method: str, status: int, body: dict | bytes, headers: dict | None = None) -> None:
        with self._lock:
            self.failures.setdefault(method, []).append((status, body, headers or {}))

    def drop_next(self, method: str) -> None:
        """The next call of ``method`` is not acted upon: the connection closes unanswered."""
        with self._lock:
            self.failures.setdefault(method, []).append((None, b"", {}))

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
            content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            content_type = "application/json"
        else:
            answer = self.handle(recorded)
            status, content, content_type, headers = answer if answer is not None else (None, b"", "", {})
        if status is None:  # what a client sees when the server or the network fails mid-request
            handler.close_connection = True
            return
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(content)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(content)

    def handle(self, recorded: Recorded):
        """(status, body, content type, headers), or None to close the connection unanswered."""
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


PAGE_ID = "111111"  # the page of the webhook fixtures' entries
PAGE_NAME = "Ville de Bellerive 311"
_MESSAGES_FIELD = re.compile(r"(?:^|,)messages(?:\.limit\((\d+)\))?(?:\{([^}]*)\})?")


class GraphApiStandIn(StandIn):
    """The Graph API of one page: ``POST /{version}/me/messages`` (Send API), ``GET
    /{version}/me/conversations`` (Conversations API) and a CDN serving ``files`` at /cdn/<name>.

    It keeps the page's conversations: every message it accepts, and those added with
    ``add_message`` (older sends, the citizen's own). The conversations read answers as
    https://developers.facebook.com/docs/messenger-platform/conversations shows it:
    ``user_id`` picks the person's conversation (``{"data": []}`` when there is none), and
    ``fields=messages.limit(N){…}`` expands its messages, newest first, with only the fields
    asked for (``id`` and ``created_time`` by default); ``created_time`` is ISO 8601 with a
    ``+0000`` offset, ``from`` is ``{"name", "email", "id"}`` and ``to`` is ``{"data": [...]}``.
    ``drop_answers``: the next sends are accepted and kept, then the connection closes without
    an answer (what the gateway sees when it is killed, or the network fails, after Meta took
    the message).
    """

    def __init__(self, page_token: str, page_id: str = PAGE_ID):
        super().__init__()
        self.page_token = page_token
        self.page_id = page_id
        self.files: dict[str, tuple[bytes, str]] = {}
        self.messages: list[dict] = []  # the page's conversations, oldest first; "psid" names the person
        self.drop_answers = 0
        self._sent = 0

    def sent(self) -> list[Recorded]:
        return self.calls("messages")

    def conversation_reads(self) -> list[Recorded]:
        return self.calls("conversations")

    def held(self, psid: str, from_page: bool = True) -> list[dict]:
        """The messages of the conversation with ``psid`` from the page (or from the person)."""
        with self._lock:
            return [m for m in self.messages if m["psid"] == psid
                    and (m["from"]["id"] == self.page_id) is from_page]

    def add_message(self, psid: str, text: str, from_page: bool = True, created: datetime | None = None,
                    message_id: str | None = None) -> dict:
        """Keep a message in the conversation with ``psid``, as Meta would hold it."""
        page = {"name": PAGE_NAME, "email": f"{self.page_id}@facebook.com", "id": self.page_id}
        person = {"name": "Citoyenne Test", "email": f"{psid}@facebook.com", "id": psid}
        with self._lock:
            number = len(self.messages) + 1
            message = {"psid": psid, "id": message_id or f"m_held_{number}",
                       "created_time": (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                       "from": page if from_page else person, "to": {"data": [person if from_page else page]},
                       "message": text}
            self.messages.append(message)
        return message

    def handle(self, recorded: Recorded):
        if recorded.method == "GET" and recorded.path.startswith("/cdn/"):
            found = self.files.get(recorded.path.removeprefix("/cdn/"))
            return (200, found[0], found[1], {}) if found else _json(404, {"error": "not found"})
        if recorded.query.get("access_token") != self.page_token:
            return _json(400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                         "code": 190, "fbtrace_id": "Atest"}})
        if recorded.method == "POST" and recorded.path.endswith("/me/messages"):
            return self._send(recorded)
        if recorded.method == "GET" and recorded.path.endswith("/me/conversations"):
            return _json(200, {"data": self._conversations(recorded.query)})
        return _json(404, {"error": {"message": "Unknown path", "code": 803}})

    def _send(self, recorded: Recorded):
        with self._lock:
            self._sent += 1
            number = self._sent
            dropped, self.drop_answers = self.drop_answers > 0, max(self.drop_answers - 1, 0)
        psid = recorded.data["recipient"]["id"]
        self.add_message(psid, recorded.data["message"].get("text", ""), message_id=f"m_sent_{number}")
        if dropped:  # accepted and kept, but the sender never hears of it
            return None
        return _json(200, {"recipient_id": psid, "message_id": f"m_sent_{number}"})

    def _conversations(self, query: dict) -> list[dict]:
        if query.get("platform", "messenger") != "messenger":
            return []
        with self._lock:
            held = list(enumerate(self.messages))
        people = dict.fromkeys(m["psid"] for _, m in held if query.get("user_id") in (None, m["psid"]))
        expand = _MESSAGES_FIELD.search(query.get("fields", ""))
        found = []
        for psid in people:
            newest = [m for _, m in sorted(((i, m) for i, m in held if m["psid"] == psid),
                                           key=lambda item: (item[1]["created_time"], item[0]), reverse=True)]
            conversation = {"id": f"t_{psid}", "updated_time": newest[0]["created_time"]}
            if expand:
                limit, wanted = int(expand.group(1) or 25), (expand.group(2) or "id,created_time").split(",")
                shown = [{k: m[k] for k in ["id", *wanted] if k in m and k != "psid"} for m in newest[:limit]]
                conversation = {"messages": {"data": shown, "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}}},
                                "id": conversation["id"]}
            found.append(conversation)
        return found


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
