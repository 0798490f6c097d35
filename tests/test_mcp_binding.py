"""How prefire reaches an MCP tool itself: names resolved for a client, the protocol the
agent speaks (2026-07-28 envelope and headers, or a session of prefire's own opened with
the agent's initialize params), never a session an agent task opened."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.server.fastmcp import Context, FastMCP

from prefire.patterns.canonical import canonical
from prefire.patterns.events import SessionKey, ToolSpec
from prefire.patterns.model import PatternModel
from prefire.proxy.accounting import Accounting
from prefire.proxy.bindings import Bindings, NoTarget, Target
from prefire.proxy.cache import Failure, Result
from prefire.proxy.calljoin import Joined, ModelCall, ServerCall
from prefire.proxy.speculator import Speculator
from prefire.rules.files import RulesWatcher
from prefire.wire.observer import Observer
from prefire.wire.providers import mcp
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import mcp_session

ROOT = Path(__file__).resolve().parents[1]
MCP2_PYTHON = ROOT / ".venv-agents" / "mcp2" / "bin" / "python"
URL = "http://127.0.0.1:9/mcp"
CONV = SessionKey("s", "conv-a")
# what mcp 2.3.0's client sends with every request at protocol 2026-07-28 (captured)
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "0.1.0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
MODERN_HEADERS = [
    ("accept", "application/json, text/event-stream"),
    ("authorization", "Bearer tok"),
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/list"),
]
INIT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "agent", "version": "9"},
}


def spec(name: str, **parameters: Any) -> ToolSpec:
    return ToolSpec(name, parameters=parameters or None, annotations={"readOnlyHint": True})


# -- the parts of a request a client derives from its body -------------------------------


def test_routing_headers_mirror_the_body() -> None:
    params = {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert mcp.routing_headers("tools/call", params) == {
        "mcp-method": "tools/call",
        "mcp-name": "get_weather",
    }
    assert mcp.routing_headers("tools/list", {}) == {"mcp-method": "tools/list"}
    assert mcp.routing_headers("resources/read", {"uri": "file:///a b"})["mcp-name"] == (
        "file:///a b"
    )


def test_header_values_that_are_not_plain_ascii_are_base64() -> None:
    assert mcp.encode_header_value("get_weather") == "get_weather"
    for odd in ("météo", " padded", "=?base64?abc?=", "a\r\nb"):
        encoded = mcp.encode_header_value(odd)
        assert encoded.startswith("=?base64?") and encoded.endswith("?=")
        assert base64.b64decode(encoded[9:-2]).decode() == odd


def test_param_headers_follow_x_mcp_header_in_the_input_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"dry": {"x-mcp-header": "Dry-Run"}}},
            "city": {"type": "string"},
        },
    }
    params = {"name": "t", "arguments": {"region": "eu-west", "opts": {"dry": True}, "city": "X"}}
    headers = mcp.routing_headers("tools/call", params, schema)
    assert headers["mcp-param-region"] == "eu-west"
    assert headers["mcp-param-dry-run"] == "true"
    assert not any("city" in h for h in headers)


def test_the_envelope_is_the_protocol_part_of_meta() -> None:
    params = {"_meta": {**ENVELOPE, "progressToken": 3}, "name": "x"}
    assert mcp.envelope(params) == ENVELOPE
    assert mcp.envelope({"name": "x"}) == {}


# -- bindings: what the agent's traffic shows ---------------------------------------------


def test_a_server_keeps_how_the_agent_speaks_but_never_its_session() -> None:
    b = Bindings()
    request = mcp.McpRequest(1, "tools/list", {"_meta": ENVELOPE})
    server = b.observe_mcp("c", "s", URL, [*MODERN_HEADERS, ("mcp-session-id", "A")], [request])
    assert "mcp-session-id" not in server.headers and "mcp-method" not in server.headers
    assert server.headers["authorization"] == "Bearer tok"
    assert server.sessionless and server.protocol == "2026-07-28" and server.mirrors
    assert server.envelope == ENVELOPE
    legacy = b.observe_mcp("c", "s2", URL, [], [mcp.McpRequest(0, "initialize", INIT)])
    assert legacy.initialize == INIT and not legacy.sessionless


def test_a_prefixed_model_name_resolves_to_the_servers_tool() -> None:
    b = Bindings()
    server = b.observe_mcp("c", "s", URL, [])
    b.observe_tools("c", server, [spec("get_weather"), spec("book_table")])
    for name in ("get_weather", "mcp__weather__get_weather", "weather.get_weather"):
        got = b.resolve("c", name)
        assert isinstance(got, Target) and got.tool == "get_weather" and got.server is server
    missing = b.resolve("c", "mcp__weather__get_forecast")
    assert isinstance(missing, NoTarget) and missing.reason == "no_binding"
    assert missing.detail["offered"] == ["book_table", "get_weather"]
    assert b.resolve("other-client", "get_weather").reason == "no_binding"  # type: ignore[union-attr]


def test_a_server_the_client_has_not_used_for_ten_minutes_binds_nothing() -> None:
    now = [1000.0]  # the bindings' clock, moved by the test: no waiting
    b = Bindings(clock=lambda: now[0])
    server = b.observe_mcp("c", "s", URL, [])
    b.observe_tools("c", server, [spec("get_weather")])
    now[0] += 599
    assert isinstance(b.resolve("c", "get_weather"), Target)
    now[0] += 2
    gone = b.resolve("c", "get_weather")
    assert isinstance(gone, NoTarget) and gone.reason == "no_binding"


def test_two_fitting_tools_or_two_servers_are_ambiguous() -> None:
    b = Bindings()
    one = b.observe_mcp("c", "s", URL, [])
    b.observe_tools("c", one, [spec("search"), spec("docs__search")])
    got = b.resolve("c", "mcp__docs__search")  # fits "search" and "docs__search"
    assert isinstance(got, NoTarget) and got.reason == "ambiguous_name"
    other = b.observe_mcp("c", "s", "http://127.0.0.1:10/mcp", [])
    b.observe_tools("c", other, [spec("get_weather")])
    b.observe_tools("c", one, [spec("get_weather")])
    got = b.resolve("c", "get_weather")
    assert isinstance(got, NoTarget) and got.reason == "ambiguous_server"


def test_a_joined_renaming_is_learned_and_the_session_known_for_its_conversation() -> None:
    b = Bindings()
    server = b.observe_mcp("c", "s", URL, [])
    b.observe_tools("c", server, [spec("get_weather")])
    assert isinstance(b.resolve("c", "WeatherNow"), NoTarget)
    model = ModelCall("c", CONV, "call-1", "WeatherNow", canonical({"city": "Oslo"}), 1.0)
    call = ServerCall("c", "s", URL, "get_weather", canonical({"city": "Oslo"}), "S1", 7, 2.0)
    b.learn(Joined(model, call, certain=True))
    got = b.resolve("c", "WeatherNow")
    assert isinstance(got, Target) and got.tool == "get_weather"
    assert b.agent_session(CONV, server) == "S1"
    b.session_closed("s", URL, "S1")
    assert b.agent_session(CONV, server) is None  # ended: nothing may ride on it


def test_an_uncertain_join_says_nothing_about_the_session() -> None:
    b = Bindings()
    server = b.observe_mcp("c", "s", URL, [])
    model = ModelCall("c", CONV, "call-1", "get_weather", canonical({}), 1.0)
    call = ServerCall("c", "s", URL, "get_weather", canonical({}), "S1", 7, 2.0)
    b.learn(Joined(model, call, certain=False))
    assert b.agent_session(CONV, server) is None


# -- prefire's own requests, against real servers ------------------------------------------


def speculator() -> Speculator:
    return Speculator(PatternModel(), RulesWatcher(None), Observer(), Accounting())


def weather_server() -> FastMCP:
    server = FastMCP("weather")
    server.calls = []  # type: ignore[attr-defined]

    @server.tool()
    def get_weather(city: str, ctx: Context) -> dict:
        request = ctx.request_context.request
        session = request.headers.get("mcp-session-id") if request is not None else None
        server.calls.append((city, session, str(ctx.request_id)))  # type: ignore[attr-defined]
        return {"city": city}

    return server


async def agent_server_view(spec_: Speculator, url: str, token: str = "tok") -> Any:
    """What prefire learns about the server from an agent's session (mcp 1.x client)."""
    async with mcp_session(url, token) as session:
        await session.list_tools()
    headers = [
        ("authorization", f"Bearer {token}"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ]
    b = spec_.bindings
    b.observe_mcp("c", "s", url, headers, [mcp.McpRequest(0, "initialize", INIT)])
    return b.observe_mcp("c", "s", url, headers, [mcp.McpRequest(1, "tools/list", {})])


async def test_early_calls_run_in_a_session_of_prefires_own_reused_and_closed() -> None:
    server = weather_server()
    s = speculator()
    async with serve_mcp(server) as url:
        view = await agent_server_view(s, url)
        first = await s.caller.mcp.call(view, "get_weather", {"city": "Oslo"}, "prefire-x-1")
        second = await s.caller.mcp.call(view, "get_weather", {"city": "Rome"}, "prefire-x-2")
        assert isinstance(first, Result) and isinstance(second, Result)
        assert mcp.call_result(first.reply)[0] == {"city": "Oslo"}
        (_, ours, rid), (_, again, _) = server.calls
        assert ours and ours == again and rid == "prefire-x-1"  # one session, reused
        await s.close()
        # closed: the server no longer knows it
        headers = {**view.headers, "mcp-session-id": ours, "content-type": "application/json"}
        closed = await s.caller.send("POST", url, mcp.request_body(1, "tools/list", {}), headers)
        assert isinstance(closed, Result) and closed.status == 404


async def test_an_expired_session_is_opened_again_once() -> None:
    server = weather_server()
    s = speculator()
    async with serve_mcp(server) as url:
        view = await agent_server_view(s, url)
        assert isinstance(
            await s.caller.mcp.call(view, "get_weather", {"city": "A"}, "prefire-1"), Result
        )
        ours = server.calls[0][1]
        # the server forgets it (as an idle timeout would)
        await s.caller.send(
            "DELETE", url, None, {"authorization": "Bearer tok", "mcp-session-id": ours}
        )
        got = await s.caller.mcp.call(view, "get_weather", {"city": "B"}, "prefire-2")
        assert isinstance(got, Result) and mcp.call_result(got.reply)[0] == {"city": "B"}
        assert server.calls[1][1] not in (None, ours)
        await s.close()


async def test_no_initialize_seen_means_no_session_and_a_reason() -> None:
    s = speculator()
    view = s.bindings.observe_mcp("c", "s", URL, [], [mcp.McpRequest(1, "tools/list", {})])
    got = await s.caller.mcp.call(view, "get_weather", {"city": "A"}, "prefire-1")
    assert got == Failure("no_initialize_seen")


async def test_session_agent_runs_in_the_given_session_only() -> None:
    server = weather_server()
    s = speculator()
    async with serve_mcp(server) as url:
        view = await agent_server_view(s, url)
        async with mcp_session(url, "tok") as session:
            await session.call_tool("get_weather", {"city": "own"})
            agent_sid = server.calls[0][1]
            got = await s.caller.mcp.call(
                view, "get_weather", {"city": "X"}, "prefire-1", agent_sid
            )
        assert isinstance(got, Result)
        assert server.calls[1][1] == agent_sid
        await s.close()


@asynccontextmanager
async def tool_server(python: Path, log: Path) -> AsyncIterator[str]:
    """bench/agents/tool_server.py (the agents' recording MCP server) in `python`'s venv."""
    out = log.with_suffix(".out")
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            str(python),
            "-m",
            "bench.agents.tool_server",
            "--log",
            str(log),
            "--latency-scale",
            "0",
            cwd=ROOT,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        for _ in range(300):
            line = next(
                (x for x in out.read_text().splitlines() if x.startswith("tool server listening")),
                None,
            )
            if line or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert line, out.read_text()
        yield line.rsplit(" ", 1)[1]
    finally:
        proc.terminate()
        await proc.wait()


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line]


@pytest.mark.skipif(
    not MCP2_PYTHON.exists(),
    reason=".venv-agents/mcp2 is missing (bash bench/agents/setup.sh mcp2 makes it)",
)
async def test_an_mcp2_server_runs_an_early_call_with_the_agents_envelope(tmp_path: Path) -> None:
    log = tmp_path / "tools.jsonl"
    s = speculator()
    async with tool_server(MCP2_PYTHON, log) as url:
        request = mcp.McpRequest(1, "tools/list", {"_meta": ENVELOPE})
        view = s.bindings.observe_mcp("c", "s", url, MODERN_HEADERS, [request])
        got = await s.caller.mcp.call(view, "search_venues", {"query": "lake"}, "prefire-1")
        # without the envelope and headers an mcp 2.x server refuses the call
        bare = await s.caller.send(
            "POST",
            url,
            mcp.request_body(2, "tools/call", {"name": "get_venue", "arguments": {}}),
            {"content-type": "application/json", "accept": "application/json, text/event-stream"},
        )
        await s.close()
    assert isinstance(got, Result) and got.status == 200 and got.reply.get("isError") is False
    (early,) = [r for r in records(log) if r.get("rpc_id") == "prefire-1"]
    assert early["protocol"] == "2026-07-28" and not early["session"]
    assert early["mcp_method"] == "tools/call" and early["mcp_name"] == "search_venues"
    assert set(early["meta_keys"]) == set(ENVELOPE)
    assert isinstance(bare, Result) and bare.status >= 400


async def test_an_mcp1_server_runs_early_calls_in_prefires_own_session(tmp_path: Path) -> None:
    log = tmp_path / "tools.jsonl"
    s = speculator()
    async with tool_server(Path(sys.executable), log) as url:
        view = s.bindings.observe_mcp(
            "c",
            "s",
            url,
            [("accept", "application/json, text/event-stream")],
            [mcp.McpRequest(0, "initialize", INIT)],
        )
        for n in (1, 2):
            got = await s.caller.mcp.call(view, "search_docs", {"query": f"q{n}"}, f"prefire-{n}")
            assert isinstance(got, Result) and got.reply.get("isError") is False
        await s.close()
    rec = records(log)
    (opened,) = [r for r in rec if r.get("method") == "initialize"]
    ours = opened["new_session"]
    calls = [r for r in rec if r.get("method") == "tools/call"]
    assert [r["session"] for r in calls] == [ours, ours]
    assert all(r["protocol"] == "2025-06-18" for r in calls)
    assert [r["http"] for r in rec if r["session"] == ours][-1] == "DELETE"
