"""The live core (addon, speculator, responder, caller) without sockets.

The agent's traffic goes through the real `PrefireAddon` hooks as mitmproxy test flows
(`mitmproxy.test.tflow`, inside `taddons.context`); prefire's own calls go through an
in-memory transport (the way httpx's MockTransport swaps a client's network) to a fake
MCP server that the agent's requests reach too, so both sides see one server. Time is a
clock the test moves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from prefire.patterns.events import Event, SessionKey
from prefire.patterns.events import ToolCall as ToolCallEvent
from prefire.patterns.model import PatternModel
from prefire.proxy.accounting import Accounting, ToolCounters
from prefire.proxy.addon import AddonConfig, PrefireAddon
from prefire.proxy.cache import Failure, Result
from prefire.proxy.speculator import Speculator
from prefire.rules.files import RulesWatcher

MCP_URL = "http://tools.test/mcp"
LLM_URL = "http://llm.test/v1/chat/completions"
PROTOCOL = "2025-06-18"
INIT = {
    "protocolVersion": PROTOCOL,
    "capabilities": {},
    "clientInfo": {"name": "agent", "version": "1"},
}


class Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    """One request prefire made."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


# the messages so far -> the calls the LLM emits next (name, arguments); none: it answers
Think = Callable[[list[dict[str, Any]]], list[tuple[str, dict[str, Any]]]]
Handler = Callable[[str, str, dict[str, str], bytes | None], Awaitable[Result | Failure]]


class MemoryTransport:
    """A Transport (proxy/transport.py) that hands each request to `handler` in memory."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent: list[Sent] = []
        self.closed = False

    async def send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> Result | Failure:
        self.sent.append(Sent(method, url, dict(headers), json.loads(data) if data else None))
        return await self.handler(method, url, headers, data)

    async def close(self) -> None:
        self.closed = True


@dataclass
class ToolCall:
    """A tools/call the fake server ran."""

    tool: str
    args: dict[str, Any]
    session: str  # the Mcp-Session-Id it came in
    rpc_id: Any


@dataclass
class FakeMcp:
    """A streamable-HTTP MCP server in memory: sessions, tools/list, tools/call.

    `tools`: name -> (arguments -> result value); `gate`: tools/call waits for it;
    `fail`: tools/call answers with this HTTP status instead; `tool_error`: the tool
    raises (a JSON-RPC result with isError)."""

    tools: dict[str, Callable[[dict[str, Any]], Any]]
    read_only: set[str] = field(default_factory=set)
    gate: asyncio.Event | None = None
    fail: int = 0
    tool_error: bool = False
    calls: list[ToolCall] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def handle(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> Result | Failure:
        named = {k.lower(): v for k, v in headers.items()}
        if method == "DELETE":
            return _result(200, b"", {})
        msg = json.loads(data or b"{}")
        rpc, session = msg.get("id"), named.get("mcp-session-id", "")
        if msg.get("method") == "initialize":
            sid = f"srv-{next(self._ids)}"
            result = {"protocolVersion": PROTOCOL, "capabilities": {}, "serverInfo": {"name": "t"}}
            return _result(200, _rpc(rpc, result), {"mcp-session-id": sid})
        if rpc is None:  # a notification
            return _result(202, b"", {})
        if msg["method"] == "tools/list":
            return _result(200, _rpc(rpc, {"tools": [self._spec(t) for t in self.tools]}), {})
        params = msg["params"]
        self.calls.append(ToolCall(params["name"], params["arguments"], session, rpc))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            return _result(self.fail, b'{"error": "down"}', {})
        if self.tool_error:
            content = [{"type": "text", "text": "upstream hiccup"}]
            return _result(200, _rpc(rpc, {"content": content, "isError": True}), {})
        value = self.tools[params["name"]](params["arguments"])
        content = [{"type": "text", "text": json.dumps(value)}]
        echo = {"mcp-session-id": session} if session else {}  # as servers answer in a session
        return _result(200, _rpc(rpc, {"content": content, "isError": False}), echo)

    def _spec(self, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": name, "inputSchema": {"type": "object"}}
        if name in self.read_only:
            spec["annotations"] = {"readOnlyHint": True}
        return spec

    def agents_calls(self) -> list[ToolCall]:
        return [c for c in self.calls if not str(c.rpc_id).startswith("prefire-")]

    def early_calls(self) -> list[ToolCall]:
        return [c for c in self.calls if str(c.rpc_id).startswith("prefire-")]


@dataclass
class FakeRest:
    """A REST tool server in memory: GET /weather?city=X answers the weather there."""

    calls: list[str] = field(default_factory=list)  # the cities asked, in order

    async def handle(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> Result | Failure:
        city = parse_qs(urlsplit(url).query)["city"][0]
        self.calls.append(city)
        return _result(200, json.dumps({"city": city, "temp_c": 21}).encode(), {})


def _rpc(rpc: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rpc, "result": result}).encode()


def _result(status: int, body: bytes, headers: dict[str, str]) -> Result:
    raw = [(b"content-type", b"application/json")] + [
        (k.encode(), v.encode()) for k, v in headers.items()
    ]
    return Result(status, raw, body, "application/json", 0.05)


@dataclass
class Core:
    """The addon and its speculator, wired as proxy/app.py wires them."""

    addon: PrefireAddon
    speculator: Speculator
    model: PatternModel
    server: FakeMcp
    rest: FakeRest
    transport: MemoryTransport
    clock: Clock
    events: list[Event]
    rpc: Any = field(default_factory=lambda: itertools.count(1))

    def counters(self, tool: str) -> ToolCounters:
        return self.speculator.accounting.tool(tool)

    def conversation(self) -> SessionKey:
        """The LLM conversation's session (of its latest tool call)."""
        return next(e.session for e in reversed(self.events) if isinstance(e, ToolCallEvent))

    @property
    def skipped(self) -> dict[str, int]:
        return dict(self.speculator.accounting.skipped)

    async def flow(
        self,
        request: http.Request,
        upstream: Callable[[http.Request], Awaitable[http.Response]],
    ) -> http.HTTPFlow:
        """One exchange through the addon's hooks; `upstream` answers what is not served."""
        f = tflow.tflow(req=request)
        self.addon.requestheaders(f)
        await self.addon.request(f)
        if f.response is None:
            f.response = await upstream(f.request)
        self.addon.responseheaders(f)
        self.addon.response(f)
        return f

    async def mcp(
        self, method: str, params: dict[str, Any], session: str = "", token: str = "tok"
    ) -> http.HTTPFlow:
        """The agent's own JSON-RPC request to the MCP server."""
        rpc = next(self.rpc)
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "authorization": f"Bearer {token}",
            "mcp-protocol-version": PROTOCOL,
        }
        if session:
            headers["mcp-session-id"] = session
        body = {"jsonrpc": "2.0", "id": rpc, "method": method, "params": params}
        request = http.Request.make("POST", MCP_URL, json.dumps(body).encode(), headers)
        return await self.flow(request, self._server)

    async def _server(self, request: http.Request) -> http.Response:
        got = await self.server.handle(
            request.method, request.url, dict(request.headers), request.raw_content
        )
        assert isinstance(got, Result)
        return http.Response.make(got.status, got.body, got.headers)

    async def open_session(self, token: str = "tok") -> str:
        """The agent opens an MCP session and lists the tools; its session id."""
        opened = await self.mcp("initialize", INIT, token=token)
        assert opened.response is not None
        sid = opened.response.headers["mcp-session-id"]
        await self.mcp("tools/list", {}, session=sid, token=token)
        return sid

    async def get(self, url: str, token: str = "rest-key") -> http.HTTPFlow:
        """The agent's own REST request."""
        request = http.Request.make("GET", url, b"", {"authorization": f"Bearer {token}"})

        async def upstream(r: http.Request) -> http.Response:
            got = await self.rest.handle(r.method, r.url, dict(r.headers), None)
            assert isinstance(got, Result)
            return http.Response.make(got.status, got.body, got.headers)

        return await self.flow(request, upstream)

    async def close_session(self, session: str, token: str = "tok") -> None:
        """The agent ends its MCP session (DELETE)."""
        headers = {"authorization": f"Bearer {token}", "mcp-session-id": session}
        request = http.Request.make("DELETE", MCP_URL, b"", headers)
        await self.flow(request, self._server)

    async def call(
        self, tool: str, args: dict[str, Any], session: str, token: str = "tok"
    ) -> http.HTTPFlow:
        return await self.mcp("tools/call", {"name": tool, "arguments": args}, session, token)

    async def llm(
        self, messages: list[dict[str, Any]], calls: list[tuple[str, str, dict[str, Any]]]
    ) -> http.HTTPFlow:
        """The agent asks the LLM (`messages` so far); it answers with `calls` (id, name,
        arguments), or with text when there are none."""
        body = {"model": "m", "messages": messages, "tools": [_fn(t) for t in self.server.tools]}
        headers = {"content-type": "application/json", "authorization": "Bearer sk"}
        request = http.Request.make("POST", LLM_URL, json.dumps(body).encode(), headers)
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else "done"}
        if calls:
            message["tool_calls"] = tool_calls(calls)
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "m",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
            ],
        }

        async def llm(_: http.Request) -> http.Response:
            await self.settle()  # the LLM thinks: early calls run meanwhile
            return http.Response.make(
                200, json.dumps(answer).encode(), {"content-type": "application/json"}
            )

        return await self.flow(request, llm)

    async def task(self, question: str, think: Think, session: str) -> list[Any]:
        """An agent's loop: ask the LLM (whose answers `think` gives), run the calls it
        emits through the addon in MCP session `session`, until it answers in text.
        Returns the values the tools gave the agent."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        got: list[Any] = []
        for turn in range(10):
            calls = [(f"call_{turn}_{i}", n, a) for i, (n, a) in enumerate(think(messages))]
            await self.llm(messages, calls)
            if not calls:
                return got
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls(calls)})
            for cid, name, args in calls:
                flow = await self.call(name, args, session)
                got.append(tool_value(flow))
                messages.append(
                    {"role": "tool", "tool_call_id": cid, "content": json.dumps(got[-1])}
                )
        raise AssertionError("the agent never finished")

    async def settle(self) -> None:
        """Let every early call in flight finish (none waits on a gate)."""
        for _ in range(20):
            await asyncio.sleep(0)


def tool_calls(calls: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        for cid, name, args in calls
    ]


def tool_value(flow: http.HTTPFlow) -> Any:
    """What the agent's tools/call got back: the tool's value."""
    assert flow.response is not None
    reply = json.loads(flow.response.content or b"")
    return json.loads(reply["result"]["content"][0]["text"])


def _fn(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


RULES = """
rules:
  - match: {tool: ["get_*", "search*", "details", "forecast"]}
    prefire: true
    cost: 0
    ttl: 30
  - match: {tool: "book_*"}
    prefire: false
    invalidates: ["get_*"]
budgets:
  max_concurrent: %(max_concurrent)d
"""


@asynccontextmanager
async def core(
    tmp_path: Path,
    server: FakeMcp,
    rules: str = RULES,
    max_concurrent: int = 8,
    **speculator_kw: Any,
) -> AsyncIterator[Core]:
    path = tmp_path / "rules.yaml"
    path.write_text(rules % {"max_concurrent": max_concurrent} if "%(" in rules else rules)
    clock = Clock()
    model = PatternModel()
    addon = PrefireAddon(AddonConfig())
    rest = FakeRest()

    async def route(
        method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> Result | Failure:
        handler = server.handle if url.startswith(MCP_URL) else rest.handle
        return await handler(method, url, headers, data)

    transport = MemoryTransport(route)
    speculator = Speculator(
        model,
        RulesWatcher(path),
        addon.observer,
        Accounting(),
        transport=transport,
        clock=clock,
        **speculator_kw,
    )

    events: list[Event] = []

    def learn(event: Event) -> None:
        events.append(event)
        model.observe(event)

    addon.listeners += [learn, speculator]
    addon.on_call_closed = speculator.eager
    addon.responder = speculator.responder
    with taddons.context(addon):
        try:
            yield Core(addon, speculator, model, server, rest, transport, clock, events)
        finally:
            await speculator.close()
