"""A real MCP server (the `mcp` SDK's FastMCP) served over streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

from tests.upstreams import free_socket


def build_server(json_response: bool = False) -> FastMCP:
    server = FastMCP("weather", json_response=json_response)
    server.calls = []  # type: ignore[attr-defined]

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
    def get_weather(city: str) -> dict:
        """Current weather for a city."""
        server.calls.append(("get_weather", city))  # type: ignore[attr-defined]
        return {"city": city, "temp_c": 21, "sky": "clear"}

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    def book_table(restaurant: str, people: int) -> str:
        """Book a table."""
        server.calls.append(("book_table", restaurant))  # type: ignore[attr-defined]
        return f"booked {restaurant} for {people}"

    return server


@asynccontextmanager
async def serve_mcp(server: FastMCP, app: Any = None) -> AsyncIterator[str]:
    """Serve the FastMCP app (or `app` wrapping it) with uvicorn in this loop; yields the
    endpoint URL."""
    sock = free_socket()
    app = app if app is not None else server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        uv.should_exit = True
        await task
