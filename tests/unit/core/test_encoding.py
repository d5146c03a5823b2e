from __future__ import annotations

import datetime as dt
import json
import uuid

from agentkeel._encoding import safe_repr, to_json, to_json_bounded, truncate


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("nope")


def test_odd_values_become_safe_text() -> None:
    data = json.loads(
        to_json(
            {
                "when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                "id": uuid.UUID(int=1),
                "obj": BrokenRepr(),
                "err": ValueError("bad"),
                "set": {2, 1},
            }
        )
    )
    assert data["when"].startswith("2026-01-02")
    assert data["obj"].startswith("<BrokenRepr object (repr failed")
    assert data["err"] == "ValueError: bad"
    assert sorted(data["set"]) == [1, 2]


def test_oversized_values_are_cut_with_a_marker() -> None:
    data = json.loads(to_json_bounded({"out": "x" * 1_000_000, "many": list(range(5_000))}))
    assert data["out"].endswith("…[truncated 991808 chars]")
    assert len(data["many"]) == 1_001
    assert truncate("short") == "short"
    assert len(safe_repr("y" * 10_000)) < 600


def test_cycles_do_not_crash() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    assert to_json(cyclic)  # something readable, never an exception
