"""The compatibility manager against the frameworks really installed here."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json

import pytest
from typer.testing import CliRunner

from agentkeel.cli import app
from agentkeel.integrations import (
    CompatibilityInfo,
    CompatibilityManager,
    FrameworkNotSupportedError,
    FrameworkSpec,
    FrameworkStatus,
    get_compatibility_manager,
)
from agentkeel.integrations._compat import DEFAULT_SPECS, version_tuple

SEED_NAMES = {"langchain", "langgraph", "openai", "autogen", "pyautogen", "crewai"}


def _spec(**overrides: object) -> FrameworkSpec:
    values: dict[str, object] = {
        "name": "probe",
        "distributions": ("langchain-core",),
        "install_hint": "pip install probe",
        "compatibility": CompatibilityInfo(min_version="0.1", max_version="99"),
        "features": {"callbacks": ("langchain_core.callbacks:BaseCallbackHandler",)},
    }
    values.update(overrides)
    return FrameworkSpec(**values)  # type: ignore[arg-type]


def test_every_installed_framework_is_detected_with_its_version() -> None:
    found = asyncio.run(CompatibilityManager().detect_all_frameworks())
    assert set(found) == SEED_NAMES
    for name, dist in [
        ("langchain", "langchain-core"),
        ("langgraph", "langgraph"),
        ("openai", "openai"),
        ("autogen", "autogen-agentchat"),
        ("crewai", "crewai"),
    ]:
        info = found[name]
        assert info.status is FrameworkStatus.AVAILABLE, info.error_message
        assert info.version == importlib.metadata.version(dist)
        assert info.missing_features == ()
        assert info.available_features
        assert info.compatibility is not None and info.compatibility.supports(info.version)
    # pyautogen (AutoGen 0.2) is not installed here: detected as such, with advice.
    legacy = found["pyautogen"]
    assert legacy.status is FrameworkStatus.UNAVAILABLE
    assert legacy.version is None
    assert "pip install" in (legacy.error_message or "")


def test_detect_one_and_the_breaking_changes() -> None:
    manager = CompatibilityManager()
    info = asyncio.run(manager.detect_framework("langchain"))
    assert info.is_available
    assert info.compatibility is not None
    assert "1.0" in info.compatibility.breaking_changes
    assert asyncio.run(manager.detect_framework("autogen-agentchat")).name == "autogen"


def test_an_unknown_framework_is_refused_with_the_known_ones() -> None:
    with pytest.raises(FrameworkNotSupportedError, match=r"unknown framework 'smolagents'.*crewai"):
        asyncio.run(CompatibilityManager().detect_framework("smolagents"))


def test_not_installed_out_of_range_and_missing_features() -> None:
    manager = CompatibilityManager(
        specs=[
            _spec(name="absent", distributions=("no-such-dist-keel",)),
            _spec(
                name="too-new",
                compatibility=CompatibilityInfo(min_version="0.1", max_version="0.2"),
            ),
            _spec(
                name="broken",
                features={
                    "callbacks": ("langchain_core.callbacks:BaseCallbackHandler",),
                    "teleport": ("langchain_core:NoSuchThing", "no_such_module_keel:X"),
                },
                compatibility=CompatibilityInfo(
                    min_version="0.1", max_version="99", required_features=("teleport",)
                ),
            ),
            _spec(name="optional", features={"teleport": ("langchain_core:NoSuchThing",)}),
        ]
    )
    found = manager.detect_all_frameworks_sync()
    assert found["absent"].status is FrameworkStatus.UNAVAILABLE
    assert found["absent"].error_message == "not installed: pip install probe"
    assert found["too-new"].status is FrameworkStatus.INCOMPATIBLE
    assert "outside the supported range >=0.1,<0.2" in (found["too-new"].error_message or "")
    broken = found["broken"]
    assert broken.status is FrameworkStatus.INCOMPATIBLE
    assert broken.missing_features == ("teleport",)
    assert broken.available_features == ("callbacks",)
    assert "required features missing: teleport" in (broken.error_message or "")
    assert "no_such_module_keel" in (broken.error_message or "")
    # A missing optional feature is reported, but the framework stays usable.
    assert found["optional"].status is FrameworkStatus.AVAILABLE
    assert found["optional"].missing_features == ("teleport",)


def test_matrix_cache_and_quick_mode() -> None:
    manager = CompatibilityManager(specs=[_spec()])
    matrix = manager.get_framework_matrix()
    row = matrix["probe"]
    assert row["current_version"] == importlib.metadata.version("langchain-core")
    assert (row["min_version"], row["max_version"], row["status"]) == ("0.1", "99", "available")
    quick = manager.get_framework_matrix(import_features=False)["probe"]
    assert quick["available_features"] == [] and quick["status"] == "available"
    # Cached until cleared: a spec change shows only after clear_cache (or register).
    first = manager.detect_framework_sync("probe")
    assert manager.detect_framework_sync("probe") is first
    manager.clear_cache()
    assert manager.detect_framework_sync("probe") is not first
    manager.register(_spec(compatibility=CompatibilityInfo(min_version="0", max_version="0.1")))
    assert manager.detect_framework_sync("probe").status is FrameworkStatus.INCOMPATIBLE


def test_the_process_wide_manager_is_shared() -> None:
    assert get_compatibility_manager() is get_compatibility_manager()
    assert set(get_compatibility_manager().frameworks) == SEED_NAMES
    assert {s.name for s in DEFAULT_SPECS} == SEED_NAMES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.7.2", (1, 7, 2)),
        ("v0.4", (0, 4)),
        ("2.0.0rc1", (2, 0, 0)),
        ("0.1.80.dev3", (0, 1, 80)),
        ("", (0,)),
    ],
)
def test_version_tuple(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_keel_frameworks_prints_the_matrix() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["frameworks", "--json"])
    assert result.exit_code == 0, result.output
    matrix = json.loads(result.output)
    assert matrix["openai"]["current_version"] == importlib.metadata.version("openai")
    assert matrix["openai"]["status"] == "available"
    table = runner.invoke(app, ["frameworks", "--quick"])
    assert table.exit_code == 0
    assert "langgraph" in table.output and "not installed" in table.output


def test_keel_frameworks_exits_1_when_one_is_incompatible(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = CompatibilityManager(
        specs=[_spec(compatibility=CompatibilityInfo(min_version="0", max_version="0.1"))]
    )
    monkeypatch.setattr("agentkeel.integrations.get_compatibility_manager", lambda: manager)
    result = CliRunner().invoke(app, ["frameworks"])
    assert result.exit_code == 1
    assert "outside the supported range" in result.output
