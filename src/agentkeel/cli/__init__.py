"""The ``keel`` command-line tool."""

from agentkeel.cli import _monitoring  # noqa: F401 - registers health, monitor, serve
from agentkeel.cli._app import app, main

__all__ = ["app", "main"]
