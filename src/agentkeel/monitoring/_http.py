"""A small HTTP server for ``/metrics`` (Prometheus) and ``/health`` (probes).

Standard library only (``http.server``, one thread per request); the exposition
format, including OpenMetrics when the scraper asks for it, is prometheus_client's.
It listens on loopback unless told otherwise: metrics name tools, models and
breakers, which is not for everyone on the network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel._net import bind_error
from agentkeel.monitoring import _validate
from agentkeel.monitoring._deps import require_prometheus

HealthFn = Callable[[], tuple[int, dict[str, Any]]]


class MetricsServer:
    """Serves ``/metrics`` and ``/health`` on a daemon thread until :meth:`close`.

    ``metrics`` returns the registry to expose (or the text format directly);
    ``health`` returns an HTTP status (200, or 503 when unhealthy) and a JSON body.
    """

    def __init__(
        self,
        *,
        metrics: Callable[[], Any],
        health: HealthFn,
        host: str = "127.0.0.1",
        port: int = 9464,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be an integer from 0 to 65535, got {port!r}")
        self.host = host
        self._requested_port = port
        self._metrics = metrics
        self._health = health
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when started with ``port=0``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MetricsServer:
        if self._server is not None:
            return self
        handler = _handler(self._metrics, self._health)
        try:
            server = ThreadingHTTPServer((self.host, self._requested_port), handler)
        except OSError as exc:
            raise bind_error(self.host, self._requested_port, exc) from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="agentkeel-metrics-http", daemon=True
        )
        self._thread.start()
        return self

    def close(self, timeout: float | timedelta = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(_validate.duration(timeout, "timeout", allow_zero=True))
            self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _handler(metrics: Callable[[], Any], health: HealthFn) -> type[BaseHTTPRequestHandler]:
    exposition = require_prometheus().exposition

    class Handler(BaseHTTPRequestHandler):
        server_version = "agentkeel"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                if path == "/metrics":
                    self._metrics()
                elif path in {"/health", "/healthz"}:
                    status, body = health()
                    self._send(status, "application/json", json.dumps(body, default=str).encode())
                elif path == "/":
                    self._send(200, "text/plain; charset=utf-8", b"/metrics\n/health\n")
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
            except Exception as exc:  # noqa: BLE001 - a failed scrape must not kill the server
                _internal.report_internal_error("monitoring.http", exc, reraise=False)
                self._send(500, "text/plain; charset=utf-8", f"error: {exc!r}\n".encode())

        def _metrics(self) -> None:
            source = metrics()
            if isinstance(source, str):
                self._send(200, exposition.CONTENT_TYPE_LATEST, source.encode())
                return
            encoder, content_type = exposition.choose_encoder(self.headers.get("Accept"))
            self._send(200, content_type, encoder(source))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would flood the terminal

    return Handler
