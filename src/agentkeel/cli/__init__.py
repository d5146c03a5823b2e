"""The ``keel`` command-line tool."""

from agentkeel.cli._app import app, main

__all__ = ["app", "main"]
