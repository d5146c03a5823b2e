"""What the rollback and history managers share: arguments, settings, store, threads."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import Callable, Generator, Mapping
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from agentkeel._errors import ConfigurationError
from agentkeel.store import Store

P = ParamSpec("P")
T = TypeVar("T")
Y = TypeVar("Y")
S = TypeVar("S")


def check_name(value: object, name: str) -> str:
    """An agent, task or actor name: a non-empty string without NUL."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise ConfigurationError(f"{name} must not contain NUL characters, got {value!r}")
    return str.__str__(value)


def check_opt_name(value: object, name: str) -> str | None:
    return None if value is None else check_name(value, name)


def check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"limit must be an integer >= 1, got {value!r}")
    return value


def check_metadata(value: object, name: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a dict, got {type(value).__name__}")
    return dict(value)


def retention(
    value: float | timedelta | None, name: str, unit: str, seconds_per_unit: float
) -> float | None:
    """A retention period given in ``unit`` (or as a timedelta), as that unit; None keeps all."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"{name} must be a number of {unit}, a timedelta or None (keep forever), got {value!r}"
        )
    amount = value.total_seconds() / seconds_per_unit if isinstance(value, timedelta) else value
    if not math.isfinite(amount) or amount <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of {unit} (or None to keep forever), got {value!r}"
        )
    return float(amount)


def settings_from_dict(
    data: Mapping[str, Any],
    *,
    label: str,
    fields: tuple[str, ...],
    aliases: Mapping[str, str],
    fixed: Mapping[str, tuple[object, str]],
) -> dict[str, Any]:
    """Keyword arguments for a config class from a seed-style dict.

    ``aliases`` maps the seed's names onto ours; ``fixed`` names seed settings that
    only have one acceptable value here (and why), so they are accepted when they
    agree with what agentkeel always does and refused, with the reason, when not.
    """
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"the {label} settings must be a dict, got {type(data).__name__}")
    allowed = sorted({*fields, *aliases, *fixed})
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ConfigurationError(
            f"unknown {label} setting(s) {', '.join(unknown)}: allowed are {', '.join(allowed)}"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in fixed:
            wanted, why = fixed[key]
            if value != wanted:
                raise ConfigurationError(f"{label} setting {key}={value!r} is not supported: {why}")
            continue
        target = aliases.get(key, key)
        if target in out:
            raise ConfigurationError(
                f"{label} settings give {target} twice (as {target} and as an alias): keep one"
            )
        out[target] = value
    return out


C = TypeVar("C")


def coerce_config(config: C | Mapping[str, Any] | None, cls: type[C]) -> C:
    """``config`` itself, the defaults for ``None``, or ``cls.from_dict`` of a seed dict."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    return cls.from_dict(config)  # type: ignore[attr-defined, no-any-return]


def record_dict(record: Any) -> dict[str, Any]:
    """A frozen record dataclass as a plain dict, fields in declaration order.

    ``metadata`` is copied so the caller may change the dict it gets.
    """
    data = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if isinstance(data.get("metadata"), dict):
        data["metadata"] = dict(data["metadata"])
    return data


def resolve_store(store: Store | None) -> Store:
    """The given store, else the process-wide one (looked up each time, so that
    ``agentkeel.configure()`` later is followed)."""
    if store is not None:
        return store
    from agentkeel._runtime import get_store

    return get_store()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def drive(steps: Generator[Y, S, T], value: S | None) -> Y | T:
    """Advance ``steps``: what it yields next, or what it returns (the caller tells
    them apart by type). Used from worker threads too, where a StopIteration must
    not escape into a future."""
    try:
        return next(steps) if value is None else steps.send(value)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking store work off the event loop (the context, hence the run, follows)."""
    return await asyncio.to_thread(fn, *args, **kwargs)
