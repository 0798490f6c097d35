"""The demo's agent: an ordinary tool-using agent on the real `openai` and `mcp` SDKs, with
httpx for the REST tools. It knows nothing of prefire; whether its traffic goes through a
proxy is up to the environment (HTTP_PROXY and friends), as for any agent.

    python -m prefire.proxy.demo.agent --llm URL --mcp URL --rest URL --tasks FILE

FILE is a JSON list of {"id", "prompt"}. Prints one JSON line on stdout per task as it
finishes, {"done": ID, "wall_s": S}, for progress; then, as the last line, the report: the
wall time of the whole run and, per task, its wall time, its final answer and every tool
result it received, in order, so two runs can be compared result for result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from openai import AsyncOpenAI

SYSTEM = (
    "You are a travel and customer-support assistant. Use the tools to look things up "
    "and act; never guess ids."
)
MAX_TURNS = 12  # a loop this long means the model is stuck; fail rather than spin
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Toolbox:
    """The tools offered to the model: the MCP server's, and the REST API's catalog."""

    def __init__(
        self,
        mcp: ClientSession,
        mcp_tools: list[Any],
        rest: httpx.AsyncClient,
        rest_catalog: list[dict[str, Any]],
    ) -> None:
        self._mcp = mcp
        self._mcp_names = {t.name for t in mcp_tools}
        self._rest = rest
        self._rest_tools = {entry["name"]: entry for entry in rest_catalog}
        self.specs = [_function(t.name, t.description or "", t.inputSchema) for t in mcp_tools]
        self.specs += [
            _function(e["name"], e["description"], e["parameters"]) for e in rest_catalog
        ]

    async def call(self, name: str, raw_arguments: str) -> tuple[str, bool]:
        """Run one tool call; returns the text to give the model and whether it failed."""
        try:
            arguments = json.loads(raw_arguments or "{}")
        except ValueError as exc:
            return f"arguments are not JSON: {exc}", True
        if name in self._mcp_names:
            result = await self._mcp.call_tool(name, arguments)
            text = "\n".join(c.text for c in result.content if c.type == "text")
            return text, result.isError
        if name in self._rest_tools:
            return await self._call_rest(self._rest_tools[name], arguments)
        return f"no tool named {name!r}", True

    async def _call_rest(self, tool: dict[str, Any], arguments: dict[str, Any]) -> tuple[str, bool]:
        rest = dict(arguments)
        in_path = _PLACEHOLDER.findall(tool["path"])
        missing = [p for p in in_path if p not in rest]
        if missing:
            return f"missing arguments: {', '.join(missing)}", True
        path = tool["path"].format(**{p: quote(str(rest.pop(p)), safe="") for p in in_path})
        if tool["method"] == "GET":
            resp = await self._rest.get(path, params=rest)
        else:
            resp = await self._rest.request(tool["method"], path, json=rest)
        return resp.text, resp.is_error


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


async def _complete(
    llm: AsyncOpenAI, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> tuple[str, list[dict[str, str]]]:
    """One streamed model turn: its text and its tool calls, assembled from the deltas."""
    stream = await llm.chat.completions.create(
        model="demo-travel-1",
        # plain dicts in the wire format, not the SDK's TypedDicts
        messages=cast(Any, messages),
        tools=cast(Any, tools),
        stream=True,
    )
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    async for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text.append(delta.content or "")
        for tc in delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = tc.id or call["id"]
            if tc.function is not None:
                call["name"] += tc.function.name or ""
                call["arguments"] += tc.function.arguments or ""
    return "".join(text), [calls[i] for i in sorted(calls)]


async def run_task(task: dict[str, str], llm: AsyncOpenAI, tools: Toolbox) -> dict[str, Any]:
    started = time.perf_counter()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task["prompt"]},
    ]
    seen: list[dict[str, Any]] = []
    # per turn, what the agent waited for: the model's turn, then each tool call (for the
    # ceilings bench/speculation.py computes; no part of what is compared between runs)
    turns: list[dict[str, Any]] = []
    for _ in range(MAX_TURNS):
        asked = time.perf_counter()
        text, calls = await _complete(llm, messages, tools.specs)
        turns.append({"llm_s": round(time.perf_counter() - asked, 4), "tools_s": []})
        if not calls:
            return {
                "id": task["id"],
                "prompt": task["prompt"],
                "wall_s": round(time.perf_counter() - started, 3),
                "answer": text,
                "tool_results": seen,
                "turns": turns,
            }
        messages.append(
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls
                ],
            }
        )
        # The calls of one turn are independent of each other: run them together.
        outputs = await asyncio.gather(
            *(_timed(tools.call(c["name"], c["arguments"])) for c in calls)
        )
        for call, (output, is_error, took) in zip(calls, outputs, strict=True):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
            turns[-1]["tools_s"].append(took)
            seen.append(
                {
                    "tool": call["name"],
                    "arguments": call["arguments"],
                    "result": output,
                    "is_error": is_error,
                }
            )
    raise RuntimeError(f"task {task['id']} did not finish in {MAX_TURNS} turns")


async def _timed(call: Awaitable[tuple[str, bool]]) -> tuple[str, bool, float]:
    """The call's output and failure flag, and the seconds the agent waited for it."""
    asked = time.perf_counter()
    output, is_error = await call
    return output, is_error, round(time.perf_counter() - asked, 4)


@asynccontextmanager
async def _mcp_session(url: str) -> AsyncIterator[ClientSession]:
    http = create_mcp_http_client()
    async with (
        http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def run(
    llm_url: str, mcp_url: str, rest_url: str, tasks: list[dict[str, str]], concurrency: int
) -> dict[str, Any]:
    # No retries: a retried request would hide a failure and skew the timings.
    llm = AsyncOpenAI(base_url=llm_url, api_key="sk-demo-agent", max_retries=0, timeout=60)
    async with (
        llm,
        httpx.AsyncClient(base_url=rest_url, timeout=30) as rest,
        _mcp_session(mcp_url) as mcp,
    ):
        catalog = (await rest.get("/tools")).raise_for_status().json()
        tools = Toolbox(mcp, (await mcp.list_tools()).tools, rest, catalog)
        slots = asyncio.Semaphore(concurrency)

        async def one(task: dict[str, str]) -> dict[str, Any]:
            async with slots:
                result = await run_task(task, llm, tools)
            print(json.dumps({"done": result["id"], "wall_s": result["wall_s"]}), flush=True)
            return result

        started = time.perf_counter()
        done = await asyncio.gather(*(one(t) for t in tasks))
        return {"wall_s": round(time.perf_counter() - started, 3), "tasks": done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefire.proxy.demo.agent", description=__doc__)
    parser.add_argument("--llm", required=True, help="OpenAI-compatible base URL, .../v1")
    parser.add_argument("--mcp", required=True, help="MCP streamable HTTP endpoint")
    parser.add_argument("--rest", required=True, help="REST tool API base URL")
    parser.add_argument("--tasks", required=True, type=Path, help="JSON list of {id, prompt}")
    parser.add_argument("--concurrency", type=int, default=4, help="tasks run at once")
    args = parser.parse_args(argv)
    tasks = json.loads(args.tasks.read_text())
    report = asyncio.run(run(args.llm, args.mcp, args.rest, tasks, args.concurrency))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
