"""``keel health``, ``keel monitor`` and ``keel serve``: agentkeel for operators.

``keel health`` is a probe: exit 0 healthy, 1 degraded, 2 unhealthy. ``keel
monitor`` prints one JSON line of health per interval, plus a line for each alert
raised or resolved. ``keel serve`` exposes ``/metrics`` for Prometheus and
``/health`` for load balancers and Kubernetes.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from typing import Annotated, Any

import typer
from rich.markup import escape

from agentkeel._errors import KeelError
from agentkeel.cli._app import JsonOption, StoreOption, app, err, fail, out, print_json
from agentkeel.monitoring import HealthReport, HealthStatus

_ICON = {
    HealthStatus.HEALTHY: "[green]✓[/]",
    HealthStatus.DEGRADED: "[yellow]⚠[/]",
    HealthStatus.UNHEALTHY: "[red]✗[/]",
    HealthStatus.UNKNOWN: "[dim]-[/]",
}
_STATE_ICON = {"closed": "[green]✓[/]", "half_open": "[yellow]⚠[/]", "open": "[red]✗[/]"}


@app.command()
def health(
    store: StoreOption = None,
    window: Annotated[
        float, typer.Option(help="How many minutes of recent failures to judge.", min=0.1)
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Check the store, pipelines, circuit breakers, failures and disk; exit 0/1/2.

    Exit code 0 means healthy, 1 degraded (e.g. a circuit breaker is open), 2
    unhealthy (e.g. the store is unreachable), so it can serve as a probe.
    """
    from agentkeel.monitoring import run_health_check

    try:
        report = run_health_check(store, window=window * 60)
    except KeelError as exc:
        fail(str(exc), code=2)
    if as_json:
        print_json(report.to_dict())
    else:
        _render(report)
    if report.status is HealthStatus.UNHEALTHY:
        err.print(f"[bold red]unhealthy:[/] {escape(report.reason)}", markup=True)
    raise typer.Exit(report.exit_code)


def _render(report: HealthReport) -> None:
    when = dt.datetime.fromtimestamp(report.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    out.print(f"[bold]agentkeel health check[/]  {when} UTC  store {report.store_url}")
    out.print()
    for number, check in enumerate(report.checks, 1):
        label = check.name.replace("_", " ")
        # Summaries quote error messages ("[Errno 13] …"): escaped, not read as markup.
        summary = escape(check.summary)
        out.print(f"{number}. {_ICON[check.status]} {label:<17} {summary}", markup=True)
        if check.name == "circuit_breakers":
            for name, row in sorted(check.details.get("breakers", {}).items()):
                line = escape(f"{name}: {_breaker_line(row)}")
                out.print(f"     {_STATE_ICON.get(row['state'], '?')} {line}", markup=True)
    out.print()
    out.print("[bold]Recommendations[/]")
    if report.recommendations:
        for number, advice in enumerate(report.recommendations, 1):
            out.print(f"{number}. {advice}", markup=False)
    else:
        out.print("[green]✓[/] All systems appear healthy")
    out.print()
    colour = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}.get(
        report.status.value, "white"
    )
    out.print(
        f"status [bold {colour}]{report.status.value}[/] (exit {report.exit_code})", markup=True
    )


def _breaker_line(row: dict[str, Any]) -> str:
    parts = [row["state"]]
    if row.get("since"):
        since = dt.datetime.fromtimestamp(row["since"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        parts.append(f"since {since} UTC")
    if row.get("calls") is not None:
        parts.append(f"calls {row['calls']}")
    if row.get("failures") is not None:
        parts.append(f"failures {row['failures']}")
    if row.get("success_rate") is not None:
        parts.append(f"success rate {row['success_rate'] * 100:.1f}%")
    if row.get("stale"):
        parts.append("stale: no change reported for a day")
    parts.append(f"({row['source']})")
    return ", ".join(parts)


@app.command()
def serve(
    store: StoreOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 exposes it to the network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for /metrics and /health.")] = 9464,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between reads of new events from the store.", min=0.05)
    ] = 2.0,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay/--no-replay",
            help="Start the counters from the events already stored (default) or from now.",
        ),
    ] = True,
) -> None:
    """Serve Prometheus /metrics and a /health probe for every agent writing the store."""
    from agentkeel.monitoring import StoreExporter

    try:
        exporter = StoreExporter(
            store, host=host, port=port, poll_interval=poll_interval, replay=replay
        ).start()
    except KeelError as exc:
        fail(str(exc), code=2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fed = exporter.feed.events_fed if exporter.feed is not None else 0
    out.print(
        f"serving {exporter.url}/metrics and {exporter.url}/health for {exporter.store_url} "
        f"({fed} stored events replayed); Ctrl-C stops",
        markup=False,
    )
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        exporter.close()


@app.command()
def monitor(
    store: StoreOption = None,
    interval: Annotated[float, typer.Option(help="Seconds between two checks.", min=0.01)] = 60.0,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many checks (default: run until Ctrl-C).")
    ] = None,
    pid: Annotated[
        int | None,
        typer.Option(help="Process whose CPU, memory, files and threads to watch (default: this)."),
    ] = None,
) -> None:
    """Check health every --interval seconds: one JSON line each, plus alert lines.

    Alerts (thresholds on error rate, latency, breakers, memory, CPU, disk, pipeline
    lag and drops) are stored as events, so a restarted monitor carries on.
    """
    import agentkeel
    from agentkeel.monitoring import MonitoringSystem, ResourceSampler, run_health_check
    from agentkeel.store import resolve_store_url

    if count is not None and count < 1:
        fail(f"--count must be at least 1, got {count}")
    try:
        url = resolve_store_url(store)
        sampler = ResourceSampler(pid)
        # Alerts are stored where the agents' events are; the system reads that store too.
        agentkeel.configure(store=url)
    except KeelError as exc:
        fail(str(exc), code=2)
    system = MonitoringSystem()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    report: HealthReport | None = None
    restored = False
    done = 0
    try:
        while True:
            report = run_health_check(url)
            if not restored and report.check("store").details.get("events") is not None:
                system.restore_alerts()  # once the store answers: carry on where we left off
                restored = True
            resources = sampler.sample()
            _line({"type": "health", **_health_line(report), "system": resources.to_dict()})
            changes = system.alert_on_health(report) + system.evaluate(resources=resources)
            for change in changes:
                if change.action != "repeated":
                    _line({"type": "alert", **change.to_dict()})
            done += 1
            if (count is not None and done >= count) or stop.wait(interval):
                break
    except KeyboardInterrupt:
        pass
    finally:
        agentkeel.shutdown(timeout=5)
    raise typer.Exit(report.exit_code if report is not None else 0)


def _health_line(report: HealthReport) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.fromtimestamp(report.timestamp, dt.UTC).isoformat(),
        "status": report.status.value,
        "exit_code": report.exit_code,
        "reason": report.reason,
        "checks": {c.name: {"status": c.status.value, "summary": c.summary} for c in report.checks},
        "recommendations": list(report.recommendations),
    }


def _line(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
