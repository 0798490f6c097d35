"""The speculator, responder, caller and addon, proven without sockets (tests/core_harness.py):
mitmproxy test flows through the real addon hooks, an in-memory transport for prefire's own
calls, a clock the test moves. What the subprocess end-to-end tests prove in seconds, these
prove in milliseconds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http

from prefire.proxy.cache import Result
from prefire.proxy.store import Store
from tests.core_harness import Core, FakeMcp, core, tool_calls, tool_value


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
        assert "prefire.served" not in flow.metadata and value(flow) == {"booked": True}
        assert [k.tool for k in c.server.calls] == ["book_trip"]  # only the agent's own call
        assert "book_trip" not in c.speculator.accounting.tools


async def test_a_write_drops_the_reads_it_may_change(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        await ask(c, ("c1", "get_weather", {"city": "Oslo"}), ("c2", "book_trip", {"id": "x"}))
        await c.settle()
        await c.call("book_trip", {"id": "x"}, sid)  # invalidates get_*
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata  # fetched before the write: stale
        ran = [(k.tool, k.args) for k in c.server.calls]
        read = ("get_weather", {"city": "Oslo"})
        assert ran == [read, ("book_trip", {"id": "x"}), read]
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.wasted) == (1, 0, 1)


@pytest.mark.parametrize("failure", [{"fail": 500}, {"tool_error": True}])
async def test_a_failed_early_call_is_counted_failed_and_the_agent_goes_upstream(
    tmp_path: Path, failure: dict[str, Any]
) -> None:
    async with core(tmp_path, server(**failure)) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        c.server.fail, c.server.tool_error = 0, False  # the agent's own call succeeds
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata  # errors are never served
        assert value(flow) == {"city": "Oslo", "temp_c": 21}
        assert len(c.server.calls) == 2  # the early call, then the agent's own
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.failed, w.wasted) == (1, 0, 1, 0)


async def test_other_credentials_never_get_the_result(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        other = await c.open_session(token="someone-else")
        flow = await c.call("get_weather", {"city": "Oslo"}, other, token="someone-else")
        assert "prefire.served" not in flow.metadata
        assert len(c.server.early_calls()) == len(c.server.agents_calls()) == 1
        await c.speculator.close()  # the first tenant's result was never used
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.wasted) == (1, 0, 1)


async def test_an_expired_result_is_not_served_and_counted_expired(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        c.clock.now += 31  # the rule's ttl is 30 s
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata
        assert len(c.server.calls) == 2
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.expired, w.wasted) == (1, 0, 1, 0)


async def test_the_concurrency_budget_holds_guesses_not_eager_calls(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with core(tmp_path, server(gate=gate), max_concurrent=1) as c:
        await c.open_session()
        await ask(c, ("c1", "get_weather", {"city": "A"}), ("c2", "get_weather", {"city": "B"}))
        await c.settle()
        # both eager calls run although the cap is 1: they are the agent's own calls,
        # and they leave the room for guesses free: one guess starts, the next is refused
        assert len(c.server.early_calls()) == 2
        conv = c.conversation()
        assert c.speculator._fire(conv, "search", {"q": "x"}, "predicted")
        assert not c.speculator._fire(conv, "search", {"q": "y"}, "predicted")
        assert c.skipped.get("budget") == 1
        gate.set()
        await c.settle()
        # the guess has ended: there is room again
        assert c.speculator._fire(conv, "search", {"q": "z"}, "predicted")
        await c.settle()


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


# -- chained calls (patterns/chain.py) ------------------------------------------------------

CHAIN_RULES = """
rules:
  - match: {tool: [search, details, forecast]}
    prefire: true
    cost: 0
"""


def places() -> FakeMcp:
    def search(a: dict[str, Any]) -> dict[str, Any]:
        q = a["q"]
        return {"places": [{"id": f"{q[:3].lower()}{len(q)}-{k}"} for k in range(2)]}

    def details(a: dict[str, Any]) -> dict[str, Any]:
        k = int(a["id"].rsplit("-", 1)[1])
        return {"id": a["id"], "lat": 40 + len(a["id"]) + k, "lon": 3 + 2 * k}

    def forecast(a: dict[str, Any]) -> dict[str, Any]:
        return {"sky": "sun" if (a["lat"] + a["lon"]) % 2 else "rain"}

    return FakeMcp(tools={"search": search, "details": details, "forecast": forecast})


def tourist(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """search(q) -> details of each place -> forecast of each -> answer. q is the last
    word; "near X" searches "X centre", which no earlier task did."""
    results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
    if not results:
        words = messages[0]["content"].split()
        return [("search", {"q": f"{words[-1]} centre" if words[-2] == "near" else words[-1]})]
    if "places" in results[-1]:
        return [("details", {"id": p["id"]}) for p in results[-1]["places"]]
    if "lat" in results[-1]:
        return [("forecast", {"lat": p["lat"], "lon": p["lon"]}) for p in results if "lat" in p]
    return []


def direct(server: FakeMcp, question: str, think: Any) -> list[Any]:
    """What the agent's tools give it with no proxy at all."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    got: list[Any] = []
    while calls := think(messages):
        for name, args in calls:
            got.append(server.tools[name](args))
            messages.append({"role": "tool", "content": json.dumps(got[-1])})
    return got


CITIES = ["Lyon", "Porto", "Graz", "Turin", "Ghent"]


async def test_a_chain_serves_every_call_of_a_task_early(tmp_path: Path) -> None:
    async with core(tmp_path, places(), rules=CHAIN_RULES) as c:
        sid = await c.open_session()
        for city in CITIES:
            await c.task(f"weather at the cafes in {city}", tourist, sid)
        before = len(c.server.agents_calls())
        got = await c.task("weather at the cafes in Bergen", tourist, sid)
        assert got == direct(places(), "weather at the cafes in Bergen", tourist)
        assert len(got) == 5 and c.server.agents_calls()[before:] == []  # all served early
        # the details of both places were chained from search's early result
        assert c.counters("details").chained_used >= 2


async def test_children_of_a_parent_never_called_are_dropped_and_counted_wasted(
    tmp_path: Path,
) -> None:
    async with core(tmp_path, places(), rules=CHAIN_RULES) as c:
        sid = await c.open_session()
        for city in CITIES:
            await c.task(f"weather at the cafes in {city}", tourist, sid)
        details = c.counters("details")
        wasted = details.wasted
        got = await c.task("weather near Bergen", tourist, sid)
        # prefire searched "Bergen" and chained the details of what it found; the agent
        # searched "Bergen centre": those details are never served, and counted wasted
        early = [k for k in c.server.early_calls() if k.tool == "details"]
        orphans = [k.args["id"] for k in early if k.args["id"].startswith("ber6-")]
        assert ("search", {"q": "Bergen"}) in [(k.tool, k.args) for k in c.server.early_calls()]
        assert sorted(orphans) == ["ber6-0", "ber6-1"]
        assert details.wasted - wasted >= len(orphans)
        assert got == direct(places(), "weather near Bergen", tourist)  # as without prefire


DEPTH_ONE = CHAIN_RULES + "budgets:\n  max_chain_depth: 1\n"


async def test_chains_stop_at_the_depth_limit(tmp_path: Path) -> None:
    async with core(tmp_path, places(), rules=DEPTH_ONE) as c:
        sid = await c.open_session()
        for city in [*CITIES, "Bergen"]:
            await c.task(f"weather at the cafes in {city}", tourist, sid)
        # details are one step past search's decision point: chained; forecasts would be
        # two steps past it: never chained (they start at their own decision point)
        assert c.counters("details").chained_used >= 2
        assert c.counters("forecast").chained == 0 and c.counters("forecast").predicted > 0


BOOKING_RULES = """
rules:
  - match: {tool: [search, details, forecast]}
    prefire: true
    cost: 0
  - match: {tool: book}
    prefire: false
budgets:
  max_chain_depth: 3
"""


def booking_places() -> FakeMcp:
    server = places()
    server.tools["book"] = lambda a: {"booked": a["id"]}
    return server


def booking_tourist(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """As `tourist`, then books the first place once the forecasts are in: a write at
    the end of a chain the model learns to predict."""
    calls = tourist(messages)
    results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
    if calls or not results or "booked" in results[-1]:
        return calls
    first = next(r for r in results if "lat" in r)
    return [("book", {"id": first["id"]})]


async def test_a_write_is_never_started_at_any_depth_of_a_chain(tmp_path: Path) -> None:
    async with core(tmp_path, booking_places(), rules=BOOKING_RULES) as c:
        sid = await c.open_session()
        for city in [*CITIES, "Bergen"]:
            got = await c.task(f"weather at the cafes in {city}", booking_tourist, sid)
            assert got == direct(
                booking_places(), f"weather at the cafes in {city}", booking_tourist
            )
        # chains ran (up to depth 3) and the model proposed the write, eagerly or
        # predicted: the rule refused it every time; it only ran when the agent asked
        assert sum(c.counters(t).chained for t in ("details", "forecast")) >= 1
        assert c.skipped.get("rule_denied", 0) >= 1
        assert [k for k in c.server.early_calls() if k.tool == "book"] == []
        assert len([k for k in c.server.agents_calls() if k.tool == "book"]) == len(CITIES) + 1
        assert c.counters("book").fired == 0


# -- whose MCP session an early call rides on ------------------------------------------------

SESSION_AGENT = """
rules:
  - match: {tool: "get_*"}
    prefire: true
    session: agent
"""


async def test_session_agent_rides_only_the_conversations_own_open_session(
    tmp_path: Path,
) -> None:
    async with core(tmp_path, server(), rules=SESSION_AGENT) as c:
        sid = await c.open_session()
        messages = [{"role": "user", "content": "weather?"}]
        await c.llm(messages, [("c1", "get_weather", {"city": "Oslo"})])
        await c.settle()
        # the join has not seen this conversation's session yet: nothing rides on a guess
        assert c.server.early_calls() == [] and c.skipped == {"agent_session_unknown": 1}
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)  # joins it to sid
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": tool_calls([("c1", "get_weather", {"city": "Oslo"})]),
            },
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps(value(flow))},
        ]
        await c.llm(messages, [("c2", "get_weather", {"city": "Rome"})])
        await c.settle()
        (early,) = c.server.early_calls()
        assert (early.args, early.session) == ({"city": "Rome"}, sid)
        await c.close_session(sid)
        await c.llm(messages, [("c3", "get_weather", {"city": "Lima"})])
        await c.settle()
        assert len(c.server.early_calls()) == 1  # the session is closed: nothing rides on it
        assert c.skipped == {"agent_session_unknown": 2}


BACK_OFF = """
rules:
  - match: {tool: "get_*"}
    prefire: true
budgets:
  min_waste_samples: 2
  max_waste_share: 0.5
"""


async def test_a_tool_whose_early_calls_keep_failing_is_backed_off(tmp_path: Path) -> None:
    async with core(tmp_path, server(fail=500), rules=BACK_OFF) as c:
        await c.open_session()
        for n, city in enumerate(["A", "B", "C"]):
            await ask(c, (f"c{n}", "get_weather", {"city": city}))
            await c.settle()
        assert [k.args["city"] for k in c.server.early_calls()] == ["A", "B"]
        w = c.counters("get_weather")
        assert (w.fired, w.failed) == (2, 2) and c.skipped == {"backed_off": 1}


# -- with a shared store (the Lua protocol itself: tests/test_store_redis.py) --------------


class OneOtherReplica(Store):
    """A shared store as seen from this replica: `claims` answers its claims (False:
    another replica has the call in flight or ready), and it records what is shared."""

    shared = True

    def __init__(self, claims: bool) -> None:
        super().__init__("here")
        self.claims = claims
        self.settled: list[tuple[str, bytes | None]] = []
        self.consumed: list[str] = []

    async def claim(
        self, h: str, scope: str, tool: str, tag: str, reuse: int, ttl_s: float
    ) -> bool | None:
        return self.claims

    def settle(self, h: str, result: Result | None, tool: str = "", kind: str = "") -> None:
        self.settled.append((h, None if result is None else result.body))

    async def consume(self, h: str) -> bool | None:
        self.consumed.append(h)
        return False  # served by the other replica already


async def test_a_call_another_replica_makes_is_never_made_nor_counted_here(
    tmp_path: Path,
) -> None:
    store = OneOtherReplica(claims=False)
    async with core(tmp_path, server(), store=store) as c:
        await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        assert c.server.early_calls() == [] and store.settled == []
        await c.speculator.close()
        w = c.counters("get_weather")
        assert (w.fired, w.eager, w.wasted) == (0, 0, 0)


async def test_a_claimed_call_is_shared_and_its_serves_are_counted_in_the_store(
    tmp_path: Path,
) -> None:
    store = OneOtherReplica(claims=True)
    async with core(tmp_path, server(), store=store) as c:
        sid = await c.open_session()
        await ask(c, ("call_1", "get_weather", {"city": "Oslo"}))
        await c.settle()
        ((name, body),) = store.settled  # the result went to the store
        assert body is not None and b"Oslo" in body
        # the other replica served it already: this one does not serve it again
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        assert "prefire.served" not in flow.metadata and store.consumed == [name]
        # told that it was used there, this replica counts it neither used nor wasted
        c.speculator.used_elsewhere(name)
        await c.speculator.close()
        w = c.counters("get_weather")
        assert (w.fired, w.used, w.wasted) == (1, 0, 0)


# -- the addon's guard ---------------------------------------------------------------------


class Broken:
    """A responder with a bug: it half-makes an answer, then raises."""

    async def serve(self, flow: http.HTTPFlow, ex: Any) -> None:
        flow.response = http.Response.make(200, b"half made")
        raise RuntimeError("bug")


async def test_a_responder_that_fails_leaves_the_request_to_go_upstream(tmp_path: Path) -> None:
    async with core(tmp_path, server()) as c:
        sid = await c.open_session()
        c.addon.responder = Broken()  # type: ignore[assignment]
        flow = await c.call("get_weather", {"city": "Oslo"}, sid)
        # the half-made answer is dropped: the agent gets the server's own
        assert value(flow) == {"city": "Oslo", "temp_c": 21}
        assert len(c.server.agents_calls()) == 1


# -- REST tools --------------------------------------------------------------------------------


async def test_a_rest_binding_is_learned_from_traffic_then_fired_and_served(
    tmp_path: Path,
) -> None:
    async with core(tmp_path, server()) as c:
        got = []
        for n, city in enumerate(["Oslo", "Rome", "Lima"]):
            await ask(c, (f"c{n}", "get_weather", {"city": city}))
            await c.settle()
            flow = await c.get(f"http://api.test/weather?city={city}")
            assert flow.response is not None
            got.append(json.loads(flow.response.content or b""))
        assert [g["city"] for g in got] == ["Oslo", "Rome", "Lima"]
        # two calls teach the template; the third is fetched early and served
        assert c.rest.calls == ["Oslo", "Rome", "Lima"]
        (early,) = [s for s in c.transport.sent if "api.test" in s.url]
        assert early.url == "http://api.test/weather?city=Lima"
        assert early.headers.get("authorization") == "Bearer rest-key"  # the agent's own
        w = c.counters("get_weather")
        assert w.fired == w.used == 1
