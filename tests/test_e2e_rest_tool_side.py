"""Learning from a REST tool's own result through a real proxy: the agent runs the model's
calls as plain HTTP requests to an aiohttp REST server and shows the model each result as a
sentence in which prefire can find no value; prefire joins each call to the request that
ran it (same client, every argument in the request), learns the next call's argument from
the server's own JSON, and predicts it. The LLM's scope decides where that is learned; the
REST requests' own credentials decide what is served."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from tests.agent_script import function_tool
from tests.conftest import RunningProxy
from tests.test_e2e_speculation import stats
from tests.test_e2e_tool_side import ProseLLM, bound_client, prose, proxy_for_shop
from tests.upstreams import serve

WORDS = ["shoes", "hats", "socks", "belts", "scarves", "gloves"]


class ShopREST:
    """GET /v1/search?q=X -> {"ids": [...]}, GET /v1/items/{id} -> {...}; the ids carry the
    caller's bearer token, so each tenant has data of its own."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (tool, tenant, argument)
        self.app = web.Application()
        self.app.router.add_get("/v1/search", self.search)
        self.app.router.add_get("/v1/items/{id}", self.item)

    @staticmethod
    def tenant(request: web.Request) -> str:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return token + "-" if token else ""

    async def search(self, request: web.Request) -> web.Response:
        q, tenant = request.query["q"], self.tenant(request)
        self.calls.append(("search", tenant, q))
        await asyncio.sleep(0.2)
        return web.json_response({"ids": [f"{tenant}{q}-{n}" for n in range(2)]})

    async def item(self, request: web.Request) -> web.Response:
        id_, tenant = request.match_info["id"], self.tenant(request)
        self.calls.append(("get_item", tenant, id_))
        await asyncio.sleep(0.4)
        return web.json_response({"id": id_, "price": len(id_)})


async def rest_agent(
    llm_base: str,
    rest_url: str,
    question: str,
    *,
    api_key: str,
    token: str = "",
    http: httpx.AsyncClient | None = None,
    llm_http: httpx.AsyncClient | None = None,
) -> list[str]:
    """Runs the model's calls as REST requests, shows it their results as prose; returns
    the bodies as the server sent them. Proxy and CA come from the environment, or with
    the clients given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    own = http is None
    http = http or httpx.AsyncClient(timeout=30)
    client = openai.AsyncOpenAI(base_url=llm_base + "/v1", api_key=api_key, http_client=llm_http)
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    results: list[str] = []
    try:
        for _ in range(4):
            resp = await client.chat.completions.create(
                model="m",
                messages=messages,  # type: ignore[arg-type]
                tools=[function_tool("search"), function_tool("get_item")],  # type: ignore[list-item]
            )
            msg = resp.choices[0].message
            if not msg.tool_calls:
                break
            messages.append(msg.model_dump(exclude_none=True))
            for tc in msg.tool_calls:
                args = json.loads(tc.function.arguments)  # type: ignore[union-attr]
                name = tc.function.name  # type: ignore[union-attr]
                if name == "search":
                    got = await http.get(rest_url + "/v1/search", params=args, headers=headers)
                else:
                    got = await http.get(f"{rest_url}/v1/items/{args['id']}", headers=headers)
                results.append(got.text)
                messages.append(
                    {"role": "tool", "tool_call_id": tc.id, "content": prose(name, got.text)}
                )
    finally:
        await client.close()
        if own:
            await http.aclose()
    return results


async def test_an_argument_is_learned_from_a_rest_tools_own_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await proxy_for_shop(tmp_path, monkeypatch)
    shop = ShopREST()
    async with serve(shop.app) as rest_url, serve(ProseLLM().app) as llm:
        runs = [
            await rest_agent(llm, rest_url, f"find me {w}", api_key="sk-a", token="tok-a")
            for w in WORDS
        ]
    # the agent got exactly what the server returns
    assert [json.loads(r[1])["id"] for r in runs] == [f"tok-a-{w}-0" for w in WORDS]
    counters = (await stats(proxy))["tools"]
    # the id of get_item reaches the model only inside a sentence: learned from the REST
    # server's own JSON, joined to the model's search call, then predicted and served
    item = counters["get_item"]
    assert item["predicted"] + item["chained"] >= 2, counters
    assert item["used"] >= 2, counters
    # once each, early or not, never twice
    assert shop.calls.count(("get_item", "tok-a-", "tok-a-gloves-0")) == 1, shop.calls


async def test_two_clients_calling_rest_tools_at_once_are_never_joined_across(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy: RunningProxy = await proxy_for_shop(tmp_path, monkeypatch)
    shop = ShopREST()
    tenants = {"127.0.0.2": ("sk-a", "tok-a"), "127.0.0.3": ("sk-b", "tok-b")}

    async def agent(local: str, word: str) -> list[str]:
        api_key, token = tenants[local]
        async with bound_client(proxy, local) as http, bound_client(proxy, local) as llm_http:
            return await rest_agent(
                llm,
                rest_url,
                f"find me {word}",
                api_key=api_key,
                token=token,
                http=http,
                llm_http=llm_http,
            )

    async with serve(shop.app) as rest_url, serve(ProseLLM().app) as llm:
        for word in WORDS:  # both tenants ask the same, at the same time
            a, b = await asyncio.gather(agent("127.0.0.2", word), agent("127.0.0.3", word))
            assert json.loads(a[1])["id"] == f"tok-a-{word}-0"
            assert json.loads(b[1])["id"] == f"tok-b-{word}-0"
    counters = (await stats(proxy))["tools"]
    # every item the server looked up, early or not, was the caller's own: no id crossed
    items = [(tenant, arg) for tool, tenant, arg in shop.calls if tool == "get_item"]
    assert len(items) >= len(WORDS) * 2
    assert all(arg.startswith(tenant) for tenant, arg in items), items
    # each client's calls joined its own requests: the ids, seen only in prose, were learned
    item = counters["get_item"]
    assert item["predicted"] + item["chained"] >= 4, counters
    assert item["used"] >= 4, counters
