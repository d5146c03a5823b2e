"""Properties: a rollback restores a deep-equal state; a flipped bit is never restored."""

from __future__ import annotations

import math
from typing import Any

import pytest
from _recovery_helpers import FakeClock, flip_byte
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentkeel.recovery import CorruptSnapshotError, RollbackManager
from agentkeel.recovery._state_codec import StateCodec
from agentkeel.store import Store

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)  # infinities included: they are tagged
    | st.text()
)
JSON_LIKE = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12) | st.just("$keel"), children, max_size=6)
    ),
    max_leaves=40,
)
# The store fixture is reused across examples on purpose: each example makes its own
# snapshot, and reopening PostgreSQL per example would make the test take minutes.
REUSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def same(a: Any, b: Any) -> bool:
    """Deep equality that also holds for -0.0/0.0 and tells bools from ints."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@settings(max_examples=300, suppress_health_check=REUSED, deadline=None)
@given(state=JSON_LIKE, compression=st.booleans())
@example(state={"$keel": {"$keel": "float", "value": "inf"}}, compression=True)
@example(state=[math.inf, -math.inf, -0.0, 2**100, -(2**70)], compression=False)
@example(state={"": {"a.b": {"[0]": "\x00"}}}, compression=True)
def test_rollback_restores_a_deep_equal_state_in_memory(
    memory_store: Store, state: Any, compression: bool
) -> None:
    rollback = RollbackManager(store=memory_store, compression=compression, clock=FakeClock())
    snapshot_id = rollback.create_snapshot_sync(agent_id="agent", state_data=state)
    result = rollback.rollback_sync("agent", snapshot_id)
    assert result.success
    assert result.state == state
    assert same(result.state, state)


@settings(max_examples=40, suppress_health_check=REUSED, deadline=None)
@given(state=JSON_LIKE, compression=st.booleans())
def test_rollback_restores_a_deep_equal_state_on_every_backend(
    store: Store, state: Any, compression: bool
) -> None:
    rollback = RollbackManager(
        store=store, compression=compression, max_snapshots=1000, clock=FakeClock()
    )
    snapshot_id = rollback.create_snapshot_sync(agent_id="agent", state_data=state)
    assert same(rollback.rollback_sync("agent", snapshot_id).state, state)
    assert same(rollback.rollback_sync("agent").state, state)  # the latest good one


@settings(max_examples=200, suppress_health_check=REUSED, deadline=None)
@given(
    state=JSON_LIKE,
    compression=st.booleans(),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    mask=st.integers(min_value=1, max_value=255),
)
def test_a_flipped_byte_anywhere_is_detected_and_never_restored(
    memory_store: Store, state: Any, compression: bool, where: float, mask: int
) -> None:
    rollback = RollbackManager(
        store=memory_store, compression=compression, max_snapshots=1000, clock=FakeClock()
    )
    older = rollback.create_snapshot_sync(agent_id="agent", state_data={"older": True})
    target = rollback.create_snapshot_sync(agent_id="agent", state_data=state)
    record = memory_store.get_snapshot(target)
    assert record is not None
    flip_byte(memory_store, target, position=int(where * len(record.blob)), mask=mask)

    with pytest.raises(CorruptSnapshotError) as excinfo:
        rollback.get_snapshot_sync(target)
    assert excinfo.value.fallback_id == older
    result = rollback.rollback_sync("agent")
    assert result.snapshot_id == older
    assert result.state == {"older": True}
    memory_store.delete_snapshots([older, target])


@settings(max_examples=300, deadline=None)
@given(state=JSON_LIKE)
def test_encoding_is_canonical(state: Any) -> None:
    """The same state gives the same bytes (and checksum), whatever its key order."""
    codec = StateCodec()

    def reordered(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reordered(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reordered(v) for v in value]
        return value

    assert codec.encode(state) == codec.encode(reordered(state))
