"""The optional libraries behind monitoring, imported only when first needed.

``prometheus_client`` and ``psutil`` come with ``agentkeel[monitoring]``. Importing
:mod:`agentkeel.monitoring` never needs them: health, alerts and diagnostics work
without them; metrics and system resources say which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from agentkeel._errors import ConfigurationError

EXTRA_HINT = "install agentkeel[monitoring] (pip install 'agentkeel[monitoring]')"


def require_prometheus() -> ModuleType:
    """``prometheus_client``, or a ConfigurationError naming the extra."""
    try:
        return importlib.import_module("prometheus_client")
    except ImportError as exc:
        raise ConfigurationError(f"metrics need prometheus_client: {EXTRA_HINT}") from exc


def require_psutil() -> Any:
    """``psutil`` (typed ``Any``: it ships no type information), or a ConfigurationError."""
    try:
        return importlib.import_module("psutil")
    except ImportError as exc:
        raise ConfigurationError(f"system resources need psutil: {EXTRA_HINT}") from exc
