"""The ``keel`` command-line tool."""

# Importing these modules registers their commands on the app.
from agentkeel.cli import (  # noqa: F401
    _dashboard,
    _escalations,
    _integrations,
    _monitoring,
    _recovery,
)
from agentkeel.cli._app import app, main

__all__ = ["app", "main"]
