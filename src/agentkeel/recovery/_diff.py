"""What changed between two states: added, removed and changed paths.

Dicts are compared key by key and lists index by index (an item inserted at the
front therefore shows as every later index changed, plus one added at the end:
the diff says *where* values differ, it does not guess at moves). A value whose
type changed (a dict that became a list, ``1`` that became ``1.0`` or ``True``) is
one change at its path, not a recursion into both sides.

Paths read like Python attribute access: ``plan.steps[2].tool``. A key that is not
an identifier is quoted, ``meta["content-type"]``; the empty path is the whole
state.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Deeper than this, values are compared whole instead of walked into: a diff never
# runs out of stack, however deep the state.
MAX_DEPTH = 200


def child_path(parent: str, key: object) -> str:
    """The path of ``key`` (a dict key or list index) under ``parent``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]"
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    if isinstance(key, str):
        return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"
    return f"{parent}[{key!r}]"


class Change(NamedTuple):
    """One value that differs: ``path``, its ``old`` and its ``new`` value."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class StateDiff:
    """The paths added, removed and changed from an old state to a new one."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[Change, ...] = ()

    @property
    def total_changes(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def __bool__(self) -> bool:
        """True when anything differs."""
        return self.total_changes > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: ``added``, ``removed``, ``changed`` and ``total_changes``."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [{"path": c.path, "old": c.old, "new": c.new} for c in self.changed],
            "total_changes": self.total_changes,
        }

    def render(self, *, width: int = 80) -> str:
        """One line per change: ``+ path``, ``- path``, ``~ path: old -> new``."""
        lines = [f"+ {_shown(path)}" for path in self.added]
        lines += [f"- {_shown(path)}" for path in self.removed]
        for change in self.changed:
            old, new = _brief(change.old, width), _brief(change.new, width)
            lines.append(f"~ {_shown(change.path)}: {old} -> {new}")
        return "\n".join(lines) if lines else "no changes"


def diff_states(old: Any, new: Any) -> StateDiff:
    """Compare two JSON-like states (see the module docstring for the rules)."""
    differ = _Differ()
    differ.walk(old, new, "", 0)
    return StateDiff(
        added=tuple(differ.added), removed=tuple(differ.removed), changed=tuple(differ.changed)
    )


class _Differ:
    __slots__ = ("added", "changed", "removed")

    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.changed: list[Change] = []

    def walk(self, old: Any, new: Any, path: str, depth: int) -> None:
        if depth < MAX_DEPTH:
            if isinstance(old, dict) and isinstance(new, dict):
                # Old keys in their order, then the new ones: paths come out in
                # document order, whatever kind of change they are.
                for key in [*old, *(k for k in new if k not in old)]:
                    if key not in new:
                        self.removed.append(child_path(path, key))
                    elif key not in old:
                        self.added.append(child_path(path, key))
                    else:
                        self.walk(old[key], new[key], child_path(path, key), depth + 1)
                return
            if isinstance(old, list) and isinstance(new, list):
                common = min(len(old), len(new))
                for index in range(common):
                    self.walk(old[index], new[index], child_path(path, index), depth + 1)
                self.removed.extend(child_path(path, i) for i in range(common, len(old)))
                self.added.extend(child_path(path, i) for i in range(common, len(new)))
                return
        if not same_value(old, new):
            self.changed.append(Change(path, old, new))


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (``1``, ``1.0`` and ``True`` all differ); NaN equals NaN.

    Containers are compared with an explicit stack, so no depth is too deep.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, float) and math.isnan(x):
            if not math.isnan(y):
                return False
        elif not bool(x == y):
            return False
    return True


def _shown(path: str) -> str:
    return path or "(whole state)"


def _brief(value: Any, width: int) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (ValueError, TypeError, RecursionError):  # circular, odd keys, or too deep
        try:
            text = repr(value)
        except RecursionError:
            text = f"<a {type(value).__name__} too deep to show>"
    return text if len(text) <= width else text[: width - 1] + "…"
