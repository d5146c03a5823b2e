"""A module that uses ``@Isolated`` itself, as an agent's tool module would."""

from __future__ import annotations

import os
from typing import Any

from agentkeel.resilience._isolation import Isolated


@Isolated(timeout=20)
def where(x: int) -> dict[str, Any]:
    return {"pid": os.getpid(), "x": x, "target": os.environ.get("AGENTKEEL_ISOLATED_TARGET")}


@Isolated(timeout=20)
async def async_where(x: int) -> dict[str, Any]:
    return {"pid": os.getpid(), "x": x}
