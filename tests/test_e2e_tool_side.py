"""Learning from the tool's own result through a real proxy: the agent shows the model a
rendering of each MCP result in which prefire can find no value (prose), the model still
reads the ids there; prefire learns where the next call's argument comes from in the MCP
server's own JSON, joined to the model's call, and predicts it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from aiohttp import web
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

from tests import openai_wire
from tests.conftest import RunningProxy, point_env_at, start_proxy
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import agent_loop
from tests.test_e2e_speculation import stats
from tests.upstreams import serve

RULES = "rules:\n  - match: {tool: ['search', 'get_item']}\n    prefire: true\n"


def shop(tenant_of_token: bool = False) -> FastMCP:
    """search(q) -> {"ids": [...]}, get_item(id) -> {...}; with `tenant_of_token` the ids
    carry the caller's bearer token, so each tenant has data of its own."""
    server = FastMCP("shop")
    server.calls = []  # type: ignore[attr-defined]

    def tenant(ctx: Context) -> str:
        request = ctx.request_context.request
        token = request.headers.get("authorization", "") if request is not None else ""
        return token.removeprefix("Bearer ") + "-" if tenant_of_token else ""

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def search(q: str, ctx: Context) -> str:
        """Search the catalog."""
        server.calls.append(("search", tenant(ctx), q))  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)
        return json.dumps({"ids": [f"{tenant(ctx)}{q}-{n}" for n in range(2)]})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_item(id: str, ctx: Context) -> str:
        """One item."""
        server.calls.append(("get_item", tenant(ctx), id))  # type: ignore[attr-defined]
        await asyncio.sleep(0.4)
        return json.dumps({"id": id, "price": len(id)})

    return server


def prose(tool: str, text: str) -> str:
    """How this agent shows a result to its model: a sentence, no JSON."""
    if tool == "search":
        return "I found these items: " + " and ".join(json.loads(text)["ids"]) + "."
    item = json.loads(text)
    return f"Item {item['id']} costs {item['price']} euros."


class ProseLLM:
    """search(q=<last word of the question>) -> get_item(id=<first id in the sentence>) ->
    answer; it thinks `think_s` before answering."""

    def __init__(self, think_s: float = 0.6) -> None:
        self.think_s = think_s
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        await asyncio.sleep(self.think_s)
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if not results:
            call: tuple[str, dict[str, Any]] | None = (
                "search",
                {"q": messages[-1]["content"].split()[-1]},
            )
        elif len(results) == 1:
            call = ("get_item", {"id": re.findall(r"found these items: (\S+) and", results[0])[0]})
        else:
            call = None
        message: dict[str, Any] = {"role": "assistant", "content": None if call else "done"}
        if call:
            message["tool_calls"] = [
                {
                    "id": f"call_{len(results)}_{call[1]}",
                    "type": "function",
                    "function": {"name": call[0], "arguments": json.dumps(call[1])},
                }
            ]
        finish = "tool_calls" if call else "stop"
        return web.json_response(openai_wire.completion(message, finish))


async def prose_agent(
    llm_base: str,
    mcp_url: str,
    question: str,
    *,
    api_key: str,
    mcp_token: str,
    mcp_http: httpx.AsyncClient | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> list[str]:
    """Runs the model's calls on the MCP server, shows it their results as prose; returns
    the results' texts as the server sent them."""
    return await agent_loop(
        llm_base,
        mcp_url,
        question,
        api_key=api_key,
        mcp_token=mcp_token,
        mcp_http=mcp_http,
        http_client=http_client,
        shown=prose,
        turns=4,
    )


async def proxy_for_shop(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> RunningProxy:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    proxy = await start_proxy(tmp, "--rules", str(rules))
    return point_env_at(proxy, monkeypatch)


async def test_an_argument_is_learned_from_the_tools_own_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await proxy_for_shop(tmp_path, monkeypatch)
    server = shop()
    words = ["shoes", "hats", "socks", "belts", "scarves", "gloves"]
    async with serve_mcp(server) as mcp_url, serve(ProseLLM().app) as llm:
        runs = [
            await prose_agent(llm, mcp_url, f"find me {w}", api_key="sk-a", mcp_token="tok-a")
            for w in words
        ]
    # the agent got exactly what the server returns
    assert [json.loads(r[1])["id"] for r in runs] == [f"{w}-0" for w in words]
    counters = (await stats(proxy))["tools"]
    # the id of get_item is in the model's view only inside a sentence: learned from the
    # MCP server's own result, joined to the model's search call, then predicted and served
    item = counters["get_item"]
    assert item["predicted"] + item["chained"] >= 2, counters  # chained: from search's result
    assert counters["get_item"]["used"] >= 2, counters
    assert server.calls.count(("get_item", "", "gloves-0")) == 1  # once, early, never again


class BoundBackend(httpcore.AnyIOBackend):
    """Connects from `local`: httpx and httpcore pass local_address only to direct
    connections, never to those a proxy pool makes."""

    def __init__(self, local: str) -> None:
        self.local = local

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return await super().connect_tcp(host, port, timeout, self.local, socket_options)


class BoundProxyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport through a proxy, its connections made from `local`."""

    def __init__(self, proxy_url: str, local: str) -> None:
        super().__init__()
        self._pool = httpcore.AsyncHTTPProxy(
            proxy_url=proxy_url, network_backend=BoundBackend(local)
        )


def bound_client(proxy: RunningProxy, local: str, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client whose connections to the proxy come from `local`: another client
    address, as another machine's agent would be."""
    return httpx.AsyncClient(
        transport=BoundProxyTransport(proxy.url, local),
        timeout=httpx.Timeout(30, read=300),
        follow_redirects=True,
        **kwargs,
    )


async def test_two_clients_making_the_same_calls_at_once_are_never_joined_across(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await proxy_for_shop(tmp_path, monkeypatch)
    server = shop(tenant_of_token=True)
    tenants = {"127.0.0.2": ("sk-a", "tok-a"), "127.0.0.3": ("sk-b", "tok-b")}

    async def agent(local: str, word: str) -> list[str]:
        api_key, token = tenants[local]
        # the MCP session closes its client
        mcp_http = bound_client(proxy, local, headers={"Authorization": f"Bearer {token}"})
        async with bound_client(proxy, local) as llm_http:
            return await prose_agent(
                llm,
                mcp_url,
                f"find me {word}",
                api_key=api_key,
                mcp_token=token,
                mcp_http=mcp_http,
                http_client=llm_http,
            )

    words = ["shoes", "hats", "socks", "belts", "scarves", "gloves"]
    async with serve_mcp(server) as mcp_url, serve(ProseLLM().app) as llm:
        for word in words:  # both tenants ask the same, at the same time
            a, b = await asyncio.gather(agent("127.0.0.2", word), agent("127.0.0.3", word))
            assert json.loads(a[1])["id"] == f"tok-a-{word}-0"
            assert json.loads(b[1])["id"] == f"tok-b-{word}-0"
    counters = (await stats(proxy))["tools"]
    # every item the server looked up, early or not, was the caller's own: no id crossed
    items = [(tenant, arg) for tool, tenant, arg in server.calls if tool == "get_item"]
    assert len(items) >= len(words) * 2
    assert all(arg.startswith(tenant) for tenant, arg in items), items
    # identical calls at once from two clients still join, each to its own client's
    # tools/call: the ids, seen only in prose, were learned from the server's result
    item = counters["get_item"]
    assert item["predicted"] + item["chained"] >= 4, counters  # chained: from search's result
    assert counters["get_item"]["used"] >= 4, counters
