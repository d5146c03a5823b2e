"""What a LangChain callback tells about a run: names, model, token usage; option checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from agentkeel._errors import ConfigurationError

if TYPE_CHECKING:
    from langchain_core.outputs import LLMResult

ChainDetail = Literal["nodes", "all"]


def name_of(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str | None:
    name = kwargs.get("name")
    if name:
        return str(name)
    if serialized:
        found = serialized.get("name")
        if found:
            return str(found)
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return None


def model_name(
    serialized: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> str:
    params = kwargs.get("invocation_params")
    if params:
        model = params.get("model") or params.get("model_name") or params.get("model_id")
        if model:
            return str(model)
    if metadata:
        model = metadata.get("ls_model_name")
        if model:
            return str(model)
    return name_of(serialized, kwargs) or "llm"


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage(response: LLMResult, attrs: dict[str, Any]) -> None:
    """Token usage, response model and finish reason, from wherever the provider put them."""
    message: Any = None
    info: Mapping[str, Any] | None = None
    generations = response.generations
    if generations and generations[0]:
        first = generations[0][0]
        message = getattr(first, "message", None)
        info = first.generation_info
    usage = getattr(message, "usage_metadata", None)
    llm_output = response.llm_output
    input_tokens = output_tokens = None
    if usage:
        input_tokens = _count(usage.get("input_tokens"))
        output_tokens = _count(usage.get("output_tokens"))
    elif llm_output:
        tokens = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(tokens, Mapping):
            input_tokens = _count(tokens.get("prompt_tokens", tokens.get("input_tokens")))
            output_tokens = _count(tokens.get("completion_tokens", tokens.get("output_tokens")))
    if input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = output_tokens
    meta = getattr(message, "response_metadata", None)
    model = finish = None
    if meta:
        model = meta.get("model_name") or meta.get("model")
        finish = meta.get("finish_reason") or meta.get("stop_reason")
    if model is None and llm_output:
        model = llm_output.get("model_name") or llm_output.get("model")
    if finish is None and info:
        finish = info.get("finish_reason")
    if model:
        attrs["gen_ai.response.model"] = str(model)
    if finish:
        attrs["gen_ai.response.finish_reasons"] = [str(finish)]
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls:
        attrs["tool_calls"] = len(tool_calls)


def check_options(
    capture_content: object, max_content_chars: object, chains: object
) -> tuple[bool, int, ChainDetail]:
    if not isinstance(capture_content, bool):
        raise ConfigurationError(
            f"capture_content must be True or False, got {capture_content!r}: "
            "True records prompts, messages and tool inputs/outputs (redacted, truncated)"
        )
    if (
        isinstance(max_content_chars, bool)
        or not isinstance(max_content_chars, int)
        or max_content_chars < 1
    ):
        raise ConfigurationError(
            f"max_content_chars must be an integer >= 1, got {max_content_chars!r}"
        )
    if chains not in ("nodes", "all"):
        raise ConfigurationError(
            f"chains must be 'nodes' (LangGraph nodes, tools, models) or 'all' (every "
            f"chain LangChain reports), got {chains!r}"
        )
    return capture_content, max_content_chars, chains
