"""The agents' tool server: the world's tools as an MCP server over streamable HTTP, run with
whichever `mcp` SDK the venv has (1.x: FastMCP; 2.x: MCPServer), on loopback.

    python -m bench.agents.tool_server --log FILE [--seed N] [--latency-scale X]

Prints `tool server listening on URL` once it serves, then runs until SIGTERM/SIGINT.
Reads are annotated readOnlyHint; the write is destructive. Every POST is recorded in FILE
(JSON lines) as the server saw it: the JSON-RPC method and id, the Mcp-Session-Id it came
in (and the one the server gave it), the MCP headers, the tool and arguments, the HTTP
status and what the call returned. prefire's own requests carry JSON-RPC ids starting with
"prefire-", so a test can tell who ran each call and in which session. DELETEs (a client
ending its session) are recorded too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import IO, Any

import uvicorn

from bench.agents.world import DESCRIPTIONS, LATENCY_S, World

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]
from mcp.types import ToolAnnotations

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)


def build(world: World, latency_scale: float) -> Any:
    server = Server("docs", log_level="WARNING")

    async def run(tool: str, **arguments: str) -> dict[str, Any]:
        await asyncio.sleep(LATENCY_S[tool] * latency_scale)
        return world.call(tool, arguments)

    # One function per tool: the SDKs read each tool's parameters from its signature.
    async def search_docs(query: str) -> dict[str, Any]:
        return await run("search_docs", query=query)

    async def get_doc(doc_id: str) -> dict[str, Any]:
        return await run("get_doc", doc_id=doc_id)

    async def get_team(team_id: str) -> dict[str, Any]:
        return await run("get_team", team_id=team_id)

    async def search_venues(query: str) -> dict[str, Any]:
        return await run("search_venues", query=query)

    async def get_venue(venue_id: str) -> dict[str, Any]:
        return await run("get_venue", venue_id=venue_id)

    async def get_forecast(city: str, date: str) -> dict[str, Any]:
        return await run("get_forecast", city=city, date=date)

    async def create_ticket(team_id: str, title: str) -> dict[str, Any]:
        return await run("create_ticket", team_id=team_id, title=title)

    for fn in (search_docs, get_doc, get_team, search_venues, get_venue, get_forecast):
        server.tool(description=DESCRIPTIONS[fn.__name__], annotations=_READ)(fn)
    for fn in (create_ticket,):
        server.tool(description=DESCRIPTIONS[fn.__name__], annotations=_WRITE)(fn)
    return server


class Recorder:
    """ASGI middleware that writes one JSON line per MCP request the server answered."""

    def __init__(self, app: ASGIApp, log: IO[str]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        record: dict[str, Any] = {
            "t0": time.time(),
            "http": scope["method"],
            "session": headers.get("mcp-session-id"),
            "protocol": headers.get("mcp-protocol-version"),
            "mcp_method": headers.get("mcp-method"),
            "mcp_name": headers.get("mcp-name"),
        }
        body = b""
        if scope["method"] == "POST":
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            record.update(_request_fields(body))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                got = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                if got.get("mcp-session-id") and got["mcp-session-id"] != record["session"]:
                    record["new_session"] = got["mcp-session-id"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay if body else receive, capture)
        finally:
            record["t1"] = time.time()
            record.update(_response_fields(b"".join(chunks), record.get("rpc_id")))
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()


def _request_fields(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body)
    except ValueError:
        return {"method": None}
    if not isinstance(msg, dict):
        return {"method": "batch"}
    out: dict[str, Any] = {"method": msg.get("method"), "rpc_id": msg.get("id")}
    params = msg.get("params") or {}
    if msg.get("method") == "tools/call":
        out["tool"] = params.get("name")
        out["arguments"] = params.get("arguments")
    if isinstance(params.get("_meta"), dict):
        out["meta_keys"] = sorted(params["_meta"])
    return out


def _response_fields(body: bytes, rpc_id: Any) -> dict[str, Any]:
    """The JSON-RPC answer to `rpc_id` in a JSON or SSE body: the tool's result or error."""
    text = body.decode(errors="replace")
    candidates = [text] + [
        line[5:].strip() for line in text.splitlines() if line.startswith("data:")
    ]
    for candidate in candidates:
        try:
            msg = json.loads(candidate)
        except ValueError:
            continue
        if not isinstance(msg, dict) or msg.get("id") != rpc_id or rpc_id is None:
            continue
        if "error" in msg:
            return {"error": msg["error"]}
        result = msg.get("result") or {}
        if "content" in result:
            texts = [c.get("text") for c in result["content"] if isinstance(c, dict)]
            return {
                "result": result.get("structuredContent") or texts,
                "is_error": bool(result.get("isError")),
            }
        return {}
    return {}


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(log_path: Path, seed: int, latency_scale: float) -> None:
    server = build(World(seed), latency_scale)
    sock = _loopback_socket()
    with log_path.open("a") as log:
        app = Recorder(server.streamable_http_app(), log)
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3
        )
        uv = uvicorn.Server(config)
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            if task.done():
                await task
                raise RuntimeError("the tool server stopped while starting")
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        print(f"tool server listening on http://127.0.0.1:{port}/mcp", flush=True)
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, required=True, help="JSON lines, one per request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    # uvicorn stops on SIGTERM and SIGINT itself
    asyncio.run(serve(args.log, args.seed, args.latency_scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
