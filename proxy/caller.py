"""Makes prefire's early calls: MCP `tools/call` (proxy/mcpclient.py speaks the agent's
protocol) and REST requests, over a `Transport` (proxy/transport.py). A call that brings
back nothing to serve (no response, a non-2xx status, a JSON-RPC or tool error) is None,
logged as speculate.failed with the status and body it got; errors are never served."""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from lru import LRU

from prefire.patterns.latency import ewma
from prefire.proxy.bindings import McpServer
from prefire.proxy.cache import BODY_START, Clock, Failure, Result
from prefire.proxy.mcpclient import McpClient
from prefire.proxy.transport import Transport
from prefire.rules import rest
from prefire.rules.rest import RestRequest
from prefire.wire.providers import mcp

log = structlog.get_logger(__name__)


class Caller:
    def __init__(self, transport: Transport, clock: Clock = time.monotonic) -> None:
        self.transport = transport
        self.mcp = McpClient(self.send)
        self._clock = clock
        # tool -> EWMA of finished early calls, s
        self._latency: LRU[str, float] = LRU(10_000)

    def usual(self, tool: str) -> float | None:
        """How long an early call of `tool` usually takes, s; None until one finished."""
        return self._latency.get(tool)

    async def send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> Result | Failure:
        """Send one of prefire's own requests: the response, whatever its status, or a
        Failure when none came."""
        return await self.transport.send(method, url, data, headers)

    async def call_mcp(
        self, server: McpServer, tool: str, args: dict[str, Any], agent_session: str | None
    ) -> Result | None:
        got = await self.mcp.call(server, tool, args, self.mcp.next_id(), agent_session)
        if isinstance(got, Result):
            value, is_error = mcp.call_result(got.reply)
            if is_error:
                got = Failure("tool_error", got.status, str(value)[:BODY_START])
            elif not mcp.complete(got.reply):
                got = Failure("incomplete", got.status, str(got.reply.get("resultType")))
        if isinstance(got, Failure):  # errors are never served from speculation
            failed(tool, got, server=server.url)
            return None
        ewma(self._latency, tool, got.duration_s)
        return got

    async def call_rest(
        self, request: RestRequest, headers: dict[str, str], tool: str
    ) -> Result | None:
        data = None if request.body is None else orjson.dumps(request.body)
        if data is not None:
            headers = {**headers, "content-type": "application/json"}
        got = await self.send(request.method, request.url, data, headers)
        if isinstance(got, Result) and not 200 <= got.status < 300:
            got = Failure.of_response("status", got)
        if isinstance(got, Failure):
            failed(tool, got, url=rest.origin(request.url))
            return None
        ewma(self._latency, tool, got.duration_s)
        return got

    async def close(self) -> None:
        await self.mcp.close()
        await self.transport.close()


def failed(tool: str, failure: Failure, **where: str) -> None:
    log.info(
        "speculate.failed",
        tool=tool,
        why=failure.reason,
        status=failure.status or None,
        body=failure.body,
        **where,
    )
