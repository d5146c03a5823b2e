"""A small OpenAI-compatible HTTP server on loopback, with a scripted fault queue.

It implements ``POST /v1/chat/completions`` (a JSON answer, or server-sent events with
``"stream": true``) well enough for the real ``openai`` SDK, and misbehaves on demand:

* :func:`rate_limited` — 429 with ``Retry-After`` (seconds) and/or ``retry-after-ms``;
* :func:`server_error` — 500, 503 … (the SDK raises ``InternalServerError``);
* :func:`slow` — answers only after a delay (longer than the client's timeout:
  ``APITimeoutError``);
* :func:`dropped` — sends the start of a response and closes the connection;
* :func:`malformed` — 200 with a body that is not JSON;
* :func:`bad_request` — 400, which no one should retry;
* :func:`stream_dropped` — a stream that stops mid-way without its end.

Faults are queued (:meth:`OpenAIServer.push`, each used once, optionally only for one
model) or permanent for a model (:meth:`OpenAIServer.always`), which is how fallback
to another model is shown. Every request is recorded (:attr:`OpenAIServer.requests`)
so tests can count attempts and see which model each one asked for.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour."""

    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    model: str | None = None  # only requests for this model (None: any request)


def rate_limited(
    *, retry_after: float | None = None, retry_after_ms: int | None = None, model: str | None = None
) -> Fault:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return Fault("status", status=429, headers=headers, model=model)


def server_error(status: int = 500, *, model: str | None = None) -> Fault:
    return Fault("status", status=status, model=model)


def bad_request(*, model: str | None = None) -> Fault:
    return Fault("status", status=400, model=model)


def slow(seconds: float, *, model: str | None = None) -> Fault:
    return Fault("slow", delay=seconds, model=model)


def dropped(*, model: str | None = None) -> Fault:
    return Fault("dropped", model=model)


def malformed(*, model: str | None = None) -> Fault:
    return Fault("malformed", model=model)


def stream_dropped(*, model: str | None = None) -> Fault:
    return Fault("stream_dropped", model=model)


@dataclass(frozen=True)
class RecordedRequest:
    model: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]


def response_model(model: str) -> str:
    """The model the server says answered: a dated snapshot of the one asked for."""
    return f"{model}-2025-01-01"


def _words(messages: Any) -> list[str]:
    words: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words.extend(content.split())
    return words


class OpenAIServer:
    """The server; use it as a context manager (``with OpenAIServer() as server``)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Fault] = deque()
        self._always: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes slow responses
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    # ------------------------------------------------------------- scripting
    def push(self, *faults: Fault) -> None:
        """Queue faults; each answers one matching request, in order."""
        with self._lock:
            self._queue.extend(faults)

    def always(self, model: str, fault: Fault) -> None:
        """Every request for ``model`` gets ``fault`` (until :meth:`heal`)."""
        with self._lock:
            self._always[model] = fault

    def heal(self) -> None:
        with self._lock:
            self._queue.clear()
            self._always.clear()

    def models_asked(self) -> list[str]:
        with self._lock:
            return [r.model for r in self.requests]

    def _record_and_choose(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            permanent = self._always.get(request.model)
            if permanent is not None:
                return permanent
            for fault in self._queue:
                if fault.model is None or fault.model == request.model:
                    self._queue.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------- answering
    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        stream = bool(body.get("stream"))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        fault = self._record_and_choose(RecordedRequest(model, stream, body, headers))
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.delay)
            fault = None
        if fault is not None and fault.kind == "status":
            error = {"error": {"message": f"scripted {fault.status}", "type": "scripted"}}
            _send_json(handler, fault.status, error, fault.headers)
            return
        if fault is not None and fault.kind == "dropped":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "4096")
            handler.end_headers()
            handler.wfile.write(b'{"id": "chatcmpl-dropped", "choices": [')
            handler.wfile.flush()
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "malformed":
            raw = b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": '
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
            return
        words = _words(body.get("messages"))
        reply = ["echo:", *words[-5:]] if words else ["hello"]
        if stream:
            self._stream(handler, body, model, words, reply, fault)
            return
        _send_json(handler, 200, _completion(model, words, reply))

    def _stream(
        self,
        handler: BaseHTTPRequestHandler,
        body: dict[str, Any],
        model: str,
        words: list[str],
        reply: list[str],
        fault: Fault | None,
    ) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        created = int(time.time())
        base = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "created": created,
            "model": response_model(model),
        }

        def send(data: str) -> None:
            payload = f"data: {data}\n\n".encode()
            handler.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            handler.wfile.flush()

        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        send(json.dumps({**base, "choices": [first]}))
        for position, word in enumerate(reply):
            text = word if position == 0 else f" {word}"
            choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
            send(json.dumps({**base, "choices": [choice]}))
            if fault is not None and fault.kind == "stream_dropped":
                handler.close_connection = True
                return  # no terminating chunk: the client sees the body cut short
        last = {"index": 0, "delta": {}, "finish_reason": "stop"}
        send(json.dumps({**base, "choices": [last]}))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = _usage(words, reply)
            send(json.dumps({**base, "choices": [], "usage": usage}))
        send("[DONE]")
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


def _usage(words: list[str], reply: list[str]) -> dict[str, int]:
    prompt, completion = max(1, len(words)), len(reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(model: str, words: list[str], reply: list[str]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response_model(model),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(reply)},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(words, reply),
    }


def _send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    raw = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(raw)


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
        # Headers and body are separate writes: with Nagle's algorithm on, each answer
        # would wait for the client's delayed ACK (about 40 ms on Linux loopback).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                _send_json(self, 404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                _send_json(self, 400, {"error": {"message": "request body is not JSON"}})
                return
            try:
                server.answer(self, body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout): fine

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the recorded requests, not a log."""

    return Handler
