"""End-to-end speculation: real SDKs, a real MCP server, a real prefire in between."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

from tests.conftest import RunningProxy, point_env_at, start_proxy, stop_proxy
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import (
    DataFlowLLM,
    ScriptedLLM,
    agent_loop,
    agent_step,
    llm_only,
)
from tests.upstreams import serve

RULES = """
rules:
  - match: {tool: "get_*"}
    prefire: true
    ttl: %(ttl)s
  - match: {tool: "book_*"}
    prefire: false
    invalidates: ["get_*"]
"""


def weather_server(delay_s: float = 0.0, fail_first: int = 0) -> FastMCP:
    server = FastMCP("weather")
    server.calls = []  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_weather(city: str) -> dict:
        """Current weather for a city."""
        server.calls.append(("get_weather", city))  # type: ignore[attr-defined]
        await asyncio.sleep(delay_s)
        if len(server.calls) <= fail_first:  # type: ignore[attr-defined]
            raise RuntimeError("upstream hiccup")
        return {"city": city, "temp_c": 21 + len(city)}

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    def book_table(restaurant: str) -> str:
        """Book a table."""
        server.calls.append(("book_table", restaurant))  # type: ignore[attr-defined]
        return f"booked {restaurant}"

    return server


async def proxy_with_rules(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, *extra: str, ttl: float = 30
) -> RunningProxy:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES % {"ttl": ttl})
    proxy = await start_proxy(tmp, "--rules", str(rules), *extra)
    point_env_at(proxy, monkeypatch)
    return proxy


async def stats(proxy: RunningProxy) -> dict:
    """The stats of a proxy, once stopped. Every early call of a proxy alone has ended one
    way (with a shared store a call fired on one replica may be used on another)."""
    assert await stop_proxy(proxy) == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prefire.cli.main",
        "stats",
        "--state-dir",
        str(proxy.state_dir),
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    report = json.loads(out)
    if "--store" not in proxy.args:
        for c in [*report["tools"].values(), report["totals"]]:
            assert c["fired"] == c["used"] + c["wasted"] + c["failed"] + c["expired"], c
    return report


async def direct_result(server: FastMCP, script: list) -> object:
    """What the agent gets with no proxy at all."""
    async with serve_mcp(server) as mcp_url, serve(ScriptedLLM(script).app) as llm:
        return await agent_step(llm, mcp_url, api_key="k", mcp_token="t")


async def test_read_tool_is_served_from_speculation_and_runs_once(
    tmp_path: Path, monkeypatch
) -> None:
    script = [("get_weather", {"city": "Paris"})]
    expected = await direct_result(weather_server(), script)
    proxy = await proxy_with_rules(tmp_path, monkeypatch)
    server = weather_server(delay_s=0.2)
    async with (
        serve_mcp(server) as mcp_url,
        serve(ScriptedLLM(script, think_after_s=0.5).app) as llm,
    ):
        got = await agent_step(llm, mcp_url, api_key="sk-a", mcp_token="tok-a")
    assert got == expected
    assert server.calls == [("get_weather", "Paris")]  # the early call; the agent's was served
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["eager"] == counters["used"] == 1
    assert counters["wasted"] == 0 and counters["saved_s"] > 0


async def test_in_flight_call_is_promoted_not_repeated(tmp_path: Path, monkeypatch) -> None:
    proxy = await proxy_with_rules(tmp_path, monkeypatch)
    server = weather_server(delay_s=1.0)  # still running when the agent asks
    async with (
        serve_mcp(server) as mcp_url,
        serve(ScriptedLLM([("get_weather", {"city": "Oslo"})], 0.1).app) as llm,
    ):
        got = await agent_step(llm, mcp_url, api_key="sk-a", mcp_token="tok-a")
    assert got == {"city": "Oslo", "temp_c": 25}
    assert server.calls == [("get_weather", "Oslo")]
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["promotions"] == 1 and counters["used"] == 1


async def test_other_credentials_never_get_the_result(tmp_path: Path, monkeypatch) -> None:
    proxy = await proxy_with_rules(tmp_path, monkeypatch)
    server = weather_server()
    script = [("get_weather", {"city": "Rome"})]
    async with serve_mcp(server) as mcp_url, serve(ScriptedLLM(script, 0.2).app) as llm:
        # tenant A: its LLM asks for the call, which is fetched early with A's credentials,
        # but A never makes it, so A's result sits in the cache ...
        await llm_only(llm, mcp_url, api_key="sk-a", mcp_token="tok-a")
        await asyncio.sleep(0.3)
        # ... when tenant B makes the same call with the same arguments
        got = await agent_step(llm, mcp_url, api_key="sk-b", mcp_token="tok-b")
    assert got == {"city": "Rome", "temp_c": 25}
    # A's early call, then B's own: B was not served A's result
    assert server.calls == [("get_weather", "Rome")] * 2
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["used"] == 0 and counters["wasted"] == 1


async def test_failed_speculative_call_leaves_the_agent_call_to_succeed(
    tmp_path: Path, monkeypatch
) -> None:
    proxy = await proxy_with_rules(tmp_path, monkeypatch)
    server = weather_server(fail_first=1)  # the early call fails, the agent's succeeds
    async with (
        serve_mcp(server) as mcp_url,
        serve(ScriptedLLM([("get_weather", {"city": "Lima"})], 0.5).app) as llm,
    ):
        got = await agent_step(llm, mcp_url, api_key="sk-a", mcp_token="tok-a")
    assert got == {"city": "Lima", "temp_c": 25}
    assert server.calls == [("get_weather", "Lima")] * 2
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["failed"] == 1 and counters["used"] == 0


async def test_no_speculate_fires_nothing(tmp_path: Path, monkeypatch) -> None:
    proxy = await proxy_with_rules(tmp_path, monkeypatch, "--no-speculate")
    server = weather_server()
    async with (
        serve_mcp(server) as mcp_url,
        serve(ScriptedLLM([("get_weather", {"city": "Oslo"})], 0.3).app) as llm,
    ):
        await agent_step(llm, mcp_url, api_key="sk-a", mcp_token="tok-a")
    assert server.calls == [("get_weather", "Oslo")]
    assert (await stats(proxy))["totals"]["fired"] == 0


async def test_a_broken_rules_file_is_reported_with_its_line(tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("rules:\n  - match: {tool: 'get_*'}\n    prefire: maybe\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prefire.cli.main",
        "run",
        "--listen-port",
        "0",
        "--state-dir",
        str(tmp_path / "s"),
        "--rules",
        str(rules),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert f"{rules}:3: prefire" in err.decode()


class WeatherREST:
    """A REST tool server: GET /v1/weather?city=X, slow enough to be worth starting early."""

    def __init__(self, delay_s: float = 0.3) -> None:
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/v1/weather", self.weather)

    async def weather(self, request: web.Request) -> web.Response:
        city = request.query["city"]
        self.calls.append(city)
        await asyncio.sleep(self.delay_s)
        return web.json_response({"city": city, "sky": "clear"})


async def rest_step(llm: str, rest: str, api_key: str) -> dict:
    """The LLM asks for get_weather; the agent runs it as a plain HTTP GET."""
    client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key=api_key)
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather?"}], stream=True
    )
    args = ""
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            args += tc.function.arguments or ""
    await client.close()
    async with httpx.AsyncClient() as http:  # proxy and CA from the environment
        resp = await http.get(rest + "/v1/weather", params=json.loads(args))
    return resp.json()


async def test_rest_binding_is_learned_then_used(tmp_path: Path, monkeypatch) -> None:
    proxy = await proxy_with_rules(tmp_path, monkeypatch)
    rest = WeatherREST()
    cities = ["Oslo", "Rome", "Lima"]
    llm_app = ScriptedLLM([("get_weather", {"city": c}) for c in cities], think_after_s=0.5)
    async with serve(rest.app) as rest_url, serve(llm_app.app) as llm:
        got = [await rest_step(llm, rest_url, "sk-a") for _ in cities]
    assert [g["city"] for g in got] == cities
    # two calls teach the template; the third is fetched early and served
    assert rest.calls == cities
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["used"] == 1


def shop_server() -> FastMCP:
    server = FastMCP("shop")
    server.calls = []  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def search(q: str) -> str:
        """Search the catalogue."""
        server.calls.append(("search", q))  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        return json.dumps({"ids": [f"{q}-{n}" for n in range(3)]})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_item(id: str) -> str:
        """One item."""
        server.calls.append(("get_item", id))  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        return json.dumps({"id": id, "price": len(id)})

    return server


async def test_predicted_call_learned_from_earlier_sessions(tmp_path: Path, monkeypatch) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {tool: ['search', 'get_item']}\n    prefire: true\n")
    proxy = await start_proxy(tmp_path, "--rules", str(rules))
    point_env_at(proxy, monkeypatch)
    server = shop_server()
    words = ["shoes", "hats", "socks", "belts", "scarves"]
    async with serve_mcp(server) as mcp_url, serve(DataFlowLLM().app) as llm:
        runs = [
            await agent_loop(llm, mcp_url, f"find me {w}", api_key="sk-a", mcp_token="tok-a")
            for w in words
        ]
    assert [json.loads(r[1])["id"] for r in runs] == [f"{w}-0" for w in words]
    counters = (await stats(proxy))["tools"]
    # after a few sessions the id flowing from search into get_item is predicted while the
    # LLM thinks, and the agent's get_item is served from it
    # predicted at a decision point, or chained from search's early result
    assert counters["get_item"]["predicted"] + counters["get_item"]["chained"] >= 2
    assert counters["get_item"]["used"] >= 2
    assert server.calls.count(("get_item", "belts-0")) == 1
