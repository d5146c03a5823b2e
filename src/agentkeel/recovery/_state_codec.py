"""States as bytes and back: canonical JSON, optional zlib, SHA-256 — never pickle.

A state is JSON-like data: ``None``, bools, ints of any size, floats, strings,
lists, and dicts with string keys. It is written as canonical JSON (keys sorted,
no spaces), so the same state always gives the same bytes and the same checksum.
Three things JSON cannot say are written as tagged objects under the reserved
key ``"$keel"``, so that they come back exactly:

* ``inf``, ``-inf`` and ``nan`` (JSON has no such numbers);
* a dict of the user's that itself has a ``"$keel"`` key (kept verbatim);
* the output of the user's ``encode_hook`` for any other type (a datetime, a
  dataclass …), handed to ``decode_hook`` on the way back, and only that.

Anything else — a tuple, a set, bytes, an object, a dict with non-string keys —
raises :class:`StateEncodingError` naming the path and the type, instead of
being silently changed into something that would not compare equal after a
rollback. The SHA-256 covers the stored bytes (after compression), so a single
flipped bit anywhere is caught before any decoding is attempted.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from agentkeel.recovery._diff import child_path
from agentkeel.recovery._errors import StateEncodingError

EncodeHook = Callable[[Any], Any]
"""Turns a value JSON cannot hold into one it can; raise TypeError to refuse it."""
DecodeHook = Callable[[Any], Any]
"""Turns what ``encode_hook`` produced back into the original value."""

TAG = "$keel"
_TAG_BYTES = b'"$keel"'
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
# Level 1: on a 100 KB state about 1 ms instead of 7 at level 6, for blobs ~25 % larger.
# Snapshots are taken on the agent's path, just before risky steps; speed wins.
COMPRESSION_LEVEL = 1
# How deep the Python walks (tagging, untagging) go. Plain JSON data skips them and
# may nest as deep as msgspec allows (about the interpreter's recursion limit);
# data that needs tags must stay within this, far from the stack limit.
MAX_DEPTH = 200

_encoder = msgspec.json.Encoder(order="sorted")
_decode = msgspec.json.decode
_FAST_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError)


class CorruptData(Exception):  # noqa: N818 - internal; the managers raise CorruptStateError
    """The stored bytes fail their checksum or do not decode; ``args[0]`` says how."""


@dataclass(frozen=True, slots=True)
class EncodedState:
    """A state ready for the store."""

    blob: bytes
    checksum: str
    compressed: bool
    size: int


def checksum_of(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


class StateCodec:
    """Encodes and decodes states for one manager (its hooks and compression)."""

    __slots__ = ("compression", "decode_hook", "encode_hook", "owner")

    def __init__(
        self,
        *,
        compression: bool = True,
        encode_hook: EncodeHook | None = None,
        decode_hook: DecodeHook | None = None,
        owner: str = "the manager",
    ) -> None:
        self.compression = compression
        self.encode_hook = encode_hook
        self.decode_hook = decode_hook
        self.owner = owner

    # ------------------------------------------------------------------ encode
    def encode(self, value: Any, *, name: str = "state_data") -> EncodedState:
        """Canonical JSON of ``value``, compressed if that makes it smaller."""
        data = self.to_json(value, name=name)
        size = len(data)
        blob, compressed = data, False
        if self.compression:
            packed = zlib.compress(data, COMPRESSION_LEVEL)
            if len(packed) < size:
                blob, compressed = packed, True
        return EncodedState(blob=blob, checksum=checksum_of(blob), compressed=compressed, size=size)

    def to_json(self, value: Any, *, name: str = "state_data") -> bytes:
        """The canonical JSON bytes of ``value`` (before compression)."""
        # Fast path, all in C: if msgspec's JSON reads back equal to the value and
        # holds no tag, nothing was lost (a tuple, a set, an int key, inf or a
        # datetime would all read back different) and nothing needs escaping.
        try:
            data = _encoder.encode(value)
            if _TAG_BYTES not in data and _decode(data) == value:
                return data
        except Exception:  # noqa: BLE001, S110 - any surprise: the careful path explains it
            pass
        tagged = self._tagged(value, name, 0)
        try:
            return _encoder.encode(tagged)
        except _FAST_ERRORS as exc:  # e.g. a lone surrogate in a string
            raise StateEncodingError(f"{name} cannot be written as JSON: {exc}") from exc

    def _tagged(self, value: Any, path: str, depth: int) -> Any:  # noqa: PLR0911
        """``value`` as plain JSON data, with tags where JSON falls short."""
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {TAG: "float", "value": "nan" if math.isnan(value) else str(value)}
        if depth >= MAX_DEPTH:
            raise StateEncodingError(
                f"{path} is nested more than {MAX_DEPTH} levels deep in a state that needs "
                "tagging (it holds inf or nan, a '$keel' key, a value JSON cannot hold, or "
                "is nested beyond what JSON encoders accept): flatten the deep part, or "
                "store it as a string"
            )
        if isinstance(value, list):
            return [self._tagged(v, child_path(path, i), depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise StateEncodingError(
                        f"{path} has the key {key!r} ({type(key).__name__}), but JSON object "
                        "keys are strings: use string keys (str(key)), or a list of pairs"
                    )
                out[str.__str__(key)] = self._tagged(item, child_path(path, key), depth + 1)
            return {TAG: "dict", "value": out} if TAG in out else out
        return self._custom(value, path, depth)

    def _custom(self, value: Any, path: str, depth: int) -> Any:
        kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
        if self.encode_hook is None:
            raise StateEncodingError(
                f"{path} is a {kind}, which JSON cannot hold: convert it to JSON-compatible "
                f"data (None, bool, int, float, str, list, dict with str keys), or give "
                f"{self.owner} an encode_hook that turns a {kind} into such data (and a "
                "decode_hook that turns it back)"
            )
        try:
            encoded = self.encode_hook(value)
        except TypeError as exc:
            raise StateEncodingError(
                f"{path} is a {kind}, which JSON cannot hold, and the encode_hook of "
                f"{self.owner} refused it ({exc}): handle {kind} in the hook, or convert it"
            ) from exc
        if type(encoded) is type(value):
            raise StateEncodingError(
                f"the encode_hook of {self.owner} returned a {kind} for the {kind} at {path}: "
                "it must return JSON-compatible data (dicts, lists, strings, numbers)"
            )
        return {TAG: "custom", "value": self._tagged(encoded, path, depth + 1)}

    # ------------------------------------------------------------------ decode
    def decode(self, blob: bytes, checksum: str, compressed: bool) -> Any:
        """The state in ``blob`` once its checksum is proven; CorruptData otherwise."""
        actual = checksum_of(blob)
        if actual != checksum:
            raise CorruptData(
                f"SHA-256 mismatch: stored {checksum[:12]}…, the bytes hash to {actual[:12]}…"
            )
        try:
            data = zlib.decompress(blob) if compressed else blob
        except zlib.error as exc:
            raise CorruptData(f"the compressed bytes do not decompress: {exc}") from exc
        try:
            value = _decode(data)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise CorruptData(f"the bytes are not valid JSON: {exc}") from exc
        if _TAG_BYTES not in data:
            return value
        try:
            return self._untagged(value)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CorruptData(f"a {TAG!r} tag is malformed: {exc!r}") from exc

    def _untagged(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._untagged(v) for v in value]
        if not isinstance(value, dict):
            return value
        if TAG not in value:
            return {k: self._untagged(v) for k, v in value.items()}
        tag = value[TAG]
        payload = value["value"]
        if tag == "float":
            return _NON_FINITE[payload]
        if tag == "dict":
            return {k: self._untagged(v) for k, v in payload.items()}
        if tag == "custom":
            inner = self._untagged(payload)
            # Without a decode_hook the hook's output is returned as it was stored,
            # which is what tools without the hook (the CLI) want to show.
            return inner if self.decode_hook is None else self.decode_hook(inner)
        raise KeyError(f"unknown tag {tag!r}")
