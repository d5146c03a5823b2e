"""Success-rate learning: stop retrying errors that retrying never fixes.

For every (operation, error type) the learner keeps the outcomes of the last
``window`` retried calls: did the call eventually succeed after it failed with
that type of error? Once there are ``min_samples`` outcomes and fewer than
``success_rate_threshold`` of them succeeded, retrying that pair is refused —
except one refusal in ``probe_every``, which is let through as a probe so that a
provider that has recovered is noticed (without probes the learner could never
change its mind: refused retries produce no new outcomes).

The learner is shared between threads and between :class:`Retry` policies; keep one
per process (or per provider). It lives in memory; give it a :class:`LearnerStore`
to keep what it learned across restarts.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel.resilience._base import check_count, check_rate
from agentkeel.resilience._error_types import ErrorType

__all__ = ["JsonFileLearnerStore", "LearnerStore", "SuccessRateLearner", "SuccessRateStats"]

_SNAPSHOT_VERSION = 1


@runtime_checkable
class LearnerStore(Protocol):
    """Where a :class:`SuccessRateLearner` keeps what it learned between runs."""

    def load(self) -> Mapping[str, Any] | None:
        """The last saved snapshot, or ``None`` if nothing was saved yet."""
        ...

    def save(self, data: Mapping[str, Any], /) -> None:
        """Keep ``data`` (a JSON-ready dict) for the next :meth:`load`."""
        ...


class JsonFileLearnerStore:
    """A :class:`LearnerStore` in one JSON file, replaced atomically on save."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> Mapping[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"{self.path} does not hold a learner snapshot (a JSON object); delete it "
                f"to start learning afresh"
            )
        return data

    def save(self, data: Mapping[str, Any], /) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash mid-save leaves the previous snapshot intact.
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True, slots=True)
class SuccessRateStats:
    """What the learner knows about one (operation, error type)."""

    operation: str
    error_type: ErrorType
    samples: int
    successes: int
    success_rate: float | None  # None until there are min_samples outcomes
    refusals: int  # retries refused because the rate was too low
    probes: int  # refused retries let through anyway, to see if things changed
    retrying: bool  # whether a retry would be allowed now (ignoring probes)


class _Outcomes:
    __slots__ = ("outcomes", "probes", "refusals", "successes")

    def __init__(self, window: int) -> None:
        self.outcomes: deque[bool] = deque(maxlen=window)
        self.successes = 0
        self.refusals = 0
        self.probes = 0

    def add(self, succeeded: bool) -> None:
        outcomes = self.outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self.successes -= 1  # the oldest outcome is about to fall out of the window
        outcomes.append(succeeded)
        if succeeded:
            self.successes += 1


class SuccessRateLearner:
    """Learns, per operation and error type, how often retrying eventually works.

    ``success_rate_threshold`` is the rate below which retries stop (0 never stops;
    useful when only :func:`adaptive` backoff should read the rate), ``min_samples``
    the outcomes needed before the rate is trusted, ``window`` how many recent
    outcomes count, ``probe_every`` how often a refused retry is let through anyway
    (0: never), ``max_keys`` how many (operation, error type) pairs are remembered
    (the oldest is forgotten first).
    """

    def __init__(
        self,
        *,
        success_rate_threshold: float = 0.2,
        min_samples: int = 5,
        window: int = 100,
        probe_every: int = 20,
        max_keys: int = 10_000,
        store: LearnerStore | None = None,
    ) -> None:
        self.success_rate_threshold = check_rate(success_rate_threshold, "success_rate_threshold")
        self.min_samples = check_count(min_samples, "min_samples")
        self.window = check_count(window, "window")
        if self.min_samples > self.window:
            raise ConfigurationError(
                f"min_samples ({min_samples}) is larger than window ({window}): the rate "
                f"would never be trusted; lower min_samples or widen the window"
            )
        self.probe_every = check_count(probe_every, "probe_every", minimum=0)
        self.max_keys = check_count(max_keys, "max_keys")
        if store is not None and not isinstance(store, LearnerStore):
            raise ConfigurationError(
                f"store must have load() and save(data) methods (a LearnerStore), got {store!r}"
            )
        self._store = store
        self._lock = threading.Lock()
        self._records: dict[tuple[str, ErrorType], _Outcomes] = {}
        if store is not None:
            self._load(store)

    def __repr__(self) -> str:
        return (
            f"SuccessRateLearner(success_rate_threshold={self.success_rate_threshold}, "
            f"min_samples={self.min_samples}, window={self.window}, keys={len(self._records)})"
        )

    def _record_for(self, key: tuple[str, ErrorType]) -> _Outcomes:
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= self.max_keys:
                # Dicts keep insertion order: the first key is the longest remembered.
                del self._records[next(iter(self._records))]
            record = self._records[key] = _Outcomes(self.window)
        return record

    def record(self, operation: str, error_type: ErrorType, succeeded: bool) -> None:
        """One retried call that had failed with ``error_type`` ended: did it succeed?"""
        with self._lock:
            self._record_for((operation, error_type)).add(succeeded)

    def success_rate(self, operation: str, error_type: ErrorType | None = None) -> float | None:
        """The recent success rate after retrying, or ``None`` below ``min_samples`` outcomes.

        Without ``error_type``, all error types of ``operation`` are pooled.
        """
        with self._lock:
            if error_type is not None:
                record = self._records.get((operation, error_type))
                if record is None:
                    return None
                samples, successes = len(record.outcomes), record.successes
            else:
                samples = successes = 0
                for (op, _), record in self._records.items():
                    if op == operation:
                        samples += len(record.outcomes)
                        successes += record.successes
        return successes / samples if samples >= self.min_samples else None

    def should_retry(self, operation: str, error_type: ErrorType) -> bool:
        """Whether to retry after this error. Counts refusals and lets probes through."""
        with self._lock:
            record = self._records.get((operation, error_type))
            if record is None or self._allows(record):
                return True
            record.refusals += 1
            if self.probe_every and record.refusals % self.probe_every == 0:
                record.probes += 1
                return True
            return False

    def _allows(self, record: _Outcomes) -> bool:
        samples = len(record.outcomes)
        return (
            samples < self.min_samples or record.successes >= self.success_rate_threshold * samples
        )

    def stats(self) -> list[SuccessRateStats]:
        """Everything learned, sorted by operation then error type."""
        with self._lock:
            rows = [
                SuccessRateStats(
                    operation=op,
                    error_type=error_type,
                    samples=len(record.outcomes),
                    successes=record.successes,
                    success_rate=(
                        record.successes / len(record.outcomes)
                        if len(record.outcomes) >= self.min_samples
                        else None
                    ),
                    refusals=record.refusals,
                    probes=record.probes,
                    retrying=self._allows(record),
                )
                for (op, error_type), record in self._records.items()
            ]
        return sorted(rows, key=lambda row: (row.operation, row.error_type.value))

    def reset(self, operation: str | None = None) -> None:
        """Forget what was learned (about one operation, or everything)."""
        with self._lock:
            if operation is None:
                self._records.clear()
            else:
                for key in [k for k in self._records if k[0] == operation]:
                    del self._records[key]

    def snapshot(self) -> dict[str, Any]:
        """What was learned, as a JSON-ready dict (see :meth:`restore`)."""
        with self._lock:
            outcomes: dict[str, dict[str, str]] = {}
            for (op, error_type), record in self._records.items():
                bits = "".join("1" if ok else "0" for ok in record.outcomes)
                outcomes.setdefault(op, {})[error_type.value] = bits
        return {"version": _SNAPSHOT_VERSION, "outcomes": outcomes}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace what was learned by a :meth:`snapshot` (a wrong shape raises)."""
        parsed = _parse_snapshot(data)
        with self._lock:
            self._records.clear()
            for (op, error_type), bits in parsed.items():
                record = self._record_for((op, error_type))
                for bit in bits[-self.window :]:
                    record.add(bit == "1")

    def save(self) -> None:
        """Write :meth:`snapshot` to the store (a no-op without one)."""
        if self._store is not None:
            self._store.save(self.snapshot())

    def _load(self, store: LearnerStore) -> None:
        try:
            data = store.load()
            if data is not None:
                self.restore(data)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the agent starting
            # Start from nothing instead: the learner only ever makes retries *fewer*.
            _internal.report_internal_error("retry.learner.load", exc)


def _parse_snapshot(data: Mapping[str, Any]) -> dict[tuple[str, ErrorType], str]:
    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"not a SuccessRateLearner snapshot: {why}")

    if not isinstance(data, Mapping):
        raise bad(f"expected a mapping, got {type(data).__name__}")
    if data.get("version") != _SNAPSHOT_VERSION:
        raise bad(f"expected version {_SNAPSHOT_VERSION}, got {data.get('version')!r}")
    outcomes = data.get("outcomes")
    if not isinstance(outcomes, Mapping):
        raise bad("'outcomes' must map operation -> error type -> '0'/'1' string")
    parsed: dict[tuple[str, ErrorType], str] = {}
    for op, by_type in outcomes.items():
        if not isinstance(op, str) or not isinstance(by_type, Mapping):
            raise bad(f"operation {op!r} must map error types to outcome strings")
        for name, bits in by_type.items():
            try:
                error_type = ErrorType(name)
            except ValueError:
                raise bad(f"unknown error type {name!r}") from None
            if not isinstance(bits, str) or set(bits) - {"0", "1"}:
                raise bad(f"outcomes of {op!r}/{name} must be a string of 0 and 1")
            parsed[op, error_type] = bits
    return parsed
