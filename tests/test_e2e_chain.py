"""End to end through a real `prefire run`: chained speculation. A quick search's early
result predicts the details of each place it found (a fan-out), and each place's details
predict its forecast, all while the LLM thinks; the agent (openai SDK + mcp SDK, through
the proxy by environment only) gets every result it would get without prefire. A chain
whose first call the agent never makes is never served and is counted wasted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

from prefire.proxy.state import PROXY_ENV_KEYS
from prefire.replay.report import _rules_eligible
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, read
from prefire.replay.timeline import COLORS
from prefire.rules.files import read_rules
from tests import openai_wire
from tests.conftest import point_env_at, start_proxy
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import agent_loop
from tests.test_e2e_speculation import stats
from tests.upstreams import serve

PREFIRE_ID = "prefire-"
RULES = "rules:\n  - match: {tool: [search, details, forecast]}\n    prefire: true\n"


def places_server(latency: float = 1.0) -> FastMCP:
    """search (quick) -> details of a place (slow) -> forecast at its coordinates (slow),
    their times scaled by `latency`; records (tool, arguments, whether prefire made the
    call) of every call."""
    server = FastMCP("places")
    server.calls = []  # type: ignore[attr-defined]

    def record(ctx: Context, tool: str, args: Any) -> None:
        early = str(ctx.request_id).startswith(PREFIRE_ID)
        server.calls.append((tool, args, early))  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def search(q: str, ctx: Context) -> str:
        """Find places."""
        record(ctx, "search", q)
        await asyncio.sleep(0.05 * latency)
        return json.dumps({"places": [{"id": f"{q[:3].lower()}{len(q)}-{k}"} for k in range(2)]})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def details(id: str, ctx: Context) -> str:
        """One place."""
        record(ctx, "details", id)
        await asyncio.sleep(0.7 * latency)
        k = int(id.rsplit("-", 1)[1])
        return json.dumps({"id": id, "lat": 40 + len(id) + k, "lon": 3 + 2 * k})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def forecast(lat: int, lon: int, ctx: Context) -> str:
        """The forecast at a point."""
        record(ctx, "forecast", (lat, lon))
        await asyncio.sleep(0.7 * latency)
        return json.dumps({"sky": "sun" if (lat + lon) % 2 else "rain"})

    return server


class ChainLLM:
    """search(q) -> details of each place found -> forecast of each -> answer; thinks
    `think_s` per turn. q is the user's last word; "near X" searches "X centre" instead,
    which no earlier session did."""

    def __init__(self, think_s: float = 0.8) -> None:
        self.think_s = think_s
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        await asyncio.sleep(self.think_s)
        tool_msgs = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
        last = tool_msgs[-1] if tool_msgs else None
        calls: list[tuple[str, dict[str, Any]]] = []
        if last is None:
            words = messages[-1]["content"].split()
            q = f"{words[-1]} centre" if words[-2] == "near" else words[-1]
            calls = [("search", {"q": q})]
        elif "places" in last:
            calls = [("details", {"id": p["id"]}) for p in last["places"]]
        elif "lat" in last:
            places = [m for m in tool_msgs if "lat" in m]
            calls = [("forecast", {"lat": p["lat"], "lon": p["lon"]}) for p in places]
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else "done"}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{len(tool_msgs)}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(calls)
            ]
        finish = "tool_calls" if calls else "stop"
        return web.json_response(openai_wire.completion(message, finish))


CITIES = ["Lyon", "Porto", "Graz", "Turin", "Ghent", "Bergen"]


async def run_tasks(tmp: Path, monkeypatch, questions: list[str]) -> tuple[Any, list, dict]:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    proxy = await start_proxy(tmp, "--rules", str(rules), log=tmp / "proxy.log")
    point_env_at(proxy, monkeypatch)
    server = places_server()
    async with serve_mcp(server) as mcp_url, serve(ChainLLM().app) as llm:
        runs = [
            await agent_loop(llm, mcp_url, q, api_key="sk-a", mcp_token="tok-a") for q in questions
        ]
    return runs, server.calls, await stats(proxy)  # type: ignore[attr-defined]


async def direct(questions: list[str]) -> list:
    """What the agent gets with no proxy at all (the answers do not depend on timing, so the
    tools answer at once)."""
    server = places_server(latency=0.0)
    async with serve_mcp(server) as mcp_url, serve(ChainLLM(think_s=0.0).app) as llm:
        return [
            await agent_loop(llm, mcp_url, q, api_key="sk-a", mcp_token="tok-a") for q in questions
        ]


async def test_a_chain_is_served_early_end_to_end(tmp_path: Path, monkeypatch) -> None:
    questions = [f"weather at the cafes in {c}" for c in CITIES]
    expected = await direct(questions)  # with no proxy at all
    runs, calls, report = await run_tasks(tmp_path, monkeypatch, questions)
    assert runs == expected  # what the agent got: the same, only sooner
    # the last task's calls, search -> 2 details -> 2 forecasts, all ran early and once,
    # and the details and forecasts ran as chained calls (while the LLM thought)
    last = [c for c in calls if c[0] == "search" and c[1] == "Bergen"]
    assert last == [("search", "Bergen", True)]
    tail = calls[calls.index(last[0]) :]
    assert len(tail) == 5 and all(early for _, _, early in tail), tail
    tools = report["tools"]
    assert tools["details"]["chained_used"] >= 2 and tools["forecast"]["chained_used"] >= 2
    assert report["totals"]["chained"] >= report["totals"]["chained_used"] >= 4
    # offline replay of the capture, under the same rules, chains the last task the same
    # way: its search predicted, its details and forecasts chained, all five used
    ruleset = read_rules(tmp_path / "rules.yaml")
    sim = Simulation(eligible=_rules_eligible(ruleset), budget=ruleset.budgets, cost=ruleset.cost)
    sessions = [x for x in read([tmp_path / "capture"]) if isinstance(x, ReplaySession)]
    assert len(sessions) == len(CITIES)
    sim.run(sessions[:-1])
    hits, chained = sim.totals.hits, sim.totals.chained_used
    sim.run(sessions[-1:])
    assert (sim.totals.hits - hits, sim.totals.chained_used - chained) == (5, 4)


async def test_children_of_a_parent_never_called_are_never_served(
    tmp_path: Path, monkeypatch
) -> None:
    questions = [f"weather at the cafes in {c}" for c in CITIES[:5]] + ["weather near Bergen"]
    expected = await direct(questions)
    runs, calls, report = await run_tasks(tmp_path, monkeypatch, questions)
    assert runs == expected
    # prefire searched "Bergen" and chained the details of what it found; the agent
    # searched "Bergen centre": those details were never served, and were counted wasted
    assert ("search", "Bergen", True) in calls
    orphans = [c for c in calls if c[0] == "details" and c[1].startswith("ber6-")]
    assert orphans and all(early for _, _, early in orphans), calls
    # the details the agent asked were made once each (eagerly, as its LLM's response
    # closed): none was answered from the chained ones
    agent = [c for c in calls if c[0] == "details" and c[1].startswith("ber13-")]
    assert sorted(c[1] for c in agent) == ["ber13-0", "ber13-1"], calls
    assert report["tools"]["details"]["wasted"] >= len(orphans)
    log = (tmp_path / "proxy.log").read_text()
    assert '"chain.orphaned"' in log or "chain.orphaned" in log


async def test_live_replay_plays_chains_and_draws_their_depth(tmp_path: Path, monkeypatch) -> None:
    """The capture of the chained tasks played back through a real proxy (`replay --live`):
    the chained calls are chained again and served, the report counts hits by chain depth
    as offline replay does, and the timeline colours each served call by its depth."""
    questions = [f"weather at the cafes in {c}" for c in CITIES]
    await run_tasks(tmp_path, monkeypatch, questions)
    html = tmp_path / "timeline.html"
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "prefire.cli.main", "replay", "--live", str(tmp_path / "capture")),
        *("--rules", str(tmp_path / "rules.yaml"), "--html", str(html), "--json", "--speed", "3"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-2000:]
    totals = json.loads(out)["totals"]
    assert totals["identical"] and totals["same_as_recorded"]
    depths = totals["depth_used"]
    # the last tasks' details (depth 1) and forecasts (depth 2) were chained again live
    assert depths.get("1", 0) >= 2 and depths.get("2", 0) >= 2, totals
    assert totals["chained_hits"] == depths["1"] + depths["2"] + depths.get("3", 0)
    # offline replay of the same capture chains at the same depths
    ruleset = read_rules(tmp_path / "rules.yaml")
    sim = Simulation(eligible=_rules_eligible(ruleset), budget=ruleset.budgets, cost=ruleset.cost)
    sessions = [x for x in read([tmp_path / "capture"]) if isinstance(x, ReplaySession)]
    offline = sim.run(sessions).depth_used
    assert offline.get(1, 0) >= 2 and offline.get(2, 0) >= 2
    page = html.read_text()
    # served calls carry their depth as a class and are filled with that depth's colour
    for depth, colour in ((1, COLORS["chained1"]), (2, COLORS["chained2"])):
        bars = re.findall(rf'<rect class="req tool[^"]* depth{depth}"[^>]*fill="([^"]+)"', page)
        assert bars and set(bars) == {colour}, (depth, bars)
    assert "served: chained, depth 2+" in page
