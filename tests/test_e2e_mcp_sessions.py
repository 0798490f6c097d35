"""End to end through a real `prefire run`: early MCP calls run in a session of prefire's
own (never one an agent task opened), serve agents that keep one session and agents that
open one per call, follow a Claude-Code-style prefixed tool name, and say why when they
cannot run. The agent side is the mcp 1.x SDK and the openai SDK, through the proxy by
environment only; the MCP server is a real FastMCP that records the session of each call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
from aiohttp import web
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import Context, FastMCP
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import ToolAnnotations

from tests import openai_wire
from tests.agent_script import function_tool
from tests.conftest import log_lines, point_env_at, start_proxy
from tests.mcp_server import serve_mcp
from tests.test_e2e_speculation import stats
from tests.upstreams import serve

PREFIRE_ID = "prefire-"


def recording_server(delay_s: float = 0.3) -> FastMCP:
    """get_weather, recording (city, Mcp-Session-Id, JSON-RPC id) of every call."""
    server = FastMCP("weather")
    server.calls = []  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_weather(city: str, ctx: Context) -> dict:
        """Current weather for a city."""
        request = ctx.request_context.request
        session = request.headers.get("mcp-session-id") if request is not None else None
        server.calls.append((city, session, str(ctx.request_id)))  # type: ignore[attr-defined]
        await asyncio.sleep(delay_s)
        return {"city": city, "temp_c": 21 + len(city)}

    return server


class CityLLM:
    """Streams one call of `tool` for the city that ends the user's message, then keeps
    generating for `think_after_s`: the call is certain before the response ends."""

    def __init__(self, tool: str = "get_weather", think_after_s: float = 0.6) -> None:
        self.tool = tool
        self.think_after_s = think_after_s
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        words = body["messages"][-1]["content"].split()
        tool = self.tool if words[0] != "forecast" else "mcp__weather__get_forecast"
        call = openai_wire.tool_call(f"call_{words[-1]}", tool, {"city": words[-1]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(
            openai_wire.data(openai_wire.chunk({"role": "assistant", "tool_calls": [call]}))
        )
        await asyncio.sleep(self.think_after_s)
        await resp.write(openai_wire.data(openai_wire.chunk({}, "tool_calls")))
        await resp.write(openai_wire.DONE)
        await resp.write_eof()
        return resp


@asynccontextmanager
async def agent_session(url: str, opened: list[str]) -> AsyncIterator[ClientSession]:
    """An MCP session of the agent's (mcp 1.x SDK, through the proxy); its id is added to
    `opened`. Leaving it ends it (DELETE), as the SDK does."""
    http = create_mcp_http_client(headers={"Authorization": "Bearer tok"})
    async with (
        http,
        streamable_http_client(url, http_client=http) as (r, w, session_id),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        opened.append(session_id() or "")
        yield session


async def ask(llm: str, question: str, tools: list[str]) -> tuple[str, dict[str, Any]]:
    """One streamed LLM turn; the call it made."""
    client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key="sk")
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": question}],
        tools=[function_tool(t) for t in tools],
        stream=True,
    )
    name, args = "", ""
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    await client.close()
    return name, json.loads(args)


def text_of(result: Any) -> Any:
    return json.loads("\n".join(c.text for c in result.content if c.type == "text"))


async def rules_proxy(tmp: Path, monkeypatch, rules: str) -> Any:
    path = tmp / "rules.yaml"
    path.write_text(rules)
    proxy = await start_proxy(tmp, "--rules", str(path), log=tmp / "proxy.log")
    point_env_at(proxy, monkeypatch)
    return proxy


READS = "rules:\n  - match: {tool: get_*}\n    prefire: true\n"


def early_and_agent_calls(server: FastMCP) -> tuple[list[tuple], list[tuple]]:
    calls = server.calls  # type: ignore[attr-defined]
    return (
        [c for c in calls if c[2].startswith(PREFIRE_ID)],
        [c for c in calls if not c[2].startswith(PREFIRE_ID)],
    )


async def test_two_tasks_at_once_are_served_and_no_early_call_rides_on_their_sessions(
    tmp_path: Path, monkeypatch
) -> None:
    proxy = await rules_proxy(tmp_path, monkeypatch, READS)
    server = recording_server()
    opened: list[str] = []
    started = asyncio.Barrier(2)

    async def task(llm: str, url: str, city: str) -> Any:
        async with agent_session(url, opened) as session:
            names = [t.name for t in (await session.list_tools()).tools]
            await started.wait()  # both sessions open before either asks the model
            name, args = await ask(llm, f"weather in {city}", names)
            return text_of(await session.call_tool(name, args))

    async with serve_mcp(server) as url, serve(CityLLM().app) as llm:
        got = await asyncio.gather(task(llm, url, "Oslo"), task(llm, url, "Lima"))
    assert got == [{"city": "Oslo", "temp_c": 25}, {"city": "Lima", "temp_c": 25}]
    early, theirs = early_and_agent_calls(server)
    assert sorted(c[0] for c in early) == ["Lima", "Oslo"] and theirs == []  # served
    assert len(set(opened)) == 2 and all(opened)
    assert not {c[1] for c in early} & set(opened)  # never in a session a task opened
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["used"] == 2


async def test_a_client_with_a_session_per_call_is_served(tmp_path: Path, monkeypatch) -> None:
    """As LangChain's MCP adapters do: initialize, tools/list, tools/call, DELETE, for
    every call; the early call's session outlives them all."""
    proxy = await rules_proxy(tmp_path, monkeypatch, READS)
    server = recording_server()
    opened: list[str] = []

    async def task(llm: str, url: str, city: str) -> Any:
        async with agent_session(url, opened) as session:
            names = [t.name for t in (await session.list_tools()).tools]
        name, args = await ask(llm, f"weather in {city}", names)
        async with agent_session(url, opened) as session:
            await session.list_tools()
            return text_of(await session.call_tool(name, args))

    async with serve_mcp(server) as url, serve(CityLLM().app) as llm:
        got = await asyncio.gather(*(task(llm, url, c) for c in ("Rome", "Kyiv", "Riga")))
    assert [g["city"] for g in got] == ["Rome", "Kyiv", "Riga"]
    early, theirs = early_and_agent_calls(server)
    assert sorted(c[0] for c in early) == ["Kyiv", "Riga", "Rome"] and theirs == []
    assert not {c[1] for c in early} & set(opened)
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["used"] == 3


async def test_a_claude_code_style_prefixed_name_is_fired_and_served(
    tmp_path: Path, monkeypatch
) -> None:
    """The model calls mcp__weather__get_weather; the client runs get_weather. A rule
    written for either name matches; a prefixed name the server does not list is not
    fired, and the log says which names it offers."""
    rules = "rules:\n  - match: {tool: mcp__weather__get_*}\n    prefire: true\n"
    proxy = await rules_proxy(tmp_path, monkeypatch, rules)
    server = recording_server()
    opened: list[str] = []
    async with (
        serve_mcp(server) as url,
        serve(CityLLM(tool="mcp__weather__get_weather").app) as llm,
        agent_session(url, opened) as session,
    ):
        names = [f"mcp__weather__{t.name}" for t in (await session.list_tools()).tools]
        name, args = await ask(llm, "weather in Paris", names)
        assert name == "mcp__weather__get_weather"
        got = text_of(await session.call_tool(name.removeprefix("mcp__weather__"), args))
        await ask(llm, "forecast for Paris", names)  # a tool the server does not have
    assert got == {"city": "Paris", "temp_c": 26}
    early, theirs = early_and_agent_calls(server)
    assert [c[0] for c in early] == ["Paris"] and theirs == []
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["used"] == 1
    logged = log_lines(tmp_path / "proxy.log")
    fired = [r for r in logged if r.get("event") == "speculate.fired"]
    assert fired[0]["called_as"] == "mcp__weather__get_weather"
    (skipped,) = [
        r
        for r in logged
        if r.get("event") == "speculate.skipped" and r["tool"] == "mcp__weather__get_forecast"
    ]
    assert skipped["reason"] == "no_binding" and skipped["offered"] == ["get_weather"]


class Refusing:
    """ASGI middleware: prefire's own requests get 403 and an error body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            message = await receive()
            if PREFIRE_ID.encode() in message.get("body", b""):
                await send({"type": "http.response.start", "status": 403, "headers": []})
                await send({"type": "http.response.body", "body": b"early calls not welcome"})
                return

            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return message

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def test_a_refused_early_call_is_logged_with_its_status_and_body(
    tmp_path: Path, monkeypatch
) -> None:
    proxy = await rules_proxy(tmp_path, monkeypatch, READS)
    server = recording_server(delay_s=0)
    app = Refusing(server.streamable_http_app())
    opened: list[str] = []
    async with (
        serve_mcp(server, app=app) as url,
        serve(CityLLM(think_after_s=0.2).app) as llm,
        agent_session(url, opened) as session,
    ):
        names = [t.name for t in (await session.list_tools()).tools]
        name, args = await ask(llm, "weather in Bern", names)
        got = text_of(await session.call_tool(name, args))
    assert got == {"city": "Bern", "temp_c": 25}  # the agent's own call, upstream
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["failed"] == 1 and counters["used"] == 0
    (failed,) = [
        r for r in log_lines(tmp_path / "proxy.log") if r.get("event") == "speculate.failed"
    ]
    assert failed["why"] == "session_open_failed" and failed["status"] == 403
    assert failed["body"] == "early calls not welcome"


async def test_session_agent_keeps_early_calls_in_the_conversations_own_session(
    tmp_path: Path, monkeypatch
) -> None:
    """With `session: agent` the first call of a conversation teaches which session it
    uses (fired nothing: not known yet); the next runs early inside that session."""
    rules = READS + "    session: agent\n"
    proxy = await rules_proxy(tmp_path, monkeypatch, rules)
    server = recording_server()
    opened: list[str] = []
    async with (
        serve_mcp(server) as url,
        serve(CityLLM().app) as llm,
        agent_session(url, opened) as session,
    ):
        names = [t.name for t in (await session.list_tools()).tools]
        client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key="sk")
        messages: list[dict[str, Any]] = []
        for city in ("Oslo", "Rome"):
            messages.append({"role": "user", "content": f"weather in {city}"})
            stream = await client.chat.completions.create(
                model="m", messages=messages, tools=[function_tool(n) for n in names], stream=True
            )
            calls = [tc async for chunk in stream for tc in chunk.choices[0].delta.tool_calls or []]
            (call,) = calls
            result = await session.call_tool(
                call.function.name, json.loads(call.function.arguments)
            )
            messages.append(
                {"role": "assistant", "tool_calls": [call.model_dump(exclude_none=True)]}
            )
            messages[-1]["tool_calls"][0].pop("index", None)
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": result.content[0].text}
            )
        await client.close()
    early, theirs = early_and_agent_calls(server)
    assert [c[0] for c in theirs] == ["Oslo"]  # the first ran as the agent's own call
    assert [(c[0], c[1]) for c in early] == [("Rome", opened[0])]  # in its own session
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["used"] == 1
    skipped = [
        r for r in log_lines(tmp_path / "proxy.log") if r.get("event") == "speculate.skipped"
    ]
    assert [r["reason"] for r in skipped] == ["agent_session_unknown"]
