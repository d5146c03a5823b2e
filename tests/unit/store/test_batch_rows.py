"""The writer's column-by-column fast path gives exactly the careful path's rows."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeel import Category, Event, EventType, Severity
from agentkeel._encoding import MAX_STRING
from agentkeel.store._derive import _plain_batch_rows, careful_rows, unique_rows

# Mostly what agents send, with every kind of value the careful path has to clean.
texts = st.one_of(
    st.sampled_from(["tool.start", "step.end", "run-1", "a" * MAX_STRING]),
    st.text(max_size=12),  # non-ASCII, NUL, lone surrogates
    st.just("b" * (MAX_STRING + 1)),
)
optional_texts = st.one_of(st.none(), texts, st.sampled_from(list(Category)))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    texts,
)
attribute_values = st.one_of(leaves, st.lists(leaves, max_size=3), st.binary(max_size=4))
attributes = st.one_of(
    st.dictionaries(st.text(max_size=5), attribute_values, max_size=4),
    st.dictionaries(st.integers(), leaves, max_size=2),  # keys that are not str
    st.just({f"k{i}": i for i in range(1_001)}),  # too many items
)
ints = st.one_of(st.integers(min_value=0, max_value=2**64), st.booleans())


@st.composite
def events(draw: st.DrawFn) -> Event:
    return Event(
        type=draw(st.one_of(texts, st.sampled_from(list(EventType)))),
        name=draw(st.one_of(texts, st.none(), st.integers())),
        severity=draw(st.one_of(st.sampled_from(list(Severity)), ints)),
        category=draw(optional_texts),
        attributes=draw(attributes),
        run_id=draw(optional_texts),
        correlation_id=draw(optional_texts),
        span_id=draw(optional_texts),
        parent_span_id=draw(st.one_of(st.none(), texts)),
        wall_ns=draw(ints),
        mono_ns=draw(ints),
        seq=draw(st.one_of(st.integers(min_value=1, max_value=5), ints)),
        origin=draw(st.sampled_from(["o", "p"])),
    )


def plain_event(seq: int, **fields: Any) -> Event:
    defaults: dict[str, Any] = {
        "type": "tool.start",
        "name": "add",
        "severity": 0,
        "attributes": {"tool": "add", "duration_ms": 1.5, "attempt": 2, "ok": True, "x": None},
        "run_id": "run-1",
        "span_id": "s1",
        "parent_span_id": "s0",
        "wall_ns": 1_700_000_000_000_000_000,
        "mono_ns": 123,
        "seq": seq,
        "origin": "o",
    }
    return Event(**{**defaults, **fields})


@settings(max_examples=400, deadline=None)
@given(st.lists(events(), max_size=6))
def test_any_batch_gets_the_careful_rows(batch: list[Event]) -> None:
    assert unique_rows(batch) == careful_rows(batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(events(), min_size=1, max_size=4), st.integers(min_value=0, max_value=40))
def test_one_odd_event_among_plain_ones_gets_the_careful_rows(odd: list[Event], plain: int) -> None:
    batch = [plain_event(seq) for seq in range(100, 100 + plain)] + odd
    assert unique_rows(batch) == careful_rows(batch)


def test_the_batches_agents_send_take_the_fast_path() -> None:
    batch = [plain_event(seq) for seq in range(1, 50)]
    batch.append(plain_event(50, type=EventType.FAILURE, severity=Severity.HIGH,
                             category=Category.NETWORK, parent_span_id=None))  # fmt: skip
    rows = _plain_batch_rows(batch)
    assert rows is not None
    assert rows == careful_rows(batch)
    assert type(rows[-1][2]) is str and type(rows[-1][4]) is int  # enums as plain values


def test_what_needs_cleaning_takes_the_careful_path() -> None:
    for odd in (
        plain_event(2, name="nul\x00"),
        plain_event(2, name="é"),
        plain_event(2, name="x" * (MAX_STRING + 1)),
        plain_event(2, attributes={"tags": ["a"]}),
        plain_event(2, attributes={1: "a"}),
        plain_event(2, attributes={"bad": "\udc80"}),  # a lone surrogate
        plain_event(2, attributes={"nul": "\x00"}),
        plain_event(2, attributes={"long": "y" * MAX_STRING}),
        plain_event(True),  # a bool where an int belongs
        plain_event(2, wall_ns=2**64),
        plain_event(1),  # the same event twice
    ):
        batch = [plain_event(1), odd]
        assert _plain_batch_rows(batch) is None
        assert unique_rows(batch) == careful_rows(batch)


ascii_texts = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
plain_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    # Any text but NUL and lone surrogates (both need cleaning): non-ASCII is plain.
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=10),
)


@st.composite
def plain_events(draw: st.DrawFn, seq: int) -> Event:
    return plain_event(
        seq,
        type=draw(st.one_of(ascii_texts, st.sampled_from(list(EventType)))),
        name=draw(ascii_texts),
        severity=draw(st.one_of(st.sampled_from(list(Severity)), st.integers(0, 4))),
        category=draw(st.one_of(st.none(), st.sampled_from(list(Category)))),
        attributes=draw(st.dictionaries(ascii_texts, plain_leaves, max_size=5)),
        run_id=draw(st.one_of(st.none(), ascii_texts)),
        parent_span_id=draw(st.one_of(st.none(), ascii_texts)),
        wall_ns=draw(st.integers(min_value=0, max_value=2**63 - 1)),
    )


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(min_value=1, max_value=30))
def test_varied_plain_batches_take_the_fast_path_and_agree(data: st.DataObject, size: int) -> None:
    batch = [data.draw(plain_events(seq)) for seq in range(1, size + 1)]
    rows = _plain_batch_rows(batch)
    assert rows is not None
    assert rows == careful_rows(batch)
