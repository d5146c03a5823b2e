"""KeelCallbackHandler on real LangChain / LangGraph runs: events, nesting, usage, errors."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from _langchain_fakes import (
    BrokenLibrary,
    Library,
    add,
    adding_script,
    answer,
    model,
    react_agent,
    runs,
    stored,
    tool_call,
)
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManager
from langchain_core.messages import HumanMessage
from langchain_core.outputs import Generation, LLMResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.integrations import RobustConfig, RobustInstrumentor
from agentkeel.integrations.langchain import KeelCallbackHandler, instrument_langchain

INPUT = {"messages": [("user", "add some numbers")]}


def by_type(events: list[agentkeel.Event], type_: str) -> list[agentkeel.Event]:
    return [e for e in events if e.type == type_]


def test_an_agent_run_becomes_a_run_whose_timeline_nests_like_langgraph() -> None:
    handler = KeelCallbackHandler()
    assert isinstance(handler, RobustInstrumentor)
    result = react_agent(model(adding_script()), [add]).invoke(
        INPUT, config={"callbacks": [handler]}
    )
    assert result["messages"][-1].content == "the sums are 1, 2 and 3"

    events = stored()
    [run] = runs()
    assert (run.name, run.status, run.attributes["framework"]) == (
        "LangGraph",
        "succeeded",
        "langchain",
    )
    assert run.event_count == len(events) == 30
    assert {e.run_id for e in events} == {run.run_id}
    [start] = by_type(events, EventType.AGENT_START)
    # Span IDs are LangChain's run IDs; our run ID is made from the root's.
    root = UUID(start.span_id)
    assert run.run_id == f"run-{root.hex}"
    assert start.parent_span_id is None

    steps = by_type(events, EventType.STEP_START)
    assert [s.name for s in steps] == [
        "agent",
        "tools",
        "agent",
        "tools",
        "agent",
        "tools",
        "agent",
    ]
    assert all(s.parent_span_id == start.span_id for s in steps)
    assert [s.attributes["langgraph.step"] for s in steps] == [1, 2, 3, 4, 5, 6, 7]
    node_of = {s.span_id: s.name for s in steps}
    llm_starts = by_type(events, EventType.LLM_CALL_START)
    tool_starts = by_type(events, EventType.TOOL_CALL_START)
    assert len(llm_starts) == 4 and len(tool_starts) == 3
    # LangGraph's plumbing inside a node is folded in: models hang on the agent node.
    assert {node_of[e.parent_span_id] for e in llm_starts} == {"agent"}  # type: ignore[index]
    assert {node_of[e.parent_span_id] for e in tool_starts} == {"tools"}  # type: ignore[index]
    assert [e.attributes["gen_ai.tool.call.id"] for e in tool_starts] == [
        "call-0",
        "call-1",
        "call-2",
    ]
    # Every start has its end, on the same span, with a duration.
    for start_type, end_type in (
        (EventType.STEP_START, EventType.STEP_END),
        (EventType.LLM_CALL_START, EventType.LLM_CALL_END),
        (EventType.TOOL_CALL_START, EventType.TOOL_CALL_END),
    ):
        ends = by_type(events, end_type)
        assert {e.span_id for e in ends} == {e.span_id for e in by_type(events, start_type)}
        assert all(
            e.attributes["status"] == "succeeded" and e.attributes["duration_ms"] >= 0 for e in ends
        )
    [end] = by_type(events, EventType.AGENT_END)
    assert end.attributes["status"] == "succeeded" and end.span_id == start.span_id
    assert handler.get_health_status()["state"] == "healthy"
    # 62 callbacks; the 32 of LangGraph's plumbing are folded before the guarded path.
    assert handler.get_health_status()["callbacks"] == 30


def test_model_name_and_token_usage_are_recorded() -> None:
    react_agent(model(adding_script()), [add]).invoke(
        INPUT, config={"callbacks": [KeelCallbackHandler()]}
    )
    ends = stored(EventType.LLM_CALL_END)
    assert len(ends) == 4
    first = ends[0].attributes
    assert first["gen_ai.request.model"] == "ScriptedModel"
    assert first["gen_ai.response.model"] == "fake-gpt"
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (120, 12)
    assert first["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert first["tool_calls"] == 1 and first["node"] == "agent"
    assert ends[-1].attributes["gen_ai.response.finish_reasons"] == ["stop"]
    [start, *_] = stored(EventType.LLM_CALL_START)
    assert start.attributes["gen_ai.system"] == "scriptedmodel"


def test_llm_output_usage_and_model_of_a_completion_model() -> None:
    handler = KeelCallbackHandler()
    [llm_run] = CallbackManager(handlers=[handler]).on_llm_start(
        {"name": "CompletionModel"}, ["Say hi"], invocation_params={"model_name": "text-001"}
    )
    llm_run.on_llm_end(
        LLMResult(
            generations=[[Generation(text="hi", generation_info={"finish_reason": "length"})]],
            llm_output={
                "token_usage": {"prompt_tokens": 3, "completion_tokens": 4},
                "model_name": "text-001-v2",
            },
        )
    )
    [start] = stored(EventType.LLM_CALL_START)
    [end] = stored(EventType.LLM_CALL_END)
    assert start.name == end.name == "text-001"
    assert end.attributes["gen_ai.usage.input_tokens"] == 3
    assert end.attributes["gen_ai.usage.output_tokens"] == 4
    assert end.attributes["gen_ai.response.model"] == "text-001-v2"
    assert end.attributes["gen_ai.response.finish_reasons"] == ["length"]
    # A model called on its own is not a run: its events join the current scope.
    assert start.run_id is None and runs() == []


def test_async_ainvoke_and_astream_record_the_same_timeline() -> None:
    handler = KeelCallbackHandler()

    async def main() -> None:
        agent = react_agent(model(adding_script()), [add])
        result = await agent.ainvoke(INPUT, config={"callbacks": [handler]})
        assert result["messages"][-1].content == "the sums are 1, 2 and 3"
        chunks = [
            chunk
            async for chunk in react_agent(model(adding_script()), [add]).astream(
                INPUT, config={"callbacks": [handler]}, stream_mode="updates"
            )
        ]
        assert len(chunks) == 7

    asyncio.run(main())
    all_runs = runs()
    assert [r.status for r in all_runs] == ["succeeded", "succeeded"]
    events = stored()
    for run in all_runs:
        mine = [e for e in events if e.run_id == run.run_id]
        assert len(mine) == 30
        assert len(by_type(mine, EventType.TOOL_CALL_END)) == 3
        assert len(by_type(mine, EventType.LLM_CALL_END)) == 4
    assert handler.get_health_status()["error_count"] == 0


def test_a_retriever_is_a_tool_like_call_with_its_document_count() -> None:
    library = Library(documents=["Lisbon trams", "Porto wine", "Lisbon food"])
    chain = RunnableLambda(lambda q: q.strip()) | library
    docs = chain.invoke("  lisbon ", config={"callbacks": [KeelCallbackHandler()]})
    assert len(docs) == 2
    events = stored()
    [root] = by_type(events, EventType.AGENT_START)
    [start] = by_type(events, EventType.TOOL_CALL_START)
    [end] = by_type(events, EventType.TOOL_CALL_END)
    assert start.name == "Library" and start.attributes["kind"] == "retriever"
    assert start.parent_span_id == root.span_id
    assert (end.attributes["documents"], end.attributes["kind"], end.attributes["status"]) == (
        2,
        "retriever",
        "succeeded",
    )
    assert "input" not in start.attributes  # no content unless asked for


def test_a_failing_retriever_is_a_failure_of_that_retriever() -> None:
    with pytest.raises(ConnectionError, match="unreachable"):
        (RunnableLambda(lambda q: q) | BrokenLibrary()).invoke(
            "q", config={"callbacks": [KeelCallbackHandler()]}
        )
    [run] = runs()
    assert run.status == "failed" and run.error_type == "ConnectionError"
    [failure] = agentkeel.get_store().list_failures(run_id=run.run_id)
    assert (failure.tool_name, failure.category) == ("BrokenLibrary", "network")


def test_a_tool_error_is_one_failure_with_its_node_and_tool_and_the_error_reaches_the_caller() -> (
    None
):
    @tool
    def explode(x: int) -> int:
        """Always fails."""
        raise ValueError(f"bad input {x}")

    agent = react_agent(model([tool_call("explode", {"x": 7}, "c1"), answer("never")]), [explode])
    with pytest.raises(ValueError, match="bad input 7"):
        agent.invoke(INPUT, config={"callbacks": [KeelCallbackHandler()]})
    store = agentkeel.get_store()
    assert agentkeel.flush()
    [run] = store.list_runs()
    assert (run.status, run.error_type) == ("failed", "ValueError")
    # The tool, its node and the run all saw the same exception: one failure.
    [failure] = store.list_failures(run_id=run.run_id)
    assert (failure.graph_node, failure.tool_name, failure.error_type) == (
        "tools",
        "explode",
        "ValueError",
    )
    assert failure.attributes["framework"] == "langchain"
    events = stored()
    [tool_end] = by_type(events, EventType.TOOL_CALL_END)
    assert (
        tool_end.attributes["status"] == "failed"
        and tool_end.attributes["error_type"] == "ValueError"
    )
    [failure_event] = by_type(events, EventType.FAILURE)
    assert failure_event.span_id == tool_end.span_id  # the failure sits on the tool's span
    [node_end] = [e for e in by_type(events, EventType.STEP_END) if e.name == "tools"]
    assert node_end.attributes["status"] == "failed"
    assert len(by_type(events, EventType.AGENT_ERROR)) == 1


def test_inside_an_agentkeel_run_the_graph_is_a_step_of_that_run() -> None:
    with agentkeel.run("trip-planner", user_id="u1") as scope:
        react_agent(model(adding_script()), [add]).invoke(
            INPUT, config={"callbacks": [KeelCallbackHandler()]}
        )
    [run] = runs()
    assert run.run_id == scope.run_id and run.name == "trip-planner" and run.user_id == "u1"
    events = [
        e
        for e in stored()
        if e.attributes.get("framework") == "langchain"
        or e.type.startswith(("llm", "tool", "step"))
    ]
    assert {e.run_id for e in events} == {scope.run_id}
    [graph] = [e for e in by_type(events, EventType.STEP_START) if e.name == "LangGraph"]
    assert graph.parent_span_id == scope.span_id
    assert graph.attributes["kind"] == "chain"
    nodes = [e for e in by_type(events, EventType.STEP_START) if e.attributes.get("kind") == "node"]
    assert len(nodes) == 7 and all(n.parent_span_id == graph.span_id for n in nodes)


def test_root_metadata_names_user_session_and_tags() -> None:
    react_agent(model(adding_script()), [add]).invoke(
        INPUT,
        config={
            "callbacks": [KeelCallbackHandler()],
            "metadata": {"user_id": "u-42"},
            "configurable": {"thread_id": "thread-9"},
            "tags": ["beta"],
        },
    )
    [run] = runs()
    assert (run.user_id, run.session_id, run.tags) == ("u-42", "thread-9", ("beta",))


def test_capture_content_records_inputs_and_outputs_redacted() -> None:
    secret_input = {"messages": [("user", "my key is sk-abcdefghijklmnop1234, add 0 and 1")]}
    react_agent(model(adding_script()), [add]).invoke(
        secret_input,
        config={"callbacks": [KeelCallbackHandler(capture_content=True, max_content_chars=500)]},
    )
    events = stored()
    [tool_start, *_] = by_type(events, EventType.TOOL_CALL_START)
    assert tool_start.attributes["input"] == {"a": 0, "b": 1}
    [tool_end, *_] = by_type(events, EventType.TOOL_CALL_END)
    assert tool_end.attributes["output"] == "1"
    [llm_start, *_] = by_type(events, EventType.LLM_CALL_START)
    [[first_message]] = llm_start.attributes["input"]
    assert first_message["role"] == "human"
    assert "sk-abcdefghijklmnop1234" not in first_message["content"]
    assert "[REDACTED]" in first_message["content"]
    [llm_end, *_] = by_type(events, EventType.LLM_CALL_END)
    assert llm_end.attributes["output"][0][0]["tool_calls"] == [
        {"name": "add", "args": {"a": 0, "b": 1}}
    ]


def test_capture_content_cuts_long_strings() -> None:
    handler = KeelCallbackHandler(capture_content=True, max_content_chars=10)
    RunnableLambda(len).invoke("x" * 1000, config={"callbacks": [handler]})
    [start] = stored(EventType.AGENT_START)
    assert start.attributes["input"].startswith("xxxxxxxxxx…[truncated 990 chars]")


def test_chains_all_records_langgraph_plumbing_too() -> None:
    react_agent(model(adding_script()), [add]).invoke(
        INPUT, config={"callbacks": [KeelCallbackHandler(chains="all")]}
    )
    names = {e.name for e in stored(EventType.STEP_START)}
    assert {
        "agent",
        "tools",
        "call_model",
        "should_continue",
        "RunnableSequence",
        "Prompt",
    } <= names


def test_agent_actions_and_finish_become_decisions() -> None:
    handler = KeelCallbackHandler(capture_content=True)
    [chain] = [
        CallbackManager(handlers=[handler]).on_chain_start(
            {"name": "AgentExecutor"}, {"input": "hi"}
        )
    ]
    chain.on_agent_action(AgentAction(tool="search", tool_input="weather", log=""))
    chain.on_agent_finish(AgentFinish(return_values={"output": "sunny"}, log=""))
    chain.on_chain_end({"output": "sunny"})
    decisions = stored(EventType.DECISION_COMPLETE)
    assert [(d.name, d.attributes["decision"]) for d in decisions] == [
        ("search", "tool"),
        ("finish", "finish"),
    ]
    assert decisions[0].attributes["input"] == "weather"
    assert decisions[1].attributes["output"] == {"output": "sunny"}
    [run] = runs()
    assert run.name == "AgentExecutor" and {d.run_id for d in decisions} == {run.run_id}


def test_langchain_retry_callbacks_are_retry_events() -> None:
    # LangChain's LLM retry decorator reports each retry through run_manager.on_retry.
    from tenacity import RetryCallState, Retrying

    handler = KeelCallbackHandler()
    [llm_run] = CallbackManager(handlers=[handler]).on_llm_start({"name": "Flaky"}, ["hi"])
    for attempt in (1, 2):
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        try:
            raise ConnectionError("reset by peer")
        except ConnectionError as exc:
            state.set_exception((type(exc), exc, exc.__traceback__))
        llm_run.on_retry(state)
    llm_run.on_llm_end(LLMResult(generations=[[Generation(text="ok")]]))
    retries = stored(EventType.RETRY)
    assert [r.attributes["attempt"] for r in retries] == [1, 2]
    assert {r.attributes["error_type"] for r in retries} == {"ConnectionError"}
    assert {r.name for r in retries} == {"Flaky"}


def test_custom_events_are_recorded() -> None:
    from langchain_core.callbacks.manager import dispatch_custom_event

    def step(x: int) -> int:
        dispatch_custom_event("progress", {"done": x})
        return x

    RunnableLambda(step).invoke(3, config={"callbacks": [KeelCallbackHandler()]})
    [custom] = stored(EventType.CUSTOM)
    assert custom.name == "progress" and custom.attributes["source"] == "langchain"


def test_a_run_missing_its_start_is_ignored_and_an_unknown_parent_keeps_the_link() -> None:
    handler = KeelCallbackHandler()
    manager = CallbackManager(handlers=[handler], parent_run_id=UUID(int=7))
    chain = manager.on_chain_start({"name": "inner"}, {})
    chain.on_chain_end({})
    handler.on_chain_end({}, run_id=UUID(int=99))  # never started: nothing to close
    [start] = stored(EventType.STEP_START)
    assert start.parent_span_id == str(UUID(int=7)) and start.run_id is None
    assert len(stored(EventType.STEP_END)) == 1


def test_children_of_plumbing_folded_into_an_unseen_node_link_to_that_node() -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.outputs import LLMResult

    handler = KeelCallbackHandler()  # given to the node's plumbing only: the node is unseen
    node, plumbing, llm = UUID(int=10), UUID(int=11), UUID(int=12)
    metadata = {"langgraph_node": "agent"}
    handler.on_chain_start(
        {}, {}, run_id=plumbing, parent_run_id=node, metadata=metadata, name="call_model"
    )
    handler.on_chat_model_start(
        {"name": "fake"}, [[HumanMessage("hi")]], run_id=llm, parent_run_id=plumbing,
        metadata=metadata,
    )  # fmt: skip
    handler.on_llm_end(LLMResult(generations=[[]]), run_id=llm)
    handler.on_chain_end({}, run_id=plumbing)
    [start] = stored(EventType.LLM_CALL_START)
    assert start.parent_span_id == str(node) and start.attributes["node"] == "agent"
    assert stored(EventType.STEP_START) == []  # the plumbing is folded, not a step
    assert handler._aliases == {}  # and forgotten once it ended


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"capture_content": "yes"}, "capture_content must be True or False"),
        ({"max_content_chars": 0}, "max_content_chars must be an integer >= 1"),
        ({"max_content_chars": True}, "max_content_chars must be an integer >= 1"),
        ({"chains": "everything"}, "chains must be 'nodes'"),
        ({"config": {"max_consecutive_errors": 2}}, "config must be a RobustConfig"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        KeelCallbackHandler(**options)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        instrument_langchain(**options)


def test_unknown_instrument_option_is_named() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown instrument_langchain option.*capture_inputs"
    ):
        instrument_langchain(capture_inputs=True)
    with pytest.raises(ConfigurationError, match="max_consecutive_errors must be an integer"):
        instrument_langchain(config=RobustConfig(max_consecutive_errors=0))


def test_human_message_content_helper_handles_odd_values() -> None:
    from agentkeel.integrations.langchain._content import content

    class Odd:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    value = {"m": HumanMessage(content="hi"), 3: [Odd()] * 60, "deep": [[[[[[[["x"]]]]]]]]}
    out = content(value, 50)
    assert out["m"] == {"role": "human", "content": "hi"}
    assert len(out["3"]) == 51 and out["3"][-1] == "…[10 more items]"
    assert "repr failed" in out["3"][0]
