"""Each package's ``__all__`` is the whole public API: complete, sorted, importable."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import agentkeel

PACKAGES = [
    "agentkeel",
    *sorted(
        name
        for _, name, is_pkg in pkgutil.walk_packages(agentkeel.__path__, "agentkeel.")
        if is_pkg and not name.rsplit(".", 1)[-1].startswith("_")
    ),
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ lists {symbol!r}, which does not exist"
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and not isinstance(value, types.ModuleType)
        and key not in {"annotations"}
    }
    assert public <= set(exported), (
        f"{name} exposes names missing from __all__: {public - set(exported)}"
    )


def test_private_modules_are_private() -> None:
    for _, name, is_pkg in pkgutil.walk_packages(agentkeel.__path__, "agentkeel."):
        leaf = name.rsplit(".", 1)[-1]
        assert is_pkg or leaf.startswith("_") or leaf in {"testing"}, (
            f"{name}: modules are private (_name); expose names through the package's __all__"
        )
