"""Eager speculation through every LLM API: the tool call closes mid-stream in an
Anthropic, Responses or Gemini stream, prefire starts it on the real MCP server, and
the agent's own call (made with the mcp SDK once its stream ends) is served from it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

from tests.mcp_server import serve_mcp
from tests.spec_fixtures import mcp_session
from tests.test_e2e_speculation import proxy_with_rules, stats
from tests.upstreams import WEATHER_ARGS, LLMUpstream, serve

Ask = Callable[[str, list[dict[str, Any]]], Awaitable[tuple[str, dict[str, Any]]]]


def weather(delay_s: float) -> FastMCP:
    server = FastMCP("weather")
    server.calls = []  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_weather(city: str, unit: str) -> dict:
        """Current weather for a city."""
        server.calls.append((city, unit))  # type: ignore[attr-defined]
        await asyncio.sleep(delay_s)
        return {"city": city, "unit": unit, "temp": 21}

    return server


async def ask_anthropic(llm: str, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    client = anthropic.AsyncAnthropic(base_url=llm, api_key="sk-ant")
    async with client.messages.stream(
        model="claude-scripted",
        max_tokens=200,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"name": t["name"], "input_schema": t["parameters"]} for t in tools],
    ) as stream:
        final = await stream.get_final_message()
    await client.close()
    use = next(b for b in final.content if b.type == "tool_use")
    return use.name, dict(use.input)


async def ask_responses(llm: str, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key="sk-oai")
    stream = await client.responses.create(
        model="gpt-4o-mini",
        input="Weather in Paris?",
        tools=[{"type": "function", **t} for t in tools],
        stream=True,
    )
    items = [
        ev.item
        async for ev in stream
        if ev.type == "response.output_item.done" and ev.item.type == "function_call"
    ]
    await client.close()
    return items[0].name, json.loads(items[0].arguments)


async def ask_gemini(llm: str, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
        "tools": [{"functionDeclarations": tools}],
    }
    url = llm + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    async with (
        httpx.AsyncClient() as client,  # the proxy comes from the environment
        client.stream("POST", url, json=body, headers={"x-goog-api-key": "g-key"}) as resp,
    ):
        lines = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
    parts = json.loads(lines[0][6:])["candidates"][0]["content"]["parts"]
    call = next(p["functionCall"] for p in parts if "functionCall" in p)
    return call["name"], call["args"]


async def agent(llm: str, mcp_url: str, ask: Ask) -> Any:
    async with mcp_session(mcp_url, "tok") as session:
        listed = await session.list_tools()
        tools = [
            {"name": t.name, "description": t.description or "", "parameters": t.inputSchema}
            for t in listed.tools
        ]
        name, args = await ask(llm, tools)
        result = await session.call_tool(name, args)
    return json.loads(result.content[0].text)


@pytest.mark.parametrize("ask", [ask_anthropic, ask_responses, ask_gemini])
async def test_call_closed_mid_stream_is_served_early(
    ask: Ask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = LLMUpstream(gap_s=0.15)  # the stream runs on after the call closes
    async with serve_mcp(weather(0.0)) as mcp_url, serve(upstream.app) as llm:
        expected = await agent(llm, mcp_url, ask)  # no proxy yet

    proxy = await proxy_with_rules(tmp_path, monkeypatch)
    server = weather(0.3)
    async with serve_mcp(server) as mcp_url, serve(LLMUpstream(gap_s=0.15).app) as llm:
        got = await agent(llm, mcp_url, ask)
    assert got == expected == {**WEATHER_ARGS, "temp": 21}
    # one call reached the tool server: the early one, which served the agent's
    assert server.calls == [tuple(WEATHER_ARGS.values())]  # type: ignore[attr-defined]
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == counters["eager"] == counters["used"] == 1
    assert counters["wasted"] == 0
