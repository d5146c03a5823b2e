"""Runnable examples of the recovery system: ``python -m agentkeel.examples``."""

from agentkeel.examples._scenarios import SCENARIOS, main

__all__ = ["SCENARIOS", "main"]
