"""Which agent frameworks are installed here, in which versions, with which features.

Detection reads the installed distribution's metadata first (cheap, no import), then
imports the framework once, in a worker thread, to see which of the features our
instrumentors use are really there. Results are cached until :meth:`clear_cache`.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import importlib.metadata
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentkeel._errors import KeelError


class FrameworkNotSupportedError(KeelError, LookupError):
    """Asked about a framework agentkeel knows nothing about."""


class FrameworkStatus(enum.StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"  # not installed
    INCOMPATIBLE = "incompatible"  # installed, but a version or feature we cannot work with


@dataclass(frozen=True, kw_only=True)
class CompatibilityInfo:
    """The versions an integration supports: ``min_version`` <= v < ``max_version``."""

    min_version: str
    max_version: str
    breaking_changes: Mapping[str, str] = field(default_factory=dict)
    required_features: tuple[str, ...] = ()

    def supports(self, version: str) -> bool:
        v = version_tuple(version)
        return version_tuple(self.min_version) <= v < version_tuple(self.max_version)


@dataclass(frozen=True, kw_only=True)
class FrameworkSpec:
    """What to look for. ``features`` maps a feature's name to ``module:attribute``
    paths; the first one that imports makes the feature available."""

    name: str
    distributions: tuple[str, ...]
    install_hint: str
    compatibility: CompatibilityInfo
    features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FrameworkInfo:
    name: str
    status: FrameworkStatus
    version: str | None = None
    distribution: str | None = None
    available_features: tuple[str, ...] = ()
    missing_features: tuple[str, ...] = ()
    error_message: str | None = None
    compatibility: CompatibilityInfo | None = None

    @property
    def is_available(self) -> bool:
        return self.status is FrameworkStatus.AVAILABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "version": self.version,
            "distribution": self.distribution,
            "available_features": list(self.available_features),
            "missing_features": list(self.missing_features),
            "error_message": self.error_message,
        }


_NUMBERS = re.compile(r"\d+")


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.7.2rc1"`` -> ``(1, 7, 2)``: the release numbers, enough to compare ranges."""
    release = re.split(r"[^\d.]", version.strip().lstrip("vV"), maxsplit=1)[0]
    numbers = tuple(int(n) for n in _NUMBERS.findall(release))
    return numbers or (0,)


def _spec(
    name: str,
    distributions: tuple[str, ...],
    extra: str,
    versions: tuple[str, str],
    features: Mapping[str, tuple[str, ...]],
    *,
    required: tuple[str, ...],
    breaking: Mapping[str, str] | None = None,
) -> FrameworkSpec:
    return FrameworkSpec(
        name=name,
        distributions=distributions,
        install_hint=extra,
        compatibility=CompatibilityInfo(
            min_version=versions[0],
            max_version=versions[1],
            breaking_changes=dict(breaking or {}),
            required_features=required,
        ),
        features=features,
    )


DEFAULT_SPECS: tuple[FrameworkSpec, ...] = (
    _spec(
        "langchain",
        ("langchain-core",),
        "pip install 'agentkeel[langchain]'",
        ("0.3", "2.0"),
        {
            "callbacks": ("langchain_core.callbacks:BaseCallbackHandler",),
            "chat_models": ("langchain_core.language_models:BaseChatModel",),
            "tools": ("langchain_core.tools:BaseTool",),
            "retrievers": ("langchain_core.retrievers:BaseRetriever",),
            "fake_chat_models": (
                "langchain_core.language_models.fake_chat_models:GenericFakeChatModel",
            ),
        },
        required=("callbacks",),
        breaking={
            "0.3": "pydantic 2 only; callbacks of 0.1/0.2 handlers keep working",
            "1.0": "agents move to langchain.agents.create_agent; "
            "langgraph.prebuilt.create_react_agent stays as a deprecated alias",
        },
    ),
    _spec(
        "langgraph",
        ("langgraph",),
        "pip install 'agentkeel[langchain]'",
        ("0.2", "2.0"),
        {
            "state_graph": ("langgraph.graph:StateGraph",),
            "prebuilt_agents": ("langgraph.prebuilt:create_react_agent",),
            "tool_node": ("langgraph.prebuilt:ToolNode",),
            "retry_policy": ("langgraph.types:RetryPolicy", "langgraph.pregel:RetryPolicy"),
        },
        required=("state_graph",),
        breaking={"1.0": "create_react_agent deprecated in favour of langchain's create_agent"},
    ),
    _spec(
        "openai",
        ("openai",),
        "pip install 'agentkeel[openai]'",
        ("1.40", "3.0"),
        {
            "sync_client": ("openai:OpenAI",),
            "async_client": ("openai:AsyncOpenAI",),
            "streaming": ("openai:Stream",),
            "typed_errors": ("openai:RateLimitError",),
        },
        required=("sync_client", "typed_errors"),
        breaking={"1.0": "module-level openai.ChatCompletion replaced by client objects"},
    ),
    _spec(
        "autogen",
        ("autogen-agentchat",),
        "pip install 'agentkeel[autogen]'",
        ("0.4", "1.0"),
        {
            "agents": ("autogen_agentchat.agents:AssistantAgent",),
            "event_logger": ("autogen_core:EVENT_LOGGER_NAME",),
            "replay_client": ("autogen_ext.models.replay:ReplayChatCompletionClient",),
        },
        required=("agents", "event_logger"),
        breaking={"0.4": "rewritten as autogen-agentchat/autogen-core; pyautogen 0.2 API removed"},
    ),
    _spec(
        "pyautogen",
        ("pyautogen", "ag2"),
        "pip install 'agentkeel[autogen]' (agentkeel instruments AutoGen 0.4+)",
        ("0.2", "0.3"),
        {"conversable_agent": ("autogen:ConversableAgent",)},
        required=("conversable_agent",),
        breaking={"0.4": "superseded by autogen-agentchat, which agentkeel instruments"},
    ),
    _spec(
        "crewai",
        ("crewai",),
        "pip install 'agentkeel[crewai]'",
        ("0.100", "2.0"),
        {
            "event_bus": (
                "crewai.events:crewai_event_bus",
                "crewai.utilities.events:crewai_event_bus",
            ),
            "custom_llm": ("crewai.llms.base_llm:BaseLLM", "crewai:BaseLLM"),
            "step_callback": ("crewai:Crew",),
        },
        required=("event_bus",),
        breaking={"1.0": "event bus moved to crewai.events"},
    ),
)


def _installed(distributions: Iterable[str]) -> tuple[str, str] | None:
    for dist in distributions:
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _resolve(path: str) -> bool:
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    return not attribute or hasattr(module, attribute)


def detect(spec: FrameworkSpec, *, import_features: bool = True) -> FrameworkInfo:
    """Detect one framework now.

    With ``import_features`` (the default) the framework is imported to check its
    features, which may take seconds for a big one; without, only the installed
    version is read, which is what a health probe can afford.
    """
    found = _installed(spec.distributions)
    if found is None:
        return FrameworkInfo(
            name=spec.name,
            status=FrameworkStatus.UNAVAILABLE,
            error_message=f"not installed: {spec.install_hint}",
            missing_features=tuple(spec.features),
            compatibility=spec.compatibility,
        )
    dist, version = found
    available: list[str] = []
    missing: list[str] = []
    errors: list[str] = []
    for feature, paths in spec.features.items() if import_features else ():
        ok = False
        for path in paths:
            try:
                ok = _resolve(path)
            except Exception as exc:  # noqa: BLE001 - a broken install is what we report
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
            if ok:
                break
        (available if ok else missing).append(feature)
    compat = spec.compatibility
    problems: list[str] = []
    if not compat.supports(version):
        problems.append(
            f"{dist} {version} is outside the supported range "
            f">={compat.min_version},<{compat.max_version}"
        )
    lacking = [f for f in compat.required_features if f in missing]
    if lacking:
        problems.append(f"required features missing: {', '.join(lacking)}")
        problems.extend(errors[:2])
    return FrameworkInfo(
        name=spec.name,
        status=FrameworkStatus.INCOMPATIBLE if problems else FrameworkStatus.AVAILABLE,
        version=version,
        distribution=dist,
        available_features=tuple(available),
        missing_features=tuple(missing),
        error_message="; ".join(problems) or None,
        compatibility=compat,
    )


class CompatibilityManager:
    """Detects the supported frameworks and answers from a cache afterwards."""

    def __init__(self, *, specs: Iterable[FrameworkSpec] = DEFAULT_SPECS) -> None:
        self._specs: dict[str, FrameworkSpec] = {s.name: s for s in specs}
        self._cache: dict[tuple[str, bool], FrameworkInfo] = {}
        self._lock = threading.Lock()

    @property
    def frameworks(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def register(self, spec: FrameworkSpec) -> None:
        """Add (or replace) a framework to detect."""
        with self._lock:
            self._specs[spec.name] = spec
            self._cache.pop((spec.name, True), None)
            self._cache.pop((spec.name, False), None)

    def _spec_for(self, name: str) -> FrameworkSpec:
        key = "autogen" if name == "autogen-agentchat" else name
        spec = self._specs.get(key)
        if spec is None:
            raise FrameworkNotSupportedError(
                f"unknown framework {name!r}: agentkeel detects {', '.join(self._specs)}"
            )
        return spec

    def detect_framework_sync(self, name: str, *, import_features: bool = True) -> FrameworkInfo:
        spec = self._spec_for(name)
        key = (spec.name, import_features)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        info = detect(spec, import_features=import_features)
        with self._lock:
            return self._cache.setdefault(key, info)

    def detect_all_frameworks_sync(
        self, *, import_features: bool = True
    ) -> dict[str, FrameworkInfo]:
        return {
            name: self.detect_framework_sync(name, import_features=import_features)
            for name in list(self._specs)
        }

    async def detect_framework(self, name: str) -> FrameworkInfo:
        """Detect one framework without blocking the event loop (imports run in a thread)."""
        self._spec_for(name)  # unknown names fail here, in the caller's task
        return await asyncio.to_thread(self.detect_framework_sync, name)

    async def detect_all_frameworks(self) -> dict[str, FrameworkInfo]:
        # One worker thread for all: imports of related packages must not race each other.
        return await asyncio.to_thread(self.detect_all_frameworks_sync)

    def get_framework_matrix(self, *, import_features: bool = True) -> dict[str, dict[str, Any]]:
        """Supported range, installed version and status per framework.

        ``import_features=False`` judges by the installed versions alone (no imports).
        """
        matrix: dict[str, dict[str, Any]] = {}
        for name, info in self.detect_all_frameworks_sync(import_features=import_features).items():
            compat = self._specs[name].compatibility
            matrix[name] = {
                "min_version": compat.min_version,
                "max_version": compat.max_version,
                "current_version": info.version,
                "status": info.status.value,
                "available_features": list(info.available_features),
                "missing_features": list(info.missing_features),
                "error_message": info.error_message,
            }
        return matrix

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


_manager: CompatibilityManager | None = None
_manager_lock = threading.Lock()


def get_compatibility_manager() -> CompatibilityManager:
    """The process-wide manager (its cache is shared by `keel health` and instrumentors)."""
    global _manager  # noqa: PLW0603 - one per process, like logging's root logger
    with _manager_lock:
        if _manager is None:
            _manager = CompatibilityManager()
        return _manager
