"""The dashboard's pages and JSON endpoints.

Handlers are plain functions (Starlette runs them in its thread pool, which suits
the blocking store) that read through :mod:`agentkeel.dashboard._data` and render a
template or return JSON. Errors become pages: a bad filter a 400, an unknown run
or ticket a 404, a change a ticket's state does not allow a 409, a store that
fails a 503 - each with the message, never a traceback.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from agentkeel._errors import ConfigurationError, KeelError, UnknownRunError
from agentkeel.dashboard import _charts, _data
from agentkeel.dashboard._security import CSRF_FIELD, origin_ok
from agentkeel.dashboard._timeline import flat_row
from agentkeel.recovery import (
    CorruptStateError,
    EscalationConfig,
    EscalationManager,
    HistoryManager,
    RollbackManager,
    TicketStateError,
    UnknownTicketError,
    UnknownVersionError,
)
from agentkeel.store import Store

MAX_LIVE_EVENTS = 500


class ProblemError(Exception):
    """An HTTP error with a message for the person who made the request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _q(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def render(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    renderer = request.app.state.renderer
    html = renderer.render(template, csrf=request.app.state.csrf, path=request.url.path, **context)
    return HTMLResponse(html, status_code=http_status)


def problem_response(request: Request, exc: Exception) -> Response:
    """The response for an error raised by a handler (see the module docstring)."""
    if isinstance(exc, ProblemError):
        status, message = exc.status, exc.message
    elif isinstance(exc, _data.BadInputError | ConfigurationError):
        status, message = 400, str(exc)
    elif isinstance(exc, UnknownRunError | UnknownTicketError):
        status, message = 404, str(exc).strip("'\"")
    elif isinstance(exc, TicketStateError):
        status, message = 409, str(exc).strip("'\"")
    elif isinstance(exc, KeelError):
        status, message = 503, f"the store could not answer: {exc}"
    else:  # pragma: no cover - Starlette routes only the types registered in _app
        raise exc
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    return render(
        request,
        "error.html",
        http_status=status,
        title=f"Error {status}",
        status_code=status,
        message=message,
    )


# ---------------------------------------------------------------------- pages
def index(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=307)


def runs(request: Request) -> Response:
    filters = _data.RunFilters.parse(_q(request))
    page = _data.runs_page(_store(request), filters)
    return render(request, "runs.html", title="Runs", urlencode=urlencode, **page)


def run(request: Request) -> Response:
    after = _data.parse_int(
        request.query_params.get("after"), "after", default=0, low=0, high=2**62
    )
    view = _data.run_view(_store(request), request.path_params["run_id"], after=after)
    return render(
        request,
        "run.html",
        title=f"Run {view.run.name}",
        view=view,
        standalone=False,
        category_chart=_category_chart(view.summary),
        latency_chart=_charts.hbars(view.tool_latency, unit="ms", label="p95 latency by tool"),
    )


def _category_chart(summary: dict[str, Any]) -> Any:
    rows = [(name, float(n), n) for name, n in summary["by_category"].items()]
    return _charts.hbars(rows, unit="", label="failures by category")


def failures(request: Request) -> Response:
    page = _data.failures_page(_store(request), _q(request))
    return render(request, "failures.html", title="Failures", **page)


def breakers(request: Request) -> Response:
    page = _data.breakers_page(_store(request), _q(request))
    return render(request, "breakers.html", title="Circuit breakers", **page)


def alerts(request: Request) -> Response:
    page = _data.alerts_page(_store(request), _q(request))
    return render(request, "alerts.html", title="Alerts", **page)


def health(request: Request) -> Response:
    report = _health_report(request)
    return render(request, "health.html", title="Health", report=report)


def _health_report(request: Request) -> Any:
    from agentkeel.monitoring import run_health_check

    window = _data.parse_float(
        request.query_params.get("window"), "window", default=60, low=0.1, high=60 * 24 * 30
    )
    return run_health_check(_store(request).url, window=window * 60)


def charts(request: Request) -> Response:
    data = _data.charts_data(_store(request), _q(request))
    return render(
        request,
        "charts.html",
        title="Charts",
        data=data,
        failures_chart=_charts.stacked_bars(
            data["failures_by_category"],
            start=data["start"],
            bucket_seconds=data["bucket_seconds"],
            label="failures over time by category",
        ),
        latency_chart=_charts.hbars(
            data["p95_latency_by_tool"], unit="ms", label="p95 latency by tool"
        ),
        rate_chart=_charts.line(
            data["events_per_second"],
            start=data["start"],
            bucket_seconds=data["bucket_seconds"],
            label="events per second",
        ),
    )


# ---------------------------------------------------------------- escalations
def _manager(store: Store) -> EscalationManager:
    # As `keel escalations` builds it: no notifiers, nothing in the background.
    return EscalationManager(store=store, config=EscalationConfig(notify_in_background=False))


def _tickets(request: Request) -> list[Any]:
    status = _data.parse_text(request.query_params.get("status"), "status")
    manager = _manager(_store(request))
    try:
        return manager.list_tickets(status=status, limit=200)
    finally:
        manager.close()


def escalations(request: Request) -> Response:
    tickets = _tickets(request)
    return render(
        request,
        "escalations.html",
        title="Escalations",
        tickets=tickets,
        status=request.query_params.get("status") or "",
        done=request.query_params.get("done"),
        now=time.time(),
    )


async def escalation_action(request: Request) -> Response:
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not _csrf_ok(request, given) or not origin_ok(request):
        raise ProblemError(
            403, "refused: this form did not come from the dashboard (CSRF check); reload it"
        )
    action = request.path_params["action"]
    ticket_id = request.path_params["ticket_id"]
    actor = _form_text(form.get("actor")) or "dashboard"
    note = _form_text(form.get("note"))
    if action not in {"ack", "resolve"}:
        raise ProblemError(404, f"unknown action {action!r}: use ack or resolve")
    resolution = _form_text(form.get("resolution"))
    if action == "resolve" and not resolution:
        raise ProblemError(400, "say what fixed it: a resolution is needed to resolve a ticket")

    def change() -> str:
        manager = _manager(_store(request))
        try:
            if action == "ack":
                ticket = manager.acknowledge(ticket_id, actor=actor, note=note)
            else:
                ticket = manager.resolve(ticket_id, resolution=resolution, actor=actor, note=note)
        finally:
            manager.close()
        return ticket.ticket_id

    from starlette.concurrency import run_in_threadpool

    done = await run_in_threadpool(change)
    return RedirectResponse(
        f"/escalations?{urlencode({'done': f'{action} {done}'})}", status_code=303
    )


def _csrf_ok(request: Request, given: str) -> bool:
    import hmac

    expected: str = request.app.state.csrf
    return hmac.compare_digest(given.encode(), expected.encode())


def _form_text(value: Any) -> str:
    return value.strip()[:2000] if isinstance(value, str) else ""


# ------------------------------------------------------------------ snapshots
def snapshots(request: Request) -> Response:
    store = _store(request)
    agent = _data.parse_text(request.query_params.get("agent"), "agent")
    task = _data.parse_text(request.query_params.get("task"), "task")
    v1 = _data.parse_text(request.query_params.get("v1"), "v1")
    v2 = _data.parse_text(request.query_params.get("v2"), "v2")
    rollback = RollbackManager(store=store, cleanup_after_hours=None)
    found = rollback.list_snapshots_sync(agent_id=agent, limit=200)
    versions: list[Any] = []
    diff = None
    if agent is not None:
        history = HistoryManager(store=store, retention_days=None)
        versions = history.list_versions_sync(agent, task, limit=500)
        if v1 is not None and v2 is not None:
            if task is None:
                raise _data.BadInputError("a diff needs a task: versions are numbered per task")
            try:
                diff = history.compare_versions_sync(agent, task, v1, v2)
            except (UnknownVersionError, CorruptStateError) as exc:
                raise ProblemError(404, str(exc).strip("'\"")) from None
    agents = sorted({s.agent_id for s in rollback.list_snapshots_sync(limit=500)})
    return render(
        request,
        "snapshots.html",
        title="Snapshots and state history",
        snapshots=found,
        agents=agents,
        agent=agent or "",
        task=task or "",
        versions=versions,
        v1=v1 or "",
        v2=v2 or "",
        diff=diff,
    )


# ------------------------------------------------------------------------ API
def api_runs(request: Request) -> Response:
    filters = _data.RunFilters.parse(_q(request))
    page = _data.runs_page(_store(request), filters)
    return JSONResponse(
        {
            "total": page["total"],
            "page": page["page"],
            "pages": page["pages"],
            "runs": [_data.run_to_dict(r) for r in page["runs"]],
        }
    )


def api_run(request: Request) -> Response:
    store = _store(request)
    record = store.get_run(request.path_params["run_id"])
    failures_ = store.list_failures(run_id=record.run_id, limit=_data.MAX_FAILURES_SHOWN)
    from agentkeel.tracking import summarize_failures

    all_failures = (
        failures_
        if len(failures_) < _data.MAX_FAILURES_SHOWN
        else store.list_failures(run_id=record.run_id, limit=10_000_000)
    )
    return JSONResponse(
        {
            "run": _data.run_to_dict(record),
            "summary": summarize_failures(
                all_failures, run_id=record.run_id, user_id=record.user_id
            ),
            "failures": [f.to_dict() for f in failures_],
        },
    )


def api_run_events(request: Request) -> Response:
    """Events of a run after a cursor (a ``store_seq``): what the live view polls."""
    store = _store(request)
    after = _data.parse_int(
        request.query_params.get("after"), "after", default=0, low=0, high=2**62
    )
    limit = _data.parse_int(
        request.query_params.get("limit"), "limit", default=200, low=1, high=MAX_LIVE_EVENTS
    )
    record = store.get_run(request.path_params["run_id"])
    events = store.list_events(run_id=record.run_id, after_seq=after, limit=limit)
    return JSONResponse(
        {
            "run_id": record.run_id,
            "status": record.status,
            "live": record.status == "running",
            "failure_count": record.failure_count,
            "recovered_count": record.recovered_count,
            "events": [flat_row(e, started_at=record.started_at) for e in events],
            "next_after": events[-1].store_seq if events else after,
            "more": len(events) == limit,
        }
    )


def api_failures(request: Request) -> Response:
    page = _data.failures_page(_store(request), _q(request))
    return JSONResponse(
        {
            "groups": [
                {
                    "fingerprint": g.fingerprint,
                    "count": g.count,
                    "recovered": g.recovered,
                    "recovery_rate": g.recovery_rate,
                    "runs": g.runs,
                    "first_seen": g.first_seen,
                    "last_seen": g.last_seen,
                    "category": g.category,
                    "error_type": g.error_type,
                    "error_message": g.error_message,
                    "tool_name": g.tool_name,
                    "graph_node": g.graph_node,
                }
                for g in page["groups"]
            ]
        }
    )


def api_breakers(request: Request) -> Response:
    return JSONResponse(_data.breakers_page(_store(request), _q(request)))


def api_alerts(request: Request) -> Response:
    page = _data.alerts_page(_store(request), _q(request))
    return JSONResponse(
        {
            "active": [a.to_dict() for a in page["active"]],
            "resolved": [a.to_dict() for a in page["resolved"]],
        }
    )


def api_escalations(request: Request) -> Response:
    rows = []
    for ticket in _tickets(request):
        row = ticket.to_dict()
        row.pop("changes", None)
        rows.append(row)
    return JSONResponse({"escalations": rows})


def api_health(request: Request) -> Response:
    return JSONResponse(_health_report(request).to_dict())


def api_charts(request: Request) -> Response:
    data = _data.charts_data(_store(request), _q(request))
    data["p95_latency_by_tool"] = [
        {"tool": name, "p95_ms": p95, "calls": n} for name, p95, n in data["p95_latency_by_tool"]
    ]
    return JSONResponse(data)
