"""diff_states: added, removed and changed paths between two JSON-like states."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeel.recovery import Change, StateDiff, diff_states
from agentkeel.recovery._diff import MAX_DEPTH, child_path

JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


def test_the_seed_example() -> None:
    diff = diff_states(
        {"status": "running", "result": None},
        {"status": "completed", "result": "success", "phase": "final"},
    )
    assert diff.added == ("phase",)
    assert diff.removed == ()
    assert diff.changed == (
        Change("status", "running", "completed"),
        Change("result", None, "success"),
    )
    assert diff.total_changes == 3
    assert diff.to_dict() == {
        "added": ["phase"],
        "removed": [],
        "changed": [
            {"path": "status", "old": "running", "new": "completed"},
            {"path": "result", "old": None, "new": "success"},
        ],
        "total_changes": 3,
    }


def test_nested_paths_read_like_attribute_access() -> None:
    old = {"plan": {"steps": [{"tool": "search"}, {"tool": "book"}, {"tool": "pay"}]}}
    new = {"plan": {"steps": [{"tool": "search"}, {"tool": "book"}, {"tool": "refund"}]}}
    (change,) = diff_states(old, new).changed
    assert change == Change("plan.steps[2].tool", "pay", "refund")
    path, before, after = change  # a (path, old, new) triple
    assert (path, before, after) == ("plan.steps[2].tool", "pay", "refund")


def test_lists_are_compared_by_index() -> None:
    diff = diff_states({"l": [1, 2, 3]}, {"l": [1, 5]})
    assert diff.changed == (Change("l[1]", 2, 5),)
    assert diff.removed == ("l[2]",)
    grown = diff_states([1], [1, 2, 3])
    assert grown.added == ("[1]", "[2]")


def test_type_changes_are_one_change_not_a_recursion() -> None:
    assert diff_states({"a": {"x": 1}}, {"a": [1]}).changed == (Change("a", {"x": 1}, [1]),)
    assert diff_states({"a": 1}, {"a": 1.0}).total_changes == 1
    assert diff_states({"a": 1}, {"a": True}).total_changes == 1
    assert diff_states({"a": 0}, {"a": False}).total_changes == 1
    assert diff_states({"a": None}, {"a": {}}).total_changes == 1


def test_the_whole_state_has_the_empty_path() -> None:
    diff = diff_states(1, 2)
    assert diff.changed == (Change("", 1, 2),)
    assert "(whole state)" in diff.render()


def test_odd_keys_are_quoted() -> None:
    assert child_path("", "a.b") == '["a.b"]'
    assert child_path("meta", "content-type") == 'meta["content-type"]'
    assert child_path("m", "") == 'm[""]'
    assert child_path("m", "ok_1") == "m.ok_1"
    assert child_path("m", 3) == "m[3]"
    assert child_path("m", (1, 2)) == "m[(1, 2)]"
    assert diff_states({"a b": 1}, {}).removed == ('["a b"]',)


def test_nan_equals_nan_and_identical_states_have_no_changes() -> None:
    assert not diff_states({"x": math.nan}, {"x": math.nan})
    assert diff_states({}, {}) == StateDiff()
    assert StateDiff().render() == "no changes"


def test_render_shows_every_change() -> None:
    diff = diff_states({"a": 1, "gone": 2, "s": "x" * 200}, {"a": 2, "new": 3, "s": "y"})
    text = diff.render(width=20).splitlines()
    assert text[0] == "+ new"
    assert text[1] == "- gone"
    assert text[2] == "~ a: 1 -> 2"
    assert text[3] == '~ s: "' + "x" * 18 + '… -> "y"'  # cut to 20 characters


def test_very_deep_states_do_not_exhaust_the_stack() -> None:
    old: Any = 1
    new: Any = 2
    for _ in range(MAX_DEPTH * 3):
        old, new = [old], [new]
    diff = diff_states(old, new)
    assert diff.total_changes == 1
    assert diff.changed[0].path.count("[0]") == MAX_DEPTH
    assert not diff_states(old, [*old])  # equal, compared without recursion
    deep_old: Any = 1
    deep_new: Any = 2
    for _ in range(50_000):
        deep_old, deep_new = {"k": deep_old}, {"k": deep_new}
    assert not diff_states(deep_old, deep_old)
    far = diff_states(deep_old, deep_new)
    assert far.total_changes == 1
    assert "too deep to show" in far.render()


@settings(max_examples=300, deadline=None)
@given(a=JSON_LIKE, b=JSON_LIKE)
def test_no_changes_exactly_when_the_json_is_the_same(a: Any, b: Any) -> None:
    def canon(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    diff = diff_states(a, b)
    assert (diff.total_changes == 0) == (canon(a) == canon(b))
    assert not diff_states(a, a)
    paths = [*diff.added, *diff.removed, *(c.path for c in diff.changed)]
    assert len(paths) == len(set(paths))


@settings(max_examples=200, deadline=None)
@given(a=JSON_LIKE, b=JSON_LIKE)
def test_the_diff_backwards_swaps_added_and_removed(a: Any, b: Any) -> None:
    forward, backward = diff_states(a, b), diff_states(b, a)
    assert set(forward.added) == set(backward.removed)
    assert set(forward.removed) == set(backward.added)
    assert {c.path for c in forward.changed} == {c.path for c in backward.changed}
