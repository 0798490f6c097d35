"""How a tool name and arguments become an MCP request prefire can send itself.

Learned from the agent's own traffic, per tool scope (a hash of the credentials) and
server URL: the headers every early call repeats (credentials, Accept, User-Agent), the
tools the server listed (annotations, input schemas), and how the agent speaks to it:
its MCP-Protocol-Version, its 2026-07-28 `_meta` envelope, whether it mirrors the body
in Mcp-Method / Mcp-Name headers, and the params of its `initialize` (prefire opens a
session of its own with them: proxy/mcpclient.py). A session id is never kept as the
server's: a session belongs to one task of the agent. Which conversation a session
serves is learned by the join (proxy/calljoin.py), and only a rule with
`session: agent` uses it.

The model may call a tool by another name than the server's (Claude Code shows
`mcp__<server>__<tool>`). `resolve` finds the server tool a model name stands for, for
one client: the mapping the join learned, else the tools that client's servers listed,
by the usual prefix conventions. When that leaves more than one candidate, or one tool
reached on more than one server or under more than one scope, nothing fires: prefire
never guesses whose credentials to use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lru import LRU

from prefire.patterns.events import SessionKey, ToolSpec
from prefire.proxy.cache import Clock
from prefire.proxy.calljoin import Joined, names_fit
from prefire.wire.providers import mcp
from prefire.wire.sessions import repeated_by_speculation

# headers an early MCP call repeats from the agent's requests, besides those that may
# carry a secret (what the server authenticates; they make the tool scope)
_KEPT = ("accept", "user-agent")
# per request or per session: set by prefire for each of its own requests instead
_NOT_KEPT = ("mcp-session-id", "mcp-protocol-version", mcp.METHOD_HEADER, mcp.NAME_HEADER)
_WINDOW_S = 600.0  # what a client did longer ago than this no longer counts
_LISTED_NAMES = 20  # names a skip reason lists at most


@dataclass(slots=True)
class McpServer:
    url: str
    scope: str
    headers: dict[str, str]
    tools: dict[str, float] = field(default_factory=dict)  # listed or called -> last seen
    annotations: dict[str, Any] = field(default_factory=dict)  # tool -> annotations as listed
    schemas: dict[str, Any] = field(default_factory=dict)  # tool -> input schema as listed
    # how the agent's latest request to this server spoke MCP
    protocol: str = ""  # its MCP-Protocol-Version header; "" when it sent none
    envelope: dict[str, Any] = field(default_factory=dict)  # its params._meta envelope
    mirrors: bool = False  # it sent Mcp-Method (and Mcp-Name) headers
    initialize: dict[str, Any] | None = None  # the params of its latest initialize

    @property
    def id(self) -> str:
        return "mcp:" + self.url

    @property
    def sessionless(self) -> bool:
        """The agent speaks a protocol without sessions (2026-07-28 and later)."""
        return bool(self.envelope)


@dataclass(frozen=True, slots=True)
class Target:
    server: McpServer
    tool: str  # the server's name for the tool


@dataclass(frozen=True, slots=True)
class NoTarget:
    reason: str  # no_binding | ambiguous_name | ambiguous_server
    detail: dict[str, Any]


class Bindings:
    def __init__(self, capacity: int = 10_000, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._servers: LRU[tuple[str, str], McpServer] = LRU(capacity)  # (scope, url) -> McpServer
        # client -> {(scope, url): last seen}
        self._clients: LRU[str, dict[tuple[str, str], float]] = LRU(capacity)
        # (client, model-side name) -> {(scope, url, tool): last joined}
        self._learned: LRU[tuple[str, str], dict[tuple[str, str, str], float]] = LRU(capacity * 4)
        # (conversation, url) -> (scope, the MCP session its calls ran in), as joined
        self._agent_sessions: LRU[tuple[SessionKey, str], tuple[str, str]] = LRU(capacity * 4)
        # (scope, url, session id) -> True
        self._closed: LRU[tuple[str, str, str], bool] = LRU(capacity * 4)

    # -- what the agent's traffic shows ------------------------------------------

    def observe_mcp(
        self,
        client: str,
        scope: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        requests: Iterable[mcp.McpRequest] = (),
    ) -> McpServer:
        """The agent sent an MCP request: remember how it reaches that server and how it
        speaks to it."""
        pairs = [(k.lower(), v) for k, v in headers]
        kept = {
            k: v
            for k, v in pairs
            if k not in _NOT_KEPT
            and not k.startswith(mcp.PARAM_HEADER_PREFIX)
            and (k in _KEPT or repeated_by_speculation(k))
        }
        server = self._servers.get((scope, url))
        if server is None:
            server = self._servers[(scope, url)] = McpServer(url, scope, kept)
        else:
            server.headers.update(kept)
        self._seen(client, server)
        named = dict(pairs)
        for req in requests:
            if req.method == "initialize":
                if isinstance(req.params, dict):
                    server.initialize = req.params
                    server.envelope = {}
                continue
            if req.id is None:
                continue  # notifications say nothing new
            server.protocol = named.get("mcp-protocol-version", "")
            server.envelope = mcp.envelope(req.params)
            server.mirrors = mcp.METHOD_HEADER in named
        return server

    def server(self, scope: str, url: str) -> McpServer | None:
        return self._servers.get((scope, url))

    def observe_tools(self, client: str, server: McpServer, tools: Iterable[ToolSpec]) -> None:
        for spec in tools:
            server.annotations[spec.name] = spec.annotations or {}
            if spec.parameters is not None:
                server.schemas[spec.name] = spec.parameters
            self.offer(client, spec.name, server)

    def offer(self, client: str, tool: str, server: McpServer) -> None:
        """`client` reaches `tool` on `server` (listed there, or called)."""
        server.tools[tool] = self._clock()
        self._seen(client, server)

    def _seen(self, client: str, server: McpServer) -> None:
        seen = self._clients.get(client)
        if seen is None:
            seen = self._clients[client] = {}
        seen[(server.scope, server.url)] = self._clock()

    def learn(self, joined: Joined) -> None:
        """A model-side call and the tools/call that ran it: the name mapping, and (when
        certain) the MCP session that conversation's calls ride on."""
        m, s = joined.model, joined.server
        learned = self._learned.get((m.client, m.name))
        if learned is None:
            learned = self._learned[(m.client, m.name)] = {}
        learned[(s.scope, s.server, s.tool)] = self._clock()
        if joined.certain and s.mcp_session:
            self._agent_sessions[(m.session, s.server)] = (s.scope, s.mcp_session)

    def session_closed(self, scope: str, url: str, session_id: str) -> None:
        """The agent ended an MCP session (DELETE)."""
        self._closed[(scope, url, session_id)] = True

    # -- what an early call needs -------------------------------------------------

    def resolve(self, client: str, name: str) -> Target | NoTarget:
        """The server tool a model-side `name` stands for, for this client."""
        now = self._clock()
        learned = self._learned.get((client, name))
        if learned:
            recent = [k for k, t in learned.items() if now - t < _WINDOW_S]
            if len(recent) == 1:
                scope, url, tool = recent[0]
                server = self._servers.get((scope, url))
                if server is not None:
                    return Target(server, tool)
            elif len(recent) > 1:
                return NoTarget(
                    "ambiguous_name",
                    {"learned": sorted(f"{url} {tool}" for _, url, tool in recent)},
                )
        servers = [
            s
            for key, t in (self._clients.get(client) or {}).items()
            if now - t < _WINDOW_S and (s := self._servers.get(key)) is not None
        ]
        fits = [
            (s, tool)
            for s in servers
            for tool, t in s.tools.items()
            if now - t < _WINDOW_S and names_fit(name, tool)
        ]
        exact = [(s, tool) for s, tool in fits if tool == name]
        fits = exact or fits
        if len(fits) == 1:
            return Target(*fits[0])
        if not fits:
            offered = sorted({tool for s in servers for tool in s.tools})
            return NoTarget("no_binding", {"offered": offered[:_LISTED_NAMES]})
        if len({tool for _, tool in fits}) > 1:
            return NoTarget("ambiguous_name", {"candidates": sorted({t for _, t in fits})})
        return NoTarget("ambiguous_server", {"servers": sorted({s.url for s, _ in fits})})

    def agent_session(self, conversation: SessionKey, server: McpServer) -> str | None:
        """The open MCP session this conversation's calls to `server` ride on, if known."""
        known = self._agent_sessions.get((conversation, server.url))
        if known is None or known[0] != server.scope:
            return None
        if self._closed.get((server.scope, server.url, known[1])):
            return None
        return known[1]
