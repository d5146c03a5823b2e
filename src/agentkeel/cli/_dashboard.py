"""``keel dashboard``: the local web UI over the store.

Listens on 127.0.0.1 unless told otherwise; any other address needs a token (from
``--token`` or ``KEEL_DASHBOARD_TOKEN``), and every request must then carry it.
"""

from __future__ import annotations

import threading
import webbrowser
from typing import Annotated

import typer

from agentkeel._errors import KeelError
from agentkeel.cli._app import StoreOption, app, fail, out


@app.command()
def dashboard(
    store: StoreOption = None,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but loopback needs --token."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="KEEL_DASHBOARD_TOKEN",
            help="A secret every request must carry (open the page once with ?token=...).",
            show_default=False,
        ),
    ] = None,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser tab.")] = False,
) -> None:
    """Serve the web dashboard: runs, timelines, failures, breakers, alerts, escalations."""
    try:
        from agentkeel.dashboard import check_bind, serve
    except ImportError as exc:
        fail(str(exc), code=2)
    token = token or None
    try:
        check_bind(host, token)
    except KeelError as exc:
        fail(str(exc), code=2)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/runs"

    def announce() -> None:
        out.print(
            f"keel dashboard on {url}" + (" (token required)" if token else "") + "; Ctrl-C stops",
            markup=False,
        )
        if not no_open:
            # After a moment, so the server is listening when the browser asks.
            first = f"{url}?token={token}" if token else url
            threading.Timer(1.0, webbrowser.open, args=(first,)).start()

    try:
        serve(host=host, port=port, store=store, token=token, ready=announce)
    except KeelError as exc:
        fail(str(exc), code=2)
    except KeyboardInterrupt:
        pass
