"""How a tool name and arguments become an HTTP request prefire can send itself.

MCP over streamable HTTP, learned from the agent's own traffic: the server URL,
the headers the agent sent it (credentials, Mcp-Session-Id, MCP-Protocol-Version,
Accept) and the tools it listed. A speculative call is sent with exactly those
headers, so it runs as the agent would, in the agent's scope, and its result can
only serve a request that carries the same credentials.

Which server a predicted call goes to is known per client address: the tools a
server listed to a client. When one client has talked to the same tool on more
than one server or under more than one scope, the binding is ambiguous and
nothing is fired: prefire never guesses whose credentials to use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lru import LRU

from prefire.patterns.events import ToolSpec
from prefire.proxy.sessions import repeated_by_speculation

# headers a speculative MCP call repeats from the agent's own request: those that may
# carry a secret (what the server authenticates; they make the tool scope) and these
_KEPT = ("mcp-session-id", "mcp-protocol-version", "accept", "user-agent")
_AMBIGUITY_WINDOW_S = 600.0


@dataclass(slots=True)
class McpServer:
    url: str
    scope: str
    headers: dict[str, str]
    annotations: dict[str, Any] = field(default_factory=dict)  # tool -> annotations as listed

    @property
    def id(self) -> str:
        return "mcp:" + self.url


class Bindings:
    def __init__(self, capacity: int = 10_000) -> None:
        self._servers: LRU = LRU(capacity)  # (scope, url) -> McpServer
        # (client address, tool) -> {(scope, url): last seen}
        self._offers: LRU = LRU(capacity * 8)

    def observe_mcp(
        self, client: str, scope: str, url: str, headers: Iterable[tuple[str, str]]
    ) -> McpServer:
        """The agent sent an MCP request: remember how to reach that server as it does."""
        kept = {
            k.lower(): v for k, v in headers if k.lower() in _KEPT or repeated_by_speculation(k)
        }
        server = self._servers.get((scope, url))
        if server is None:
            server = self._servers[(scope, url)] = McpServer(url, scope, kept)
        else:
            server.headers.update(kept)
        return server

    def server(self, scope: str, url: str) -> McpServer | None:
        return self._servers.get((scope, url))

    def observe_tools(self, client: str, server: McpServer, tools: Iterable[ToolSpec]) -> None:
        for spec in tools:
            server.annotations[spec.name] = spec.annotations or {}
            self.offer(client, spec.name, server)

    def offer(self, client: str, tool: str, server: McpServer) -> None:
        seen = self._offers.get((client, tool))
        if seen is None:
            seen = self._offers[(client, tool)] = {}
        seen[(server.scope, server.url)] = time.monotonic()

    def for_tool(self, client: str, tool: str) -> McpServer | None:
        """The one server this client reaches `tool` on, or None if none or ambiguous."""
        seen = self._offers.get((client, tool))
        if not seen:
            return None
        now = time.monotonic()
        recent = [k for k, t in seen.items() if now - t < _AMBIGUITY_WINDOW_S]
        if len(recent) != 1:
            return None
        return self._servers.get(recent[0])
