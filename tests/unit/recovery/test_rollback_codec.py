"""The state codec: canonical JSON, tags where JSON falls short, checksums, no pickle."""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import Any

import pytest

from agentkeel.recovery import StateEncodingError
from agentkeel.recovery._state_codec import MAX_DEPTH, CorruptData, StateCodec


def roundtrip(value: Any, codec: StateCodec | None = None) -> Any:
    codec = codec or StateCodec()
    encoded = codec.encode(value)
    return codec.decode(encoded.blob, encoded.checksum, encoded.compressed)


def test_canonical_json_with_sorted_keys() -> None:
    codec = StateCodec(compression=False)
    assert codec.to_json({"b": 1, "a": [True, None, 1.5]}) == b'{"a":[true,null,1.5],"b":1}'
    encoded = codec.encode({"b": 1, "a": 2})
    assert encoded.blob == b'{"a":2,"b":1}'
    assert encoded.checksum == hashlib.sha256(b'{"a":2,"b":1}').hexdigest()
    assert (encoded.size, encoded.compressed) == (13, False)


def test_the_checksum_covers_the_compressed_bytes() -> None:
    encoded = StateCodec().encode(["repeat"] * 100)
    assert encoded.compressed
    assert encoded.checksum == hashlib.sha256(encoded.blob).hexdigest()
    assert zlib.decompress(encoded.blob) == StateCodec().to_json(["repeat"] * 100)


@pytest.mark.parametrize(
    "value",
    [
        math.inf,
        [-math.inf, 0.0, -0.0, 1e308, 5e-324],
        2**200,
        {"$keel": "a user's own key"},
        {"$keel": {"$keel": "float", "value": "inf"}},
        {"nested": [{"$keel": "custom", "value": 1}]},
        "$keel",
        {"text": '"$keel"'},
        "\x00 \u2028 \U0001f600",
        {"": ""},
    ],
)
def test_what_json_cannot_say_is_tagged_and_comes_back(value: Any) -> None:
    assert roundtrip(value) == value


def test_nan_comes_back_as_nan() -> None:
    back = roundtrip({"x": math.nan})
    assert math.isnan(back["x"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((1, 2), "state_data is a tuple"),
        ({"a": {1, 2}}, "state_data.a is a set"),
        ([b"raw"], r"state_data\[0\] is a bytes"),
        ({"k": object()}, "state_data.k is a object"),
        ({3: "x"}, "has the key 3 \\(int\\)"),
        ({"a": {None: 1}}, "state_data.a has the key None"),
        ({"bad key": complex(1, 2)}, 'state_data\\["bad key"\\] is a complex'),
    ],
)
def test_values_json_cannot_hold_are_refused_with_their_path(value: Any, message: str) -> None:
    with pytest.raises(StateEncodingError, match=message):
        StateCodec().encode(value)


def test_deep_plain_data_is_fine_but_deep_tagged_data_is_refused() -> None:
    plain: Any = "leaf"
    tagged: Any = math.inf
    for _ in range(MAX_DEPTH + 5):
        plain, tagged = [plain], [tagged]
    assert roundtrip(plain) == plain
    with pytest.raises(StateEncodingError, match="nested more than 200 levels"):
        StateCodec().encode(tagged)
    hopeless: Any = "leaf"
    for _ in range(5_000):  # beyond what any JSON encoder accepts
        hopeless = [hopeless]
    with pytest.raises(StateEncodingError, match="flatten the deep part"):
        StateCodec().encode(hopeless)


def test_hooks_are_called_for_custom_values_only() -> None:
    encoded_types: list[str] = []

    def encode(value: object) -> object:
        encoded_types.append(type(value).__name__)
        if isinstance(value, tuple):
            return {"items": list(value)}
        raise TypeError("unsupported")

    decoded: list[Any] = []

    def decode(data: Any) -> object:
        decoded.append(data)
        return tuple(data["items"])

    codec = StateCodec(encode_hook=encode, decode_hook=decode)
    state = {"pair": (1, (2, 3)), "plain": {"items": [9]}}
    assert roundtrip(state, codec) == state
    assert encoded_types == ["tuple", "tuple"]
    assert decoded == [{"items": [2, 3]}, {"items": [1, (2, 3)]}]  # inner first


def test_a_hook_returning_what_it_was_given_is_refused() -> None:
    codec = StateCodec(encode_hook=lambda v: v)
    with pytest.raises(StateEncodingError, match="returned a set for the set"):
        codec.encode({"s": {1}})


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(StateEncodingError, match="cannot be written as JSON"):
        StateCodec().encode("\ud800")


def test_subclasses_of_json_types_are_written_as_the_plain_types() -> None:
    import enum
    from collections import OrderedDict

    class Colour(enum.StrEnum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    state = OrderedDict(colour=Colour.RED, level=Level.HIGH)
    back = roundtrip(state)
    assert back == {"colour": "red", "level": 3}
    assert type(back["colour"]) is str
    assert type(back["level"]) is int


# ------------------------------------------------------------------------- decode
def _corrupt(blob: bytes, checksum: str, compressed: bool) -> str:
    with pytest.raises(CorruptData) as excinfo:
        StateCodec().decode(blob, checksum, compressed)
    return str(excinfo.value)


def test_a_checksum_mismatch_is_caught_before_anything_is_decoded() -> None:
    encoded = StateCodec().encode({"a": 1})
    assert "SHA-256 mismatch" in _corrupt(encoded.blob + b" ", encoded.checksum, False)


def test_bytes_with_a_matching_checksum_must_still_decode() -> None:
    def sha(blob: bytes) -> str:
        return hashlib.sha256(blob).hexdigest()

    assert "do not decompress" in _corrupt(b"not zlib", sha(b"not zlib"), True)
    assert "not valid JSON" in _corrupt(b"{", sha(b"{"), False)
    bad_tag = b'{"$keel":"float"}'
    assert "malformed" in _corrupt(bad_tag, sha(bad_tag), False)
    unknown = b'{"$keel":"pickle","value":1}'
    assert "unknown tag" in _corrupt(unknown, sha(unknown), False)
