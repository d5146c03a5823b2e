"""The built-in travel-planning demo agent behind ``keel demo``."""

from agentkeel.demo._agent import DEFAULT_QUERY, DemoOptions, DemoResult, Progress, run_demo

__all__ = ["DEFAULT_QUERY", "DemoOptions", "DemoResult", "Progress", "run_demo"]
