"""``keel frameworks``: which agent frameworks are installed, and can we work with them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agentkeel.cli._app import JsonOption, app, out, print_json

_STATUS = {
    "available": "[green]available[/]",
    "unavailable": "[dim]not installed[/]",
    "incompatible": "[red]incompatible[/]",
}


@app.command()
def frameworks(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Judge by installed versions only; import nothing."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The agent frameworks agentkeel integrates with: versions, support, features.

    Exit code 1 if an installed framework is outside the supported range or lacks a
    feature its integration needs.
    """
    from agentkeel.integrations import get_compatibility_manager

    matrix = get_compatibility_manager().get_framework_matrix(import_features=not quick)
    if as_json:
        print_json(matrix)
    else:
        table = Table(title="Framework compatibility")
        for column in ("framework", "installed", "supported", "status", "features"):
            table.add_column(column)
        for name, row in matrix.items():
            have, lack = row["available_features"], row["missing_features"]
            features = f"{len(have)} of {len(have) + len(lack)}" if have else "-"
            if lack and row["current_version"]:
                features += f" [red](missing: {escape(', '.join(lack))})[/]"
            table.add_row(
                name,
                escape(row["current_version"] or "-"),
                f">={row['min_version']},<{row['max_version']}",
                _STATUS.get(row["status"], escape(row["status"])),
                features,
            )
        out.print(table)
        for name, row in matrix.items():
            if row["status"] == "incompatible":
                out.print(f"[red]✗[/] {name}: {escape(row['error_message'] or '')}")
    if any(row["status"] == "incompatible" for row in matrix.values()):
        raise typer.Exit(1)
