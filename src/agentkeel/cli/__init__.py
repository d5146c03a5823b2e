"""The ``keel`` command-line tool."""

# Importing these modules registers their commands on the app.
from agentkeel.cli import _escalations, _monitoring, _recovery  # noqa: F401
from agentkeel.cli._app import app, main

__all__ = ["app", "main"]
