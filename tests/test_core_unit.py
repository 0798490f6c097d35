"""The speculator, responder, caller and addon, proven without sockets (tests/core_harness.py):
mitmproxy test flows through the real addon hooks, an in-memory transport for prefire's own
calls, a clock the test moves. What the subprocess end-to-end tests prove in seconds, these
prove in milliseconds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mitmproxy import http

from tests.core_harness import Core, FakeMcp, core, tool_value


def weather(args: dict[str, Any]) -> dict[str, Any]:
    return {"city": args["city"], "temp_c": 21}


def server(**kw: Any) -> FakeMcp:
    return FakeMcp(
        tools={
            "get_weather": weather,
            "search": lambda a: {"hits": [a["q"]]},
            "details": lambda a: {"id": a["id"], "city": "Oslo"},
            "book_trip": lambda a: {"booked": True},
        },
        **kw,
    )


value = tool_value


def rpc_id(flow: http.HTTPFlow) -> Any:
    assert flow.response is not None
    return json.loads(flow.response.content or b"")["id"]


async def ask(c: Core, *calls: tuple[str, str, dict[str, Any]]) -> None:
    """One LLM turn that emits `calls`."""
    await c.llm([{"role": "user", "content": "weather?"}], list(calls))


async def test_an_eager_call_is_fired_and_serves_the_agent_in_its_own_session(
    tmp_path: Path,
) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        (early,) = c.server.early_calls()
        assert (early.tool, early.args) == ("get_weather", {"city": "Oslo"})
        # prefire's own session, never the agent's
        assert early.session and early.session != sid
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert flow.metadata["prefire.served"] == "eager"
        assert value(flow) == {"city": "Oslo", "temp_c": 21}
        assert rpc_id(flow) == 3  # the agent's JSON-RPC id, not prefire's
        assert flow.response is not None
        assert flow.response.headers["mcp-session-id"] == sid  # the agent's own session
        assert c.server.agents_calls() == []  # the tool ran once, early
        w = c.counters("get_weather")
        assert (w.fired, w.eager, w.used, w.wasted, w.failed) == (1, 1, 1, 0, 0)


async def test_a_call_still_running_is_promoted_not_repeated(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with core(tmp_path, server(gate=gate)) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Rome"}))
        await c.settle()
        agent = asyncio.create_task(c.call("get_weather", {"city": "Rome"}, sid))
        await c.settle()
        assert not agent.done()  # waits for the early call instead of sending its own
        gate.set()
        flow = await agent
        assert value(flow) == {"city": "Rome", "temp_c": 21}
        assert flow.metadata["prefire.promoted"] is True
        assert len(c.server.calls) == 1
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.promotions) == (1, 1, 1)


async def test_rules_refuse_a_write(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "book_trip", {"id": "x"}))
        await c.settle()
        assert c.server.early_calls() == []
        assert c.skipped == {"rule_denied": 1}
        flow = await c.call("book_trip", {"id": "x"}, sid)
        assert "prefire.served" not in flow.metadata
        assert [k.tool for k in c.server.agents_calls()] == ["book_trip"]


async def test_a_write_drops_the_reads_it_may_change(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        await ask(c, ("c1", "get_weather", {"city": "Oslo"}), ("c2", "book_trip", {"id": "x"}))
        await c.settle()
        await c.call("book_trip", {"id": "x"}, sid)  # invalidates get_*
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata  # fetched before the write: stale
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.wasted) == (1, 0, 1)


async def test_a_failed_early_call_is_counted_failed_and_the_agent_goes_upstream(
    tmp_path: Path,
) -> None:
    async with core(tmp_path, server(fail=500)) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        c.server.fail = 0  # the agent's own call succeeds
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata
        assert value(flow) == {"city": "Oslo", "temp_c": 21}
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.failed) == (1, 0, 1)


async def test_other_credentials_never_get_the_result(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        other = await c.open_session(token="someone-else")
        flow = await c.call("get_weather", {"city": "Oslo"}, other, token="someone-else")
        assert "prefire.served" not in flow.metadata
        assert len(c.server.agents_calls()) == 1


async def test_an_expired_result_is_not_served_and_counted_expired(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        c.clock.now += 31  # the rule's ttl is 30 s
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.expired) == (1, 0, 1)


async def test_the_concurrency_budget_holds_guesses_not_eager_calls(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with core(tmp_path, server(gate=gate), max_concurrent=1) as c:
        await c.open_session()
        await ask(c, ("c1", "get_weather", {"city": "A"}), ("c2", "get_weather", {"city": "B"}))
        await c.settle()
        # both eager calls run although the cap is 1: they are the agent's own calls
        assert len(c.server.early_calls()) == 2
        # a guess while two calls are out is refused by the budget
        assert not c.speculator._fire(c.conversation(), "search", {"q": "x"}, "predicted")
        assert c.skipped.get("budget") == 1
        gate.set()


# -- learned from earlier tasks -----------------------------------------------------------

NO_CHAINS = """
rules:
  - match: {tool: [search, get_item]}
    prefire: true
    cost: 0
budgets:
  max_chain_depth: 0
"""


def shop() -> FakeMcp:
    return FakeMcp(
        tools={
            "search": lambda a: {"hits": [{"id": f"{a['q']}-0"}, {"id": f"{a['q']}-1"}]},
            "get_item": lambda a: {"id": a["id"], "price": 3},
        }
    )


def shopper(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """search(the last word) -> get_item(the first hit) -> answer."""
    results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
    if not results:
        return [("search", {"q": messages[0]["content"].split()[-1]})]
    if "hits" in results[-1]:
        return [("get_item", {"id": results[-1]["hits"][0]["id"]})]
    return []


async def test_a_call_predicted_from_earlier_tasks_is_fired_while_the_llm_thinks(
    tmp_path: Path,
) -> None:
    async with core(tmp_path, shop(), rules=NO_CHAINS) as c:
        sid = await c.open_session()
        words = ["shoes", "hats", "socks", "belts", "scarves"]
        runs = [await c.task(f"find me {w}", shopper, sid) for w in words]
        assert [r[1]["id"] for r in runs] == [f"{w}-0" for w in words]  # as without prefire
        item = c.counters("get_item")
        # the id flowing from search into get_item is predicted after a few tasks, and the
        # agent's get_item is served from it
        assert item.predicted >= 2 and item.chained == 0 and item.used >= 2
        # the last task's calls all ran early: the agent's own never reached the server
        last = {"search": {"q": "scarves"}, "get_item": {"id": "scarves-0"}}
        assert [(k.tool, k.args) for k in c.server.agents_calls() if k.args in last.values()] == []
        assert {k.tool for k in c.server.early_calls() if last.get(k.tool) == k.args} == set(last)
