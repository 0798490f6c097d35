"""Security: planted secrets never reach captures or logs, the CA key stays private and out
of captures, and tenants never get each other's results or learned arguments, even racing
for the same tool with the same arguments."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
from pathlib import Path
from typing import Any

import httpcore
import httpx
import openai
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

from prefire.patterns.events import (
    LLMRequest,
    SessionKey,
    ToolCall,
    ToolResult,
    ToolsOffered,
    ToolSpec,
    UserMessage,
)
from prefire.patterns.model import PatternModel
from prefire.proxy.cli import _loopback
from tests.agent_script import function_tool
from tests.conftest import log_lines, start_proxy, stop_proxy
from tests.fuzzing import CASES
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import ScriptedLLM
from tests.test_e2e_speculation import stats
from tests.upstreams import LLMUpstream, serve


def secret(name: str) -> str:
    return f"s3cr3t-{name}-9q7w"


SECRET_HEADERS = [
    "Authorization",
    "X-Api-Key",
    "Api-Key",
    "X-Goog-Api-Key",
    "Cookie",
    "X-Auth-Token",
    "Private-Token",
    "Ocp-Apim-Subscription-Key",
]
SECRET_QUERY = ["key", "api_key", "access_token", "sig"]


class Echo:
    """Answers like the LLM APIs, and sets secrets in its response headers."""

    def __init__(self) -> None:
        self.llm = LLMUpstream()
        self.app = self.llm.app
        self.app.router.add_get("/rest/{tail:.*}", self.rest)

    async def rest(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": True},
            headers={
                "Set-Cookie": f"session={secret('set-cookie')}; HttpOnly",
                "X-Auth-Token": secret("response-token"),
                "Mcp-Session-Id": secret("mcp-session"),
            },
        )


async def test_no_planted_secret_reaches_a_capture_or_a_log(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    proxy = await start_proxy(tmp_path, "--max-body", "64k", log=log)
    headers = {h: secret(h.lower()) for h in SECRET_HEADERS}
    query = "&".join(f"{k}={secret('q-' + k)}" for k in SECRET_QUERY)
    up = Echo()
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with (
            serve(up.app) as base,
            httpx.AsyncClient(proxy=proxy.url, trust_env=False) as via,
        ):
            for path, body in [
                ("/v1/chat/completions", chat),
                ("/v1/chat/completions", {**chat, "stream": True}),
                ("/v1beta/models/g:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}),
                # too large: logged as skipped, with its URL
                ("/v1/chat/completions", {**chat, "pad": "x" * (128 << 10)}),
            ]:
                r = await via.post(f"{base}{path}?{query}", json=body, headers=headers)
                assert r.status_code == 200
            r = await via.get(f"{base}/rest/item?{query}", headers=headers)
            assert r.json() == {"ok": True}
    finally:
        assert await stop_proxy(proxy) == 0
    stored = proxy.capture_bytes()
    logged = log.read_bytes()
    planted = [*headers.values(), *(secret("q-" + k) for k in SECRET_QUERY)]
    planted += [secret("set-cookie"), secret("response-token"), secret("mcp-session")]
    for value in planted:
        assert value.encode() not in stored, value
        assert value.encode() not in logged, value
    assert b"REDACTED" in stored
    assert any(r.get("event") == "observe.skipped" for r in log_lines(log))
    # a session id is replaced by a stand-in that still tells sessions apart
    flows = proxy.flows()
    assert flows[-1].response.headers["mcp-session-id"].startswith("sha256:")


async def test_the_ca_key_is_private_and_never_captured(tmp_path: Path, self_signed) -> None:
    proxy = await start_proxy(tmp_path)
    up = LLMUpstream()
    try:
        async with serve(up.app, ssl_context=self_signed) as base:
            trust = ssl.create_default_context(cafile=str(proxy.ca_bundle))
            async with httpx.AsyncClient(proxy=proxy.url, verify=trust) as via:
                r = await via.post(
                    base + "/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert r.status_code == 200
    finally:
        assert await stop_proxy(proxy) == 0
    confdir = proxy.state_dir / "mitmproxy"
    assert proxy.state_dir.stat().st_mode & 0o777 == 0o700
    for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12"):
        assert (confdir / name).stat().st_mode & 0o777 == 0o600, name
    pem = (confdir / "mitmproxy-ca.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    stored = proxy.capture_bytes() + (proxy.state_dir / "ca-bundle.pem").read_bytes()
    assert proxy.flows()  # the TLS flow was captured...
    assert b"PRIVATE KEY" not in stored  # ...without the key, in any encoding
    assert der not in stored and base64.b64encode(der)[:64] not in stored
    body = re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----(.*?)-----END", pem, re.DOTALL)
    assert body is not None
    key_lines = [line for line in body.group(1).split(b"\n") if len(line) == 64]
    assert key_lines and not any(line in stored for line in key_lines)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_only_loopback_listens_without_proxy_auth(host: str, loopback: bool) -> None:
    assert _loopback(host) is loopback


# -- scopes ---------------------------------------------------------------------------------


def tenant_server(delay_s: float = 0.2) -> FastMCP:
    """get_weather answers with the token of the tenant that called it."""
    server = FastMCP("weather")
    server.calls = []  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def get_weather(city: str, ctx: Context) -> dict:
        """Current weather for a city."""
        request = ctx.request_context.request
        token = request.headers.get("authorization", "") if request is not None else ""
        server.calls.append((city, token))  # type: ignore[attr-defined]
        await asyncio.sleep(delay_s)
        return {"city": city, "tenant": token}

    return server


class _BoundBackend(httpcore.AsyncNetworkBackend):
    """Connects from one local address (httpcore drops local_address for proxies)."""

    def __init__(self, local_address: str) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._local = local_address

    async def connect_tcp(
        self,
        host,
        port,
        timeout=None,  # noqa: ASYNC109 - httpcore's interface
        local_address=None,
        socket_options=None,
    ):
        return await self._backend.connect_tcp(host, port, timeout, self._local, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def transport(proxy_url: str, local_address: str) -> httpx.AsyncHTTPTransport:
    """Through the proxy, from this loopback address (a second machine, as the proxy sees)."""
    t = httpx.AsyncHTTPTransport()
    t._pool = httpcore.AsyncHTTPProxy(
        proxy_url=httpcore.URL(proxy_url), network_backend=_BoundBackend(local_address)
    )
    return t


async def tenant_step(
    llm: str, mcp_url: str, proxy_url: str, local: str, api_key: str, token: str
) -> Any:
    """One agent step of one tenant: list tools, ask the LLM, run its call over MCP."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(transport=transport(proxy_url, local), headers=headers) as http,
        streamable_http_client(mcp_url, http_client=http) as (r, w, _),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        llm_http = httpx.AsyncClient(transport=transport(proxy_url, local))
        client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key=api_key, http_client=llm_http)
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "weather in Rome?"}],
            tools=[function_tool(t.name) for t in tools.tools],
            stream=True,
        )
        args = ""
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or []:
                args += tc.function.arguments or ""
        await client.close()
        result = await session.call_tool("get_weather", json.loads(args))
        return json.loads(result.content[0].text)


async def test_tenants_racing_for_the_same_call_never_get_each_others_result(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {tool: get_weather}\n    prefire: true\n    ttl: 30\n")
    proxy = await start_proxy(tmp_path, "--rules", str(rules), log=tmp_path / "proxy.log")
    server = tenant_server()
    tenants = [("127.0.0.1", "sk-a", "tok-a"), ("127.0.0.2", "sk-b", "tok-b")]
    rounds, cross = int(os.environ.get("PREFIRE_RACE_ROUNDS", "4")), 0
    script = [("get_weather", {"city": "Rome"})]
    async with serve_mcp(server) as mcp_url, serve(ScriptedLLM(script, 0.3).app) as llm:
        for _ in range(rounds):
            got = await asyncio.gather(*(tenant_step(llm, mcp_url, proxy.url, *t) for t in tenants))
            for (_, _, token), result in zip(tenants, got, strict=True):
                assert result["city"] == "Rome"
                cross += result["tenant"] != f"Bearer {token}"
                CASES["scope.race"] += 1
                CASES["scope.cross"] += result["tenant"] != f"Bearer {token}"
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert cross == 0
    # speculation did run for both tenants, each call served from its own early call
    assert counters["used"] == rounds * len(tenants), counters
    assert len(server.calls) == rounds * len(tenants)  # once per tenant and round


class CookieWeather:
    """GET /weather?city=X answers with the session cookie it was sent."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/weather", self.weather)

    async def weather(self, request: web.Request) -> web.Response:
        who = request.cookies.get("sid", "")
        self.calls.append(who)
        await asyncio.sleep(0.1)
        return web.json_response({"city": request.query["city"], "account": who})


async def test_tenants_told_apart_by_cookies_never_share_a_result(tmp_path: Path) -> None:
    tool = CookieWeather()
    async with serve(tool.app) as base:
        rules = tmp_path / "rules.yaml"
        rules.write_text(
            "rules:\n  - match: {tool: get_weather}\n    prefire: true\n"
            f'    rest: {{method: GET, url: "{base}/weather?city={{city}}"}}\n'
        )
        proxy = await start_proxy(tmp_path, "--rules", str(rules))
        script = [("get_weather", {"city": "Rome"})]
        async with serve(ScriptedLLM(script, 0.2).app) as llm:
            a = httpx.AsyncClient(transport=transport(proxy.url, "127.0.0.1"))
            b = httpx.AsyncClient(transport=transport(proxy.url, "127.0.0.2"))
            async with a, b:
                # tenant A's agent has used the weather API, with its cookie...
                await a.get(base + "/weather", params={"city": "Oslo"}, headers={"Cookie": "sid=A"})
                # ...its LLM asks for Rome: fetched early, with A's cookie, but A never asks
                client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key="sk", http_client=a)
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "x"}], stream=True
                )
                async for _ in stream:
                    pass
                await asyncio.sleep(0.3)
                # tenant B asks for the same URL, with its own cookie and no other credential
                got = (
                    await b.get(
                        base + "/weather", params={"city": "Rome"}, headers={"Cookie": "sid=B"}
                    )
                ).json()
    assert got == {"city": "Rome", "account": "B"}
    assert tool.calls == ["A", "A", "B"]  # A's own, A's early call, B's own
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["fired"] == 1 and counters["used"] == 0


async def test_two_credentials_from_one_client_fire_nothing(tmp_path: Path) -> None:
    """prefire never guesses whose credentials a speculative call should carry."""
    tool = CookieWeather()
    async with serve(tool.app) as base:
        rules = tmp_path / "rules.yaml"
        rules.write_text(
            "rules:\n  - match: {tool: get_weather}\n    prefire: true\n"
            f'    rest: {{method: GET, url: "{base}/weather?city={{city}}"}}\n'
        )
        proxy = await start_proxy(tmp_path, "--rules", str(rules))
        script = [("get_weather", {"city": "Rome"})]
        async with (
            serve(ScriptedLLM(script, 0.2).app) as llm,
            httpx.AsyncClient(transport=transport(proxy.url, "127.0.0.1")) as c,
        ):
            for sid in ("A", "B"):
                await c.get(
                    base + "/weather", params={"city": "Oslo"}, headers={"Cookie": f"sid={sid}"}
                )
            client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key="sk", http_client=c)
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], stream=True
            )
            async for _ in stream:
                pass
            await asyncio.sleep(0.3)
    assert tool.calls == ["A", "B"]
    assert (await stats(proxy))["totals"]["fired"] == 0


def test_a_tenant_cannot_teach_another_its_arguments() -> None:
    """Patterns are learned per scope: tenant A's sessions, however many, say nothing
    about what tenant B's agent will call, nor with which arguments."""
    model = PatternModel()
    tools = (ToolSpec("search"), ToolSpec("get_item"))

    def session(scope: str, n: int, item: str) -> None:
        key = SessionKey(scope, f"c{n}")
        t = float(n * 10)
        for event in (
            ToolsOffered(session=key, t=t, tools=tools, api="openai_chat"),
            UserMessage(session=key, t=t, text="find shoes"),
            LLMRequest(session=key, t=t, api="openai_chat"),
            ToolCall(session=key, t=t + 1, call_id="1", name="search", arguments={"q": "shoes"}),
            ToolResult(session=key, t=t + 2, call_id="1", content={"ids": ["x1", "x2"]}),
            LLMRequest(session=key, t=t + 2, api="openai_chat"),
            ToolCall(session=key, t=t + 3, call_id="2", name="get_item", arguments={"id": item}),
            ToolResult(session=key, t=t + 4, call_id="2", content={"ok": True}),
            LLMRequest(session=key, t=t + 4, api="openai_chat"),
        ):
            model.observe(event)
        model.end_session(key)

    for n in range(30):  # A, the attacker: always the same constant, planted
        session("scope-a", n, "PLANTED")
    victim = SessionKey("scope-b", "v")
    for event in (
        ToolsOffered(session=victim, t=0, tools=tools, api="openai_chat"),
        UserMessage(session=victim, t=0, text="find shoes"),
        LLMRequest(session=victim, t=0, api="openai_chat"),
        ToolCall(session=victim, t=1, call_id="1", name="search", arguments={"q": "shoes"}),
        ToolResult(session=victim, t=2, call_id="1", content={"ids": ["x1", "x2"]}),
        LLMRequest(session=victim, t=2, api="openai_chat"),
    ):
        model.observe(event)
    # B's scope has learned only from its own first call (one-shot): nothing A taught,
    # neither A's next tool nor A's planted argument
    assert all(c.tool == "search" for c in model.predict(victim))
    # and once B has its own history, its predictions come from it alone
    for n in range(5):
        session("scope-b", 100 + n, "x1")
    model.observe(ToolsOffered(session=victim, t=3, tools=tools, api="openai_chat"))
    assert all("PLANTED" not in json.dumps(c.arguments) for c in model.predict(victim))
