"""Policies around LangGraph nodes and LangChain tools; the loop stop; failures in `keel report`."""

from __future__ import annotations

import asyncio
import json
import operator
from typing import Annotated, Any, TypedDict

import pytest
from _langchain_fakes import answer, looping_model, model, react_agent, runs, stored, tool_call
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, StateGraph
from typer.testing import CliRunner

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.cli import app
from agentkeel.integrations.langchain import (
    KeelCallbackHandler,
    guard_node,
    guarded_tool,
    langchain_scope,
    watch_tool_loops,
)
from agentkeel.recovery import LoopDetectedError, LoopDetector, LoopKind
from agentkeel.resilience import Guard, Retry

INPUT = {"messages": [("user", "find me a flight")]}


def no_wait_retry(attempts: int = 3) -> Retry:
    return Retry(on=ConnectionError, attempts=attempts, jitter=False, sleep=lambda _: None)


def searching_tool(calls: list[str]) -> BaseTool:
    @tool
    def search(query: str) -> str:
        """Search the web."""
        calls.append(query)
        return "the same three links"

    return search


def test_an_agent_asking_for_the_same_call_forever_is_stopped_at_the_third() -> None:
    calls: list[str] = []
    detector = LoopDetector()
    agent = react_agent(looping_model(), watch_tool_loops([searching_tool(calls)], detector))
    with pytest.raises(LoopDetectedError) as stopped:
        agent.invoke(INPUT, config={"callbacks": [KeelCallbackHandler()]})
    assert calls == ["cheap flights", "cheap flights"]  # the 3rd was refused before it ran
    verdict = stopped.value.verdict
    assert (verdict.kind, verdict.count, verdict.actions) == (LoopKind.EXACT_REPEAT, 3, ("search",))
    [run] = runs()
    assert run.status == "failed" and run.error_type == "LoopDetectedError"
    assert verdict.agent_id == run.run_id  # one loop window per agent run
    [loop] = stored(EventType.LOOP_DETECTED)
    assert loop.run_id == run.run_id and loop.attributes["pattern"] == "exact_repeat"
    [failure] = agentkeel.get_store().list_failures(run_id=run.run_id)
    assert (failure.category, failure.graph_node, failure.tool_name) == ("loop", "tools", "search")


def test_the_loop_stop_works_in_async_agents_too() -> None:
    calls: list[str] = []
    agent = react_agent(looping_model(), watch_tool_loops([searching_tool(calls)]))

    async def main() -> None:
        await agent.ainvoke(INPUT, config={"callbacks": [KeelCallbackHandler()]})

    with pytest.raises(LoopDetectedError):
        asyncio.run(main())
    assert len(calls) == 2
    assert len(stored(EventType.LOOP_DETECTED)) == 1


def test_different_calls_are_not_a_loop() -> None:
    calls: list[str] = []

    @tool
    def search(query: str) -> str:
        """Search the web."""
        calls.append(query)
        return f"results for {query}"

    script = [tool_call("search", {"query": f"q{i}"}, f"c{i}") for i in range(5)]
    agent = react_agent(
        model([*script, answer("found")]), watch_tool_loops([search], agent_id="a1")
    )
    assert agent.invoke(INPUT)["messages"][-1].content == "found"
    assert len(calls) == 5


def test_a_flaky_tool_is_retried_and_its_failures_recovered() -> None:
    attempts: list[str] = []

    @tool
    def weather(city: str) -> str:
        """Today's weather in a city."""
        attempts.append(city)
        if len(attempts) < 3:
            raise ConnectionError("weather api timed out")
        return "sunny"

    guarded = guarded_tool(weather, retry=no_wait_retry())
    assert (guarded.name, guarded.description) == (weather.name, weather.description)
    assert (
        guarded.tool_call_schema.model_json_schema() == weather.tool_call_schema.model_json_schema()
    )
    agent = react_agent(
        model([tool_call("weather", {"city": "Lisbon"}, "c1"), answer("sunny")]), [guarded]
    )
    result = agent.invoke(INPUT, config={"callbacks": [KeelCallbackHandler()]})
    assert result["messages"][-1].content == "sunny" and len(attempts) == 3
    [run] = runs()
    retries = stored(EventType.RETRY)
    assert [r.attributes["attempt"] for r in retries] == [1, 2]
    assert {r.run_id for r in retries} == {run.run_id}
    [tool_span] = stored(EventType.TOOL_CALL_END)
    assert tool_span.attributes["status"] == "succeeded"
    assert {r.span_id for r in retries} == {tool_span.span_id}  # retries sit on the tool's span
    failures = agentkeel.get_store().list_failures(run_id=run.run_id)
    assert [(f.tool_name, f.graph_node, f.recovered) for f in failures] == [
        ("weather", "tools", True)
    ] * 2
    assert run.status == "succeeded" and run.recovery_rate == 100.0


def test_an_async_tool_with_a_guard_and_a_plain_function() -> None:
    async def lookup(city: str) -> str:
        """Look a city up."""
        return city.upper()

    guarded = guarded_tool(lookup, guard=Guard(timeout=5.0, event=None))
    assert guarded.name == "lookup"

    async def main() -> Any:
        agent = react_agent(
            model([tool_call("lookup", {"city": "porto"}, "c1"), answer("ok")]), [guarded]
        )
        return await agent.ainvoke(INPUT, config={"callbacks": [KeelCallbackHandler()]})

    result = asyncio.run(main())
    assert result["messages"][2].content == "PORTO"
    # Like the tool it wraps, an async-only tool cannot be called synchronously.
    with pytest.raises(NotImplementedError, match="does not support sync invocation"):
        guarded.invoke({"city": "faro"})


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def graph_with(node: Any, name: str = "fetch") -> Any:
    builder = StateGraph(State)
    builder.add_node(name, node)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile()


def test_a_guarded_node_is_retried_and_its_failures_carry_the_node() -> None:
    tries: list[int] = []

    def fetch(state: State) -> dict[str, list[str]]:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("upstream reset")
        with agentkeel.step("parse"):  # our own step, nested in the node's span
            return {"log": ["fetched"]}

    graph = graph_with(guard_node(fetch, retry=no_wait_retry()))
    assert graph.invoke({"log": []}, config={"callbacks": [KeelCallbackHandler()]}) == {
        "log": ["fetched"]
    }
    [run] = runs()
    events = stored()
    [node] = [e for e in events if e.type == EventType.STEP_START and e.name == "fetch"]
    assert [e.attributes["attempt"] for e in events if e.type == EventType.RETRY] == [1, 2]
    [parse] = [e for e in events if e.type == EventType.STEP_START and e.name == "parse"]
    assert (parse.run_id, parse.parent_span_id) == (run.run_id, node.span_id)
    failures = agentkeel.get_store().list_failures(run_id=run.run_id)
    assert [(f.graph_node, f.recovered) for f in failures] == [("fetch", True), ("fetch", True)]


def test_an_async_guarded_node_and_the_decorator_form() -> None:
    tries: list[int] = []

    @guard_node(retry=no_wait_retry(), name="fetch")
    async def fetch(state: State) -> dict[str, list[str]]:
        tries.append(1)
        if len(tries) < 2:
            raise ConnectionError("upstream reset")
        return {"log": ["fetched"]}

    async def main() -> Any:
        return await graph_with(fetch).ainvoke(
            {"log": []}, config={"callbacks": [KeelCallbackHandler()]}
        )

    assert asyncio.run(main()) == {"log": ["fetched"]}
    assert len(stored(EventType.RETRY)) == 1
    # Without policies the wrapper only follows the scope.
    assert guard_node(lambda s: {"log": ["x"]})({"log": []}) == {"log": ["x"]}


def test_failures_show_in_keel_report_with_their_node_names() -> None:
    def plan(state: State) -> dict[str, list[str]]:
        return {"log": ["planned"]}

    def book(state: State) -> dict[str, list[str]]:
        raise ConnectionError("booking service unreachable")

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("book", guard_node(book, retry=no_wait_retry(2)))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "book")
    builder.add_edge("book", END)
    with pytest.raises(ConnectionError):
        builder.compile().invoke({"log": []}, config={"callbacks": [KeelCallbackHandler()]})
    [run] = runs()
    cli = CliRunner()
    listed = cli.invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["run_id"] for r in json.loads(listed.output)] == [run.run_id]
    as_json = cli.invoke(app, ["report", run.run_id, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert report["run"]["status"] == "failed"
    assert [(f["graph_node"], f["error_type"]) for f in report["failures"]] == [
        ("book", "ConnectionError"),
        ("book", "ConnectionError"),
    ]
    text = cli.invoke(app, ["report", run.run_id[:20]])
    assert text.exit_code == 0, text.output
    assert "book" in text.output and "ConnectionError" in text.output


def test_langchain_scope_outside_langchain_changes_nothing() -> None:
    with langchain_scope() as where:
        assert where.scope is None and where.node is None
        assert agentkeel.current_scope().run_id is None


def test_bad_helper_inputs_are_configuration_errors() -> None:
    calls: list[str] = []
    search = searching_tool(calls)
    with pytest.raises(ConfigurationError, match="BaseTool or a function"):
        guarded_tool(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot make a tool"):
        guarded_tool(lambda query: query)  # no docstring to describe it
    with pytest.raises(ConfigurationError, match="either guard= or the policies"):
        guarded_tool(search, guard=Guard(), retry=no_wait_retry())
    with pytest.raises(ConfigurationError, match=r"guard must be an agentkeel\.resilience\.Guard"):
        guarded_tool(search, guard="retry-3")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="loop_detector must be"):
        guarded_tool(search, loop_detector=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="agent_id must be"):
        guarded_tool(search, loop_detector=LoopDetector(), agent_id="")
    with pytest.raises(ConfigurationError, match="a list of tools, not one tool"):
        watch_tool_loops(search)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="name must be a non-empty string"):
        guard_node(lambda s: s, name="")
    with pytest.raises(ConfigurationError, match="needs a node function"):
        guard_node(3)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="track must be True or False"):
        guard_node(lambda s: s, retry=no_wait_retry(), track="yes")  # type: ignore[call-overload]
