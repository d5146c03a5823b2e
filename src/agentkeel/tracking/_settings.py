"""What failure tracking does, set in code or through ``KEEL_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentkeel._errors import ConfigurationError

LogFormat = Literal["jsonl", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("jsonl", "json")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# (field name, environment variable) for every boolean setting.
_BOOL_ENV = (
    ("track_failures", "KEEL_TRACK_FAILURES"),
    ("track_tools", "KEEL_TRACK_TOOLS"),
    ("show_failure_summary", "KEEL_SHOW_FAILURE_SUMMARY"),
    ("show_failure_details", "KEEL_SHOW_FAILURE_DETAILS"),
    ("verbose_failures", "KEEL_VERBOSE_FAILURES"),
)


def check_log_format(value: object, what: str = "failure_log_format") -> LogFormat:
    if value == "jsonl":
        return "jsonl"
    if value == "json":
        return "json"
    raise ConfigurationError(
        f"{what} must be one of {', '.join(repr(f) for f in LOG_FORMATS)}, got {value!r}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackingSettings:
    """How failures are tracked and shown.

    ``track_failures=False`` turns a :class:`FailureTracker` into a no-op (records are
    built and returned, but not kept, logged or emitted); ``track_tools=False`` makes
    :class:`TrackedToolRegistry` stop recording tool failures (its events still flow).
    ``failure_log_dir`` replaces the default ``<runtime_dir>/logs`` directory.
    The ``show_*`` and ``verbose_failures`` switches are read by the CLI and by
    applications deciding what to print after a run.
    """

    track_failures: bool = True
    track_tools: bool = True
    failure_log_dir: Path | None = None
    failure_log_format: LogFormat = "jsonl"
    show_failure_summary: bool = True
    show_failure_details: bool = True
    verbose_failures: bool = False

    def __post_init__(self) -> None:
        for name, _ in _BOOL_ENV:
            value = getattr(self, name)
            # A string such as "false" is truthy: refuse it rather than misread it.
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")
        check_log_format(self.failure_log_format)
        log_dir = self.failure_log_dir
        if log_dir is not None:
            if not isinstance(log_dir, str | os.PathLike) or not os.fspath(log_dir):
                raise ConfigurationError(
                    f"failure_log_dir must be a directory path or None, got {log_dir!r}"
                )
            # frozen: normalising a str to a Path needs object.__setattr__
            object.__setattr__(self, "failure_log_dir", Path(log_dir))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrackingSettings:
        """Settings from ``KEEL_TRACK_FAILURES``, ``KEEL_FAILURE_LOG_DIR`` and friends.

        Unset or empty variables keep their defaults. Booleans accept 1/0, true/false,
        yes/no and on/off in any case.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, var in _BOOL_ENV:
            raw = env.get(var, "").strip()
            if raw:
                values[name] = _parse_bool(var, raw)
        log_dir = env.get("KEEL_FAILURE_LOG_DIR", "").strip()
        if log_dir:
            values["failure_log_dir"] = Path(log_dir)
        log_format = env.get("KEEL_FAILURE_LOG_FORMAT", "").strip()
        if log_format:
            values["failure_log_format"] = check_log_format(
                log_format.lower(), "KEEL_FAILURE_LOG_FORMAT"
            )
        return cls(**values)  # type: ignore[arg-type]  # keys and types checked above


def _parse_bool(var: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(
        f"{var}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off"
    )
