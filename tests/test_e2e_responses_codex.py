"""A Codex-shaped agent on the Responses API through a real prefire: MCP tools offered in a
namespace, `store: false` with the whole input every turn, reasoning items, parallel calls,
outputs wrapped as Codex shows them. The chain search -> details of each hit -> owner is
predicted and served, and the agent sees what it would see without prefire."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from mcp import ClientSession
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

from tests.conftest import point_env_at, start_proxy
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import mcp_session
from tests.test_e2e_speculation import stats
from tests.upstreams import serve

NS = "mcp__docs"
RULES = "rules:\n  - match: {tool: [search_docs, get_doc, get_team]}\n    prefire: true\n"
TOOLS = [
    {"type": "function", "name": "shell", "parameters": {"type": "object"}},
    {
        "type": "namespace",
        "name": NS,
        "description": "Tools of the docs MCP server",
        "tools": [
            {"type": "function", "name": name, "parameters": {"type": "object"}}
            for name in ("search_docs", "get_doc", "get_team")
        ],
    },
]


def _id(*parts: str) -> str:
    return hashlib.blake2b("/".join(parts).encode(), digest_size=3).hexdigest()


def hits(query: str) -> list[dict[str, str]]:
    return [{"id": f"doc-{_id(query, str(k))}", "title": f"{query} {k}"} for k in range(2)]


def docs_server(latency: float = 1.0) -> FastMCP:
    """search_docs -> get_doc -> get_team, their times scaled by `latency`."""
    server = FastMCP("docs")
    server.calls = []  # type: ignore[attr-defined]

    def called(*call: str) -> None:
        server.calls.append(call)  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def search_docs(query: str) -> str:
        """Search the docs."""
        called("search_docs", query)
        await asyncio.sleep(0.3 * latency)
        return json.dumps({"hits": hits(query)})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_doc(doc_id: str) -> str:
        """One doc."""
        called("get_doc", doc_id)
        await asyncio.sleep(0.4 * latency)
        return json.dumps({"id": doc_id, "owner_team": f"team-{_id(doc_id)}", "body": "..."})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_team(team_id: str) -> str:
        """A team."""
        called("get_team", team_id)
        await asyncio.sleep(0.4 * latency)
        return json.dumps({"id": team_id, "name": f"Team {team_id[-4:]}"})

    return server


def unwrap(output: str) -> Any:
    """What the model reads in a Codex-wrapped output: JSON in the `result` string."""
    return json.loads(json.loads(output.split("Output:\n", 1)[1])["result"])


class CodexLLM:
    """A scripted Responses model: thinks, then streams a reasoning item and the next calls
    of the chain (all in the namespace), or a final message."""

    def __init__(self, think_s: float = 0.6) -> None:
        self.think_s = think_s
        self.n = 0
        self.app = web.Application()
        self.app.router.add_post("/v1/responses", self.responses)

    def next_calls(self, items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        outputs = {i["call_id"]: i["output"] for i in items if i["type"] == "function_call_output"}
        calls = [i for i in items if i["type"] == "function_call"]
        if not calls:
            prompt = [i for i in items if i.get("role") == "user"][-1]["content"][0]["text"]
            return [("search_docs", {"query": re.findall(r"docs about (.+) and", prompt)[0]})]
        name = calls[-1]["name"]
        results = [unwrap(outputs[c["call_id"]]) for c in calls if c["name"] == name]
        if name == "search_docs":
            return [("get_doc", {"doc_id": h["id"]}) for h in results[-1]["hits"]]
        if name == "get_doc":  # the owner of the first hit: the first of the last two docs
            return [("get_team", {"team_id": results[-2]["owner_team"]})]
        return []

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.n += 1
        rid = f"resp_{self.n}"
        await asyncio.sleep(self.think_s)
        reasoning = {
            "type": "reasoning",
            "id": f"rs_{self.n}",
            "summary": [],
            "encrypted_content": "x",
        }
        out: list[dict[str, Any]] = [reasoning]
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
            {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        ]
        for k, (name, args) in enumerate(self.next_calls(body["input"]), start=1):
            item = {
                "type": "function_call",
                "id": f"fc_{self.n}_{k}",
                "call_id": f"call_{self.n}_{k}",
                "name": name,
                "namespace": NS,
                "arguments": json.dumps(args),
                "status": "completed",
            }
            out.append(item)
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": k,
                    "item": {**item, "arguments": ""},
                },
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": k,
                    "arguments": item["arguments"],
                },
                {"type": "response.output_item.done", "output_index": k, "item": item},
            ]
        if len(out) == 1:
            text = [{"type": "output_text", "text": "Done.", "annotations": []}]
            out.append(
                {"type": "message", "id": f"msg_{self.n}", "role": "assistant", "content": text}
            )
            events.append({"type": "response.output_item.done", "output_index": 1, "item": out[-1]})
        events.append(
            {
                "type": "response.completed",
                "response": {"id": rid, "status": "completed", "output": out},
            }
        )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, e in enumerate(events):
            await resp.write(
                f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n".encode()
            )
        await resp.write_eof()
        return resp


async def codex_task(llm: str, mcp: ClientSession, topic: str, n: int) -> list[Any]:
    """Codex's loop: the whole input every turn (store: false), the calls of a turn run at
    once on the MCP server by the server's names, their outputs wrapped in text."""
    text = f"Find the docs about {topic} and tell me who owns them."
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": t}]}
        for t in ("<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>", text)
    ]
    seen: list[Any] = []
    async with httpx.AsyncClient(timeout=60) as http:  # the proxy comes from the environment
        for _ in range(6):
            body = {
                "model": "gpt-5-codex",
                "instructions": "You are Codex.",
                "input": items,
                "tools": TOOLS,
                "parallel_tool_calls": True,
                "store": False,
                "stream": True,
                "include": ["reasoning.encrypted_content"],
                "prompt_cache_key": f"conversation-{n}",
            }
            output: list[dict[str, Any]] = []
            headers = {"Authorization": "Bearer sk-codex"}
            async with http.stream("POST", llm + "/v1/responses", json=body, headers=headers) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        if event["type"] == "response.output_item.done":
                            output.append(event["item"])
            items += output
            calls = [i for i in output if i["type"] == "function_call"]
            if not calls:
                return seen
            results = await asyncio.gather(
                *(mcp.call_tool(c["name"], json.loads(c["arguments"])) for c in calls)
            )
            for call, result in zip(calls, results, strict=True):
                shown = result.structuredContent
                seen.append(shown)
                wrapped = "Wall time: 0.4000 seconds\nOutput:\n" + json.dumps(shown)
                items.append(
                    {"type": "function_call_output", "call_id": call["call_id"], "output": wrapped}
                )
    raise AssertionError("the task did not end")


TOPICS = ["billing", "refunds", "payroll", "onboarding", "security", "invoices"]


async def run_all(llm_url: str, mcp_url: str) -> list[list[Any]]:
    async with mcp_session(mcp_url, "tok-docs") as mcp:
        return [await codex_task(llm_url, mcp, t, n) for n, t in enumerate(TOPICS)]


async def test_codex_shaped_chains_are_predicted_and_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct_server = docs_server(latency=0.0)  # the answers do not depend on timing
    async with serve_mcp(direct_server) as mcp_url, serve(CodexLLM(0.05).app) as llm:
        direct = await run_all(llm, mcp_url)
    (tmp_path / "rules.yaml").write_text(RULES)
    proxy = await start_proxy(tmp_path, "--rules", str(tmp_path / "rules.yaml"))
    point_env_at(proxy, monkeypatch)
    server = docs_server()
    async with serve_mcp(server) as mcp_url, serve(CodexLLM().app) as llm:
        through = await run_all(llm, mcp_url)
    assert through == direct  # every output the agent got, in order
    counters = (await stats(proxy))["tools"]
    for tool in ("get_doc", "get_team"):
        name = tool if tool in counters else f"{NS}__{tool}"
        # predicted at a decision point, or chained from an early result (patterns/chain.py)
        assert counters[name]["predicted"] + counters[name]["chained"] >= 2, counters
        assert counters[name]["used"] >= 2, counters
    # the last task's details and owner ran once each: early, then served
    last = TOPICS[-1]
    for h in hits(last):
        assert server.calls.count(("get_doc", h["id"])) == 1  # type: ignore[attr-defined]
