"""``keel demo``: run the travel agent with a live progress display, then the report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

import agentkeel
from agentkeel._errors import KeelError
from agentkeel.cli._app import err, fail, out
from agentkeel.demo import DemoOptions, DemoResult, Progress, run_demo
from agentkeel.store import keel_home, resolve_store_url

if TYPE_CHECKING:
    from agentkeel.monitoring import ProfileReport
from agentkeel.tracking import TrackingSettings


def run_demo_command(
    *,
    chaos: bool,
    seed: int | None,
    track_failures: bool,
    track_tools: bool,
    show_failures: bool,
    verbose: bool,
    store: str | None,
    home: Path | None,
    profile: bool = False,
) -> None:
    if home is not None:
        os.environ["KEEL_HOME"] = str(home)  # the tracker's logs follow the store's home
    try:
        TrackingSettings.from_env()  # a malformed KEEL_* setting is reported before the run
        url = resolve_store_url(store, home=home)
        agentkeel.configure(store=url)
    except KeelError as exc:
        fail(str(exc), code=2)
    # Check the store first, so a broken one is named before the run rather than after.
    # The agent runs either way: telemetry trouble must never stop it.
    store_problem: str | None = None
    try:
        agentkeel.get_store()
    except KeelError as exc:
        store_problem = str(exc)
        err.print(
            f"[yellow]warning:[/] {store_problem}\n"
            "  The demo runs anyway; its events cannot be stored."
        )

    def show(p: Progress) -> None:
        mark = "[green]✓[/]" if p.ok else "[red]✗[/]"
        out.print(f"  {mark} [dim]{p.node:<10}[/] {p.message}", markup=True)

    mode = f"chaos, seed {seed}" if chaos and seed is not None else "chaos" if chaos else "no chaos"
    out.print(f"[bold]keel demo[/]: travel-planning agent ({mode})")
    options = DemoOptions(
        chaos=chaos,
        seed=seed,
        track_failures=track_failures,
        track_tools=track_tools,
        runtime_dir=keel_home(home),
    )
    try:
        result, profile_report = _run(options, show, profile=profile)
    finally:
        stored = _flush_and_report()
    out.print()
    out.print(result.answer, markup=False)
    out.print()
    pipeline_stats = agentkeel.get_pipeline().stats()
    lost_events = not stored or pipeline_stats.dropped > 0
    if lost_events:
        err.print(
            f"[yellow]warning:[/] the store at {url} did not take every event "
            f"({pipeline_stats.dropped} dropped; last error: {pipeline_stats.last_error}). "
            "The run itself completed."
        )
    if result.tracker is not None and show_failures:
        from agentkeel.tracking import render_failure_report

        render_failure_report(
            result.failures,
            run_id=result.run_id,
            user_id=options.user_id,
            console=out,
            verbose=verbose,
        )
        if result.log_path is not None:
            out.print(f"failure log  {Path(result.log_path)}")
    out.print(f"store        {url}")
    out.print(f"run          {result.run_id}  (see [bold]keel report {result.run_id}[/])")
    out.print("dashboard    [bold]keel dashboard[/] shows its timeline, failures and escalation")
    if profile_report is not None:
        out.print()
        out.print(profile_report.render(limit=15), markup=False)
    agentkeel.shutdown()
    if lost_events or store_problem:
        raise typer.Exit(2)  # the agent finished, but what it did was not recorded


def _run(
    options: DemoOptions, show: Callable[[Progress], None], *, profile: bool
) -> tuple[DemoResult, ProfileReport | None]:
    if not profile:
        return run_demo(options, on_progress=show), None
    from agentkeel.monitoring import profile_call

    return profile_call(lambda: run_demo(options, on_progress=show))


def _flush_and_report() -> bool:
    """Flush, then report the pipeline's (now final) counters as an event, so that
    `keel health` and `keel serve` see this process's figures; flush that too."""
    from agentkeel.monitoring import report_pipeline_stats

    stored = agentkeel.flush(timeout=10)
    with contextlib.suppress(KeelError):  # the warning about the store says what matters
        report_pipeline_stats()
    return agentkeel.flush(timeout=10) and stored
