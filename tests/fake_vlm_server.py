"""A real HTTP server that speaks the OpenAI chat-completions dialect, for tests.

It runs stdlib ``http.server`` in a thread, listens only on 127.0.0.1 on a free
port, and stops when its ``with`` block ends (slow answers in progress are cut
short). Each test scripts what it answers::

    with FakeVLMServer(models=["qwen2.5vl:3b"]) as server:
        server.queue(error_reply(500, "CUDA out of memory"), caption_reply(GOOD_CAPTION))
        backend = OpenAIBackend(server.url, "qwen2.5vl:3b")
        ...
        server.requests[-1].json["messages"]

Chat requests take the queued replies in order, then ``server.default`` (a good
caption). Like Ollama, a chat request for a model not in ``models`` gets a 404
"model not found" (set ``check_model=False`` to answer anything). ``GET
/v1/models`` lists ``models`` unless a reply is queued with ``queue_models``.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

GOOD_CAPTION = json.dumps(
    {
        "caption": "A golden retriever runs along a sandy beach at sunset.",
        "description": "A golden retriever sprints across wet sand at the edge of the sea. "
        "Low sun lights the waves orange. Footprints trail behind the dog.",
        "main_subject": "golden retriever",
        "objects": ["dog", "waves", "sand", "sun"],
        "people_count": 0,
        "activities": ["running"],
        "scene": "beach",
        "time_of_day": "evening",
        "lighting": "warm, low golden light",
        "visible_text": "",
        "tags": ["dog", "beach", "sunset", "golden retriever", "sea"],
    }
)
# What a small model really says when it half-follows the format.
MALFORMED_CAPTION = (
    "Sure! Here is the JSON:\n```json\n"
    "{'caption': 'A dog running on a beach.', 'People': 'none', 'keywords': 'Dog, Beach, Sunset',"
    " 'time_of_day': 'Sunset', 'scene': 'beach', 'is_cute': True,}\n```\nLet me know if you need anything else!"
)
# Cut off by max_tokens in the middle of the description.
TRUNCATED_CAPTION = (
    '{"caption": "A man rides a red bicycle past a café.", "main_subject": "cyclist", '
    '"objects": ["bicycle", "café", "tables", "umbr'
)


@dataclass
class Reply:
    """One scripted answer: a status, a body (bytes, or an object sent as JSON), headers and a delay."""

    status: int = 200
    body: bytes | dict | list | Callable[[dict], dict] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    """One request the server received (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


def caption_reply(content: str | None, *, prompt_tokens: int | None = 812, completion_tokens: int | None = 95) -> Reply:
    """A successful chat completion whose message content is ``content``."""
    body: dict[str, Any] = {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if prompt_tokens is not None:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + (completion_tokens or 0),
        }
    return Reply(body=body)


def error_reply(status: int, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    """An error in the OpenAI shape (which Ollama and llama-server also use)."""
    default_kind = "api_error" if status < 500 else "server_error"
    kind = {429: "rate_limit_error", 404: "not_found_error"}.get(status, default_kind)
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Reply(status=status, body=body, headers=headers or {})


def model_not_found_reply(model: str) -> Reply:
    """What Ollama's OpenAI-compatible endpoint says about a model it has not pulled."""
    return error_reply(404, f'model "{model}" not found, try pulling it first')


def not_json_reply() -> Reply:
    """A proxy's HTML page where JSON was expected."""
    return Reply(status=200, body=b"<html><body>502 Bad Gateway</body></html>", headers={"Content-Type": "text/html"})


def slow_reply(seconds: float) -> Reply:
    """A good caption, but only after ``seconds`` (cut short when the server stops)."""
    reply = caption_reply(GOOD_CAPTION)
    reply.delay = seconds
    return reply


def closed_port_url() -> str:
    """A URL where nothing listens (a port that was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class FakeVLMServer:
    """An OpenAI-compatible server on 127.0.0.1 whose answers each test scripts."""

    def __init__(self, models: list[str] | tuple[str, ...] = ("qwen2.5vl:3b",), *, check_model: bool = True):
        self.models = list(models)
        self.check_model = check_model
        self.default = caption_reply(GOOD_CAPTION)
        self.requests: list[Recorded] = []
        self._chat_replies: deque[Reply] = deque()
        self._models_replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, as SHOEBOX_OPENAI_BASE_URL would be set: ``http://127.0.0.1:PORT/v1``."""
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def queue(self, *replies: Reply) -> None:
        """Answer the next chat requests with these replies, in order."""
        with self._lock:
            self._chat_replies.extend(replies)

    def queue_models(self, *replies: Reply) -> None:
        """Answer the next GET /v1/models with these replies instead of the listing."""
        with self._lock:
            self._models_replies.extend(replies)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> FakeVLMServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that are "thinking"
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeVLMServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # called from handler threads

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _next_chat_reply(self, request: Any) -> Reply:
        with self._lock:
            scripted = self._chat_replies.popleft() if self._chat_replies else None
        if scripted is not None:
            return scripted
        model = request.get("model") if isinstance(request, dict) else None
        if self.check_model and model not in self.models:
            return model_not_found_reply(str(model))
        return self.default

    def _next_models_reply(self) -> Reply:
        with self._lock:
            if self._models_replies:
                return self._models_replies.popleft()
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "library"} for m in self.models]
        return Reply(body={"object": "list", "data": data})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeVLMServer

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (after its own timeout) is expected here; anything else is reported."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead of a log."""

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return {"_unparsed": raw.decode("utf-8", "replace")}

    def _answer(self, reply: Reply, request: Any) -> None:
        fake = self.server.fake
        if reply.delay and fake._stopping.wait(reply.delay):
            return  # the server is stopping: hang up without answering
        body = reply.body(request) if callable(reply.body) else reply.body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            content_type = "application/json"
        else:
            data = body
            content_type = "text/plain"
        self.send_response(reply.status)
        headers = {"Content-Type": content_type, **reply.headers, "Content-Length": str(len(data))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        fake = self.server.fake
        fake._record(Recorded("GET", self.path, _lower(self.headers), None))
        if self.path.rstrip("/") == "/v1/models":
            self._answer(fake._next_models_reply(), None)
        else:
            self._answer(error_reply(404, f"404 page not found: {self.path}"), None)

    def do_POST(self) -> None:
        fake = self.server.fake
        request = self._read_json()
        fake._record(Recorded("POST", self.path, _lower(self.headers), request))
        if self.path.rstrip("/") == "/v1/chat/completions":
            self._answer(fake._next_chat_reply(request), request)
        else:
            self._answer(error_reply(404, f"404 page not found: {self.path}"), request)


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
