"""Cheap fingerprints of agent steps, and the verdict the loop detector returns.

A step is reduced to a few integers: a *call key* (action + canonical arguments
+ state), an *outcome* (the result's or the error's fingerprint) and a *state*
fingerprint. Python's ``hash`` is used on purpose: it is the fastest stable-in-process
hash there is, and the detector never compares fingerprints across processes.
Arguments keep their canonical text too (JSON with sorted keys), so near-duplicates
can be compared later without touching the caller's objects, which may have changed.
"""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agentkeel._encoding import safe_repr, truncate
from agentkeel.tracking import normalize_message

__all__ = [
    "LoopKind",
    "LoopVerdict",
    "arguments_alike",
    "canonical",
    "digit_key",
    "error_fingerprint",
    "text_of",
    "value_fingerprint",
]


class LoopKind(enum.StrEnum):
    """What kind of repetition was found. See docs/recovery/loop-detection.md."""

    EXACT_REPEAT = "exact_repeat"
    CYCLE = "cycle"
    NEAR_DUPLICATE = "near_duplicate"
    REPEATING_ERROR = "repeating_error"
    STATE_REVISIT = "state_revisit"
    ITERATION_LIMIT = "iteration_limit"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopVerdict:
    """A loop the detector found: what repeats, how often, and what it did about it.

    ``predicted`` is True when the step was refused *before* it ran (the loop would
    have been completed by it); ``paused`` when the agent was paused as a result.
    """

    agent_id: str
    kind: LoopKind
    count: int
    actions: tuple[str, ...]
    message: str
    step: int
    at: float
    cycle: tuple[str, ...] = ()
    arguments: str = ""
    predicted: bool = False
    paused: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "pattern": self.kind.value,
            "count": self.count,
            "actions": list(self.actions),
            "cycle": list(self.cycle),
            "arguments": self.arguments,
            "message": self.message,
            "step": self.step,
            "at": self.at,
            "predicted": self.predicted,
            "paused": self.paused,
            **({"details": self.details} if self.details else {}),
        }


def _enc_hook(value: object) -> Any:
    # Sets have no order: sort their reprs so {1, 2} and {2, 1} agree.
    if isinstance(value, set | frozenset):
        return sorted(safe_repr(v, 200) for v in value)
    if isinstance(value, enum.Enum):
        return value.value
    return safe_repr(value, 200)


# Sorted keys: {"a": 1, "b": 2} and {"b": 2, "a": 1} are the same call.
_encode = msgspec.json.Encoder(order="sorted", enc_hook=_enc_hook).encode
_SCALARS = frozenset({str, int, float, bool, type(None)})
# Results are hashed whole; but a 50 MB tool output must not cost 50 MB of encoding
# on every step. Past this many characters, its length and both ends stand for it.
MAX_FINGERPRINT_CHARS = 65_536


def canonical(value: object) -> str | bytes:
    """One form per value, equal for equal values (dict order ignored).

    A string (or ``None``, as ``""``) is kept as it is; anything else becomes JSON
    bytes with sorted keys — ``bytes`` is how the rest of this module tells
    structured arguments from plain text. Not decoded: most are only ever hashed.
    """
    if value is None:
        return ""
    if type(value) is str:
        return value
    try:
        return _encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError):
        # Cyclic or otherwise unencodable values are rare; their repr is good enough.
        return safe_repr(value, MAX_FINGERPRINT_CHARS)


def text_of(form: str | bytes) -> str:
    return form.decode("utf-8", "replace") if isinstance(form, bytes) else form


def value_fingerprint(value: object) -> int:
    """An integer equal for equal values (within this process)."""
    if type(value) in _SCALARS:
        if isinstance(value, str) and len(value) > MAX_FINGERPRINT_CHARS:
            return hash((len(value), value[:4096], value[-4096:]))
        return hash(value)
    form = canonical(value)
    if len(form) > MAX_FINGERPRINT_CHARS:
        return hash((len(form), form[:4096], form[-4096:]))
    return hash(form)


def error_fingerprint(error: BaseException | str) -> int:
    """Same exception type and a message equal up to numbers and IDs: same fingerprint."""
    if isinstance(error, str):
        return hash(("error", normalize_message(error)))
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ still has a type to go by
        message = ""
    return hash((type(error).__qualname__, normalize_message(message)))


def preview(form: str | bytes, limit: int = 200) -> str:
    return truncate(text_of(form[: limit * 4]), limit)


_DIGITS = re.compile(r"\d+")
# Maps every byte but the ASCII digits to a space: translate + split is the fastest
# way to the runs of digits in a form (a fifth of a regex's time).
_DIGITS_ONLY = bytes(b if 48 <= b <= 57 else 32 for b in range(256))


def digit_key(form: str | bytes) -> tuple[bytes, ...]:
    """The runs of ASCII digits in a canonical form, in order (of its first 4 KiB).

    Near-duplicates need equal numbers, so two forms with different digit keys are
    never alike: a cheap test that spares most pairs the full comparison.
    """
    raw = form if isinstance(form, bytes) else form.encode("utf-8", "surrogatepass")
    return tuple(raw[:4096].translate(_DIGITS_ONLY).split())


_SPACE = re.compile(r"\s+")
_MAX_COMPARED = 2_000  # characters of one string value that similarity looks at


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text[:_MAX_COMPARED].lower()).strip(" .?!,;:")


def _text_alike(a: str, b: str, threshold: float) -> bool:
    """Strings equal up to case, spacing and end punctuation, or a difflib ratio at or
    above ``threshold`` — provided they hold the same numbers."""
    if a == b:
        return True
    na, nb = _normal(a), _normal(b)
    if na == nb:
        return True
    # Numbers in agent tool calls are identifiers, offsets and page numbers: "page 2"
    # after "page 1" is progress, however alike the rest of the text looks.
    if _DIGITS.findall(na) != _DIGITS.findall(nb):
        return False
    matcher = difflib.SequenceMatcher(None, na, nb, autojunk=False)
    # The cheap upper bounds first: most different strings stop here.
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )


def _value_alike(a: object, b: object, threshold: float) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return _text_alike(a, b, threshold)
    if isinstance(a, dict) and isinstance(b, dict):
        # Every argument must be alike: a different recipient is a different call,
        # however long the identical message body.
        return a.keys() == b.keys() and all(_value_alike(a[k], b[k], threshold) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        return all(_value_alike(x, y, threshold) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    return bool(a == b)  # numbers, booleans, None: exactly equal or different


def _decoded(form: str | bytes) -> object:
    if isinstance(form, str):
        return form
    try:
        return msgspec.json.decode(form)
    except msgspec.DecodeError:
        return form.decode("utf-8", "replace")


def arguments_alike(a: str | bytes, b: str | bytes, threshold: float) -> bool:
    """Whether two calls' arguments (their :func:`canonical` forms) are near-duplicates.

    Structured arguments are compared value by value: the same keys, numbers and
    booleans equal, strings alike (``_text_alike``), and *every* value alike.
    """
    if isinstance(a, bytes) != isinstance(b, bytes):
        return False
    return _value_alike(_decoded(a), _decoded(b), threshold)
