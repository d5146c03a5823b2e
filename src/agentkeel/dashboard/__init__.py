"""``keel dashboard``: a local web UI over the store - runs, timelines, failures,
breakers, alerts, escalations, health, charts and state history.

::

    from agentkeel.dashboard import create_app, serve

    serve(port=8765)                        # what `keel dashboard` runs
    app = create_app(store="sqlite:///keel.db", token="s3cret")   # any ASGI server

Pages are rendered on the server (Jinja2, autoescaped) with a little vanilla
JavaScript for live updates; nothing is fetched from the internet. Needs the
``dashboard`` extra: ``pip install 'agentkeel[dashboard]'``.
"""

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - the test environment has the extra
    raise ImportError(
        f"the dashboard needs starlette, uvicorn and jinja2 ({exc.name} is missing): "
        "pip install 'agentkeel[dashboard]'"
    ) from exc

from agentkeel.dashboard._app import create_app, render_run_html, serve
from agentkeel.dashboard._security import check_bind

__all__ = ["check_bind", "create_app", "render_run_html", "serve"]
