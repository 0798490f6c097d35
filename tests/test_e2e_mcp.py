"""End-to-end: the mcp SDK's own client talks to a real MCP server through prefire."""

from __future__ import annotations

import pytest

from tests.conftest import RunningProxy
from tests.mcp_server import build_server, serve_mcp
from tests.spec_fixtures import mcp_session


@pytest.mark.parametrize("json_response", [False, True], ids=["sse", "json"])
async def test_mcp_tools_list_and_call_are_captured(
    proxied_env: RunningProxy, json_response: bool
) -> None:
    server = build_server(json_response=json_response)
    async with serve_mcp(server) as url, mcp_session(url, "mcp-secret-1") as session:
        listed = await session.list_tools()
        result = await session.call_tool("get_weather", {"city": "Paris"})
    assert {t.name for t in listed.tools} == {"get_weather", "book_table"}
    assert not result.isError
    assert server.calls == [("get_weather", "Paris")]

    events = proxied_env.events()
    (tools,) = [e for e in events if e["kind"] == "tools"]
    annotations = {t["name"]: t.get("annotations") for t in tools["tools"]}
    assert annotations["get_weather"]["readOnlyHint"] is True
    assert annotations["book_table"]["destructiveHint"] is True
    (exchange,) = [e for e in events if e["kind"] == "tool_exchange"]
    assert exchange["name"] == "get_weather"
    assert exchange["arguments"] == {"city": "Paris"}
    assert exchange["result"] == {"city": "Paris", "temp_c": 21, "sky": "clear"}
    assert exchange["is_error"] is False and exchange["status"] == 200
    assert exchange["session"].split("/")[1].startswith("mcp-")
    assert b"mcp-secret-1" not in proxied_env.capture_bytes()
