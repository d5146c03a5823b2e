"""The dashboard application: routes, templates, the store, and serving it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentkeel._errors import ConfigurationError, KeelError
from agentkeel._net import bound_socket
from agentkeel.dashboard import _charts, _data, _views
from agentkeel.dashboard._security import SecurityMiddleware, check_bind, csrf_token, new_secret
from agentkeel.store import Store, open_store

_PACKAGE = "agentkeel.dashboard"


class Renderer:
    """Jinja2 with autoescape on for every template, and the helpers they share."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader(_PACKAGE, "templates"),
            autoescape=True,  # every template, whatever its name: agents' text is hostile
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(when=_data.when, duration=_data.duration, brief=_data.brief)
        self._css: str | None = None

    @property
    def css(self) -> str:
        if self._css is None:
            self._css = resources.files(_PACKAGE).joinpath("static", "dashboard.css").read_text()
        return self._css

    def render(self, template: str, **context: Any) -> str:
        context.setdefault("standalone", False)
        return self.env.get_template(template).render(**context)


def create_app(*, store: str | Store | None = None, token: str | None = None) -> Starlette:
    """The dashboard as an ASGI app over ``store`` (a URL, an open store, or None for
    ``$KEEL_STORE`` / SQLite under ``$KEEL_HOME``). With ``token``, every request must
    carry it. A store opened here from a URL is closed when the app shuts down."""
    owned = not isinstance(store, Store)
    opened: Store = open_store(store) if not isinstance(store, Store) else store
    secret = new_secret()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                opened.close()

    v = _views
    routes = [
        Route("/", v.index),
        Route("/runs", v.runs),
        Route("/runs/{run_id:path}", v.run),
        Route("/failures", v.failures),
        Route("/breakers", v.breakers),
        Route("/alerts", v.alerts),
        Route("/escalations", v.escalations),
        Route(
            "/escalations/{ticket_id}/{action}",
            v.escalation_action,
            methods=["POST"],
        ),
        Route("/health", v.health),
        Route("/charts", v.charts),
        Route("/snapshots", v.snapshots),
        Route("/api/runs", v.api_runs),
        Route("/api/runs/{run_id}/events", v.api_run_events),
        Route("/api/runs/{run_id}", v.api_run),
        Route("/api/failures", v.api_failures),
        Route("/api/breakers", v.api_breakers),
        Route("/api/alerts", v.api_alerts),
        Route("/api/escalations", v.api_escalations),
        Route("/api/health", v.api_health),
        Route("/api/charts", v.api_charts),
        Mount(
            "/static",
            app=StaticFiles(packages=[(_PACKAGE, "static")]),
            name="static",
        ),
    ]
    handlers: dict[Any, Any] = dict.fromkeys(
        (v.ProblemError, _data.BadInputError, KeelError, ConfigurationError), v.problem_response
    )
    handlers[404] = _not_found
    handlers[405] = _not_allowed
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, token=token)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.store = opened
    app.state.renderer = Renderer()
    app.state.csrf = csrf_token(secret)
    return app


async def _not_found(request: Any, exc: Exception) -> Any:
    return _views.problem_response(
        request, _views.ProblemError(404, f"nothing here at {request.url.path}: see /runs")
    )


async def _not_allowed(request: Any, exc: Exception) -> Any:
    return _views.problem_response(
        request, _views.ProblemError(405, f"{request.method} is not allowed on {request.url.path}")
    )


def render_run_html(store: Store, run_id: str) -> str:
    """One run (timeline, failures, summary) as a self-contained HTML page: the CSS is
    inlined and nothing refers outside the file, so it can be mailed or archived."""
    view = _data.run_view(store, run_id, page=10_000_000)
    renderer = Renderer()
    rows = [(name, float(n), n) for name, n in view.summary["by_category"].items()]
    return renderer.render(
        "run.html",
        title=f"Run {view.run.name}",
        view=view,
        standalone=True,
        inline_css=renderer.css,
        csrf="",
        path="",
        category_chart=_charts.hbars(rows, unit="", label="failures by category"),
        latency_chart=_charts.hbars(view.tool_latency, unit="ms", label="p95 latency by tool"),
    )


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    store: str | None = None,
    token: str | None = None,
    ready: Callable[[], object] | None = None,
) -> None:
    """Serve the dashboard until interrupted (blocks). Refuses a non-loopback ``host``
    without a ``token``, and a port it cannot listen on, before anything is announced;
    ``ready`` is called once the port is ours."""
    import uvicorn

    check_bind(host, token)
    if not 0 < port < 65536:
        raise ConfigurationError(f"--port must be between 1 and 65535, got {port}")
    app = create_app(store=store, token=token)
    # Bound here rather than by uvicorn: a port in use is then our clear error, raised
    # before the caller tells anyone where the dashboard is.
    sock = bound_socket(host, port)
    try:
        if ready is not None:
            ready()
        config = uvicorn.Config(app, log_level="warning", server_header=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
