"""A scripted LLM and an agent for speculation tests: the LLM streams one tool call per
request (from a script), then thinks before it ends the stream; the agent runs the call on
a real MCP server through the mcp SDK. Everything goes through the proxy by environment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from aiohttp import web
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests import openai_wire
from tests.agent_script import function_tool


@dataclass
class ScriptedLLM:
    """Answers each chat request with the next scripted call, streamed; the stream stays
    open `think_after_s` after the call closes, as a model that keeps generating."""

    script: list[tuple[str, dict[str, Any]]]
    think_after_s: float = 0.4
    served: int = 0
    app: web.Application = field(default_factory=web.Application)

    def __post_init__(self) -> None:
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        name, args = self.script[self.served % len(self.script)]
        self.served += 1
        chunk_id = f"c{self.served}"
        call = openai_wire.tool_call(f"call_{self.served}", name, args)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        first = openai_wire.chunk({"role": "assistant", "tool_calls": [call]}, chunk_id=chunk_id)
        await resp.write(openai_wire.data(first))
        await asyncio.sleep(self.think_after_s)
        await resp.write(openai_wire.data(openai_wire.chunk({}, "tool_calls", chunk_id=chunk_id)))
        await resp.write(openai_wire.DONE)
        await resp.write_eof()
        return resp


@asynccontextmanager
async def mcp_session(
    url: str, token: str, http: httpx.AsyncClient | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session over streamable HTTP with a bearer token; through
    the proxy when the environment says so, as for any agent. `http`, when given, is the
    client to use (with the token among its headers); it is closed with the session."""
    http = http or create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with (
        http,
        streamable_http_client(url, http_client=http) as (r, w, _),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        yield session


async def llm_only(
    llm_base: str,
    mcp_url: str,
    *,
    api_key: str,
    mcp_token: str,
    then: Callable[[ClientSession], Awaitable[None]] | None = None,
) -> None:
    """Connect to the MCP server and ask the LLM, but do not make the call it returns;
    `then` runs afterwards in the same MCP session."""
    async with mcp_session(mcp_url, mcp_token) as session:
        await session.list_tools()
        client = openai.AsyncOpenAI(base_url=llm_base + "/v1", api_key=api_key)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        async for _ in stream:
            pass
        await client.close()
        if then is not None:
            await then(session)


async def agent_step(llm_base: str, mcp_url: str, *, api_key: str, mcp_token: str) -> Any:
    """One agent step: list the MCP tools, ask the LLM, run the call it returns on the MCP
    server. Returns the tool result's text, parsed when it is JSON."""
    async with mcp_session(mcp_url, mcp_token) as session:
        tools = await session.list_tools()
        client = openai.AsyncOpenAI(base_url=llm_base + "/v1", api_key=api_key)
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[function_tool(t.name) for t in tools.tools],
            stream=True,
        )
        calls: dict[int, dict[str, Any]] = {}
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"name": tc.function.name, "arguments": ""})
                c["arguments"] += tc.function.arguments or ""
        await client.close()
        (call,) = calls.values()
        result = await session.call_tool(call["name"], json.loads(call["arguments"]))
        text = "\n".join(c.text for c in result.content if c.type == "text")
        try:
            return json.loads(text)
        except ValueError:
            return text


class DataFlowLLM:
    """An LLM whose second call takes its argument from the first call's result:
    search(q=<the user's last word>) -> get_item(id=<first id found>) -> answer.
    It thinks `think_s` before it starts answering."""

    def __init__(self, think_s: float = 0.6) -> None:
        self.think_s = think_s
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        messages = body["messages"]
        await asyncio.sleep(self.think_s)
        tool_msgs = [m for m in messages if m["role"] == "tool"]
        if not tool_msgs:
            call = ("search", {"q": messages[-1]["content"].split()[-1]})
        elif len(tool_msgs) == 1:
            call = ("get_item", {"id": json.loads(tool_msgs[-1]["content"])["ids"][0]})
        else:
            call = None
        message: dict[str, Any] = {"role": "assistant", "content": None if call else "done"}
        if call:
            message["tool_calls"] = [
                {
                    "id": f"call_{len(tool_msgs)}_{call[0]}",
                    "type": "function",
                    "function": {"name": call[0], "arguments": json.dumps(call[1])},
                }
            ]
        finish = "tool_calls" if call else "stop"
        return web.json_response(openai_wire.completion(message, finish))


def _as_sent(_tool: str, text: str) -> str:
    return text


async def agent_loop(
    llm_base: str,
    mcp_url: str,
    question: str,
    *,
    api_key: str,
    mcp_token: str,
    mcp_http: httpx.AsyncClient | None = None,
    http_client: httpx.AsyncClient | None = None,
    shown: Callable[[str, str], str] = _as_sent,
    turns: int = 5,
) -> list[Any]:
    """Run the LLM's calls on the MCP server until it answers (at most `turns` turns),
    showing it each result as `shown(tool, text)`; returns the results' texts as the server
    sent them."""
    results: list[Any] = []
    async with mcp_session(mcp_url, mcp_token, mcp_http) as session:
        tools = await session.list_tools()
        client = openai.AsyncOpenAI(
            base_url=llm_base + "/v1", api_key=api_key, http_client=http_client
        )
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        for _ in range(turns):
            resp = await client.chat.completions.create(
                model="m", messages=messages, tools=[function_tool(t.name) for t in tools.tools]
            )
            msg = resp.choices[0].message
            if not msg.tool_calls:
                break
            messages.append(msg.model_dump(exclude_none=True))
            for tc in msg.tool_calls:
                out = await session.call_tool(tc.function.name, json.loads(tc.function.arguments))
                text = "\n".join(c.text for c in out.content if c.type == "text")
                results.append(text)
                content = shown(tc.function.name, text)
                messages.append({"role": "tool", "tool_call_id": tc.id, "content": content})
        await client.close()
    return results
