"""Answers the agent's own tool requests from speculation.

When the agent's request arrives, a finished early result is served at once and a
running one is waited for (promotion, bounded); with a shared store another replica's
result may answer it too. The response carries the tool server's own bytes and headers,
the agent's JSON-RPC id and the agent's own Mcp-Session-Id. A request that is not served
goes upstream untouched; if it may change state, what was fetched from that server in
that scope is dropped first (and the rule's `invalidates` globs drop more).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from mitmproxy import http

from prefire.patterns.canonical import canonical_key, loads_or_none
from prefire.patterns.events import SessionKey
from prefire.proxy.accounting import Fact, Served
from prefire.proxy.bindings import Bindings, McpServer
from prefire.proxy.cache import CacheKey, Clock, Entry, Result, ResultCache
from prefire.proxy.calljoin import Ambiguous, CallJoin, Joined, ServerCall
from prefire.proxy.rest import RestLearner
from prefire.proxy.store import Store
from prefire.proxy.transport import CALL_TIMEOUT_S
from prefire.rules import rest
from prefire.rules.files import RulesWatcher
from prefire.wire.observer import Exchange
from prefire.wire.sessions import tool_scope_of

log = structlog.get_logger(__name__)

# How long an agent request waits for the same speculative call still in flight before
# it goes upstream itself: 3x the tool's usual speculative latency, within these bounds;
# PROMOTION_WAIT_UNKNOWN_S while no call of the tool has finished yet.
PROMOTION_WAIT_FACTOR = 3.0
PROMOTION_WAIT_MIN_S = 1.0
PROMOTION_WAIT_UNKNOWN_S = 10.0
_HOP_HEADERS = frozenset(
    {
        b"content-length",
        b"content-encoding",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
    }
)
_SESSION_HEADER = frozenset({b"mcp-session-id"})


@dataclass(slots=True)
class Answer:
    """A result about to answer the agent."""

    result: Result
    tool: str
    kind: str
    saved_s: float  # the tool time the agent did not wait
    promoted: bool  # still running when the agent asked
    first: bool = True  # the call's first answer to the agent
    remote: bool = False  # fetched by another replica
    session: SessionKey | None = None  # the conversation it was fired for, for accounting
    depth: int = 0  # steps of a chain past its decision point


@dataclass(slots=True)
class Responder:
    bindings: Bindings
    rest: RestLearner
    join: CallJoin
    joined: Callable[[Joined | Ambiguous | None], str | None]  # learns from a join
    cache: ResultCache
    store: Store
    rules: RulesWatcher
    usual: Callable[[str], float | None]  # a tool's usual early-call latency, s
    note: Callable[[Fact], None]
    enabled: bool = True
    clock: Clock = time.monotonic

    async def serve(self, flow: http.HTTPFlow, ex: Exchange) -> None:
        """The agent's own MCP request: learn from it, and answer it from speculation
        if we can."""
        req = flow.request
        server = self.bindings.observe_mcp(
            ex.client, ex.session.scope, ex.url, req.headers.items(multi=True), ex.mcp_requests
        )
        if len(ex.mcp_calls) != 1 or ex.mcp_lists:
            return
        ((agent_id, (tool, args)),) = ex.mcp_calls.items()
        self.bindings.offer(ex.client, tool, server)
        mcp_session = req.headers.get("mcp-session-id", "")
        call = ServerCall(
            ex.client,
            ex.session.scope,
            ex.url,
            tool,
            canonical_key(args),
            mcp_session,
            agent_id,
            ex.started,
        )
        called_as = self.joined(self.join.server_call(call))
        if not self.enabled:
            return
        # a call made in this very session (rule `session: agent`), else one in a session
        # of prefire's own, in the protocol version this request speaks
        binding = f"{server.id}|{req.headers.get('mcp-protocol-version', '')}"
        bindings = [binding + "|" + mcp_session] if mcp_session else []
        answer = None
        for b in [*bindings, binding]:
            answer = await self._take(CacheKey.mcp(server.scope, b, tool, args))
            if answer is not None:
                break
        if answer is None:
            await self._invalidate_for(tool, server, called_as)
            return
        result = answer.result
        # the server's own bytes, answering the agent's JSON-RPC id instead of ours
        body = result.body.replace(orjson.dumps(result.request_id), orjson.dumps(agent_id))
        # the answer belongs to the agent's own MCP session, never to the one prefire made
        # the call in (a client that adopts a response's Mcp-Session-Id would move into it)
        session_header = [(b"mcp-session-id", mcp_session.encode())] if mcp_session else []
        self._served(flow, answer, body, _SESSION_HEADER, session_header)

    async def serve_http(self, flow: http.HTTPFlow, client: str, content: bytes) -> None:
        """Any other request of the agent (`content`: its decoded body): learn REST bindings
        from it, and answer it from speculation when a fetched request is exactly this one."""
        req = flow.request
        body: Any = loads_or_none(content) if content else None
        headers = list(req.headers.items(multi=True))  # (a generator: read twice below)
        scope = tool_scope_of(headers, req.url)
        if req.method == "DELETE" and "mcp-session-id" in req.headers:
            # the agent ends an MCP session: no early call may ride on it any more
            self.bindings.session_closed(scope, req.url, req.headers["mcp-session-id"])
            return
        self.rest.request_seen(client, req.method, req.url, headers, body)
        key = CacheKey.rest(scope, req.method, req.url, body)
        answer = await self._take(key) if self.enabled else None
        if answer is not None:
            self._served(flow, answer, answer.result.body)
        elif req.method not in ("GET", "HEAD", "OPTIONS"):
            # it may change what was read from this host: drop this scope's reads from it
            tags = (scope, rest.origin(req.url))
            self.cache.invalidate(lambda e: e.tags == tags)
            await self.store.invalidate(scope, lambda _tool, tag: tag == tags[1])

    async def _take(self, key: CacheKey) -> Answer | None:
        """A result for the agent's request, using one of its serves: this replica's own
        (finished, or still running: promotion), or, with a shared store, another
        replica's (finished, or still running there: waited for, within bounds)."""
        entry = self.cache.lookup(key)
        if entry is None:
            return await self._take_remote(key)
        if not await self.store.may_serve(entry):
            return None  # served by another replica already (or expired there)
        asked = self.clock()
        taken = await self.cache.take(key, self.promotion_wait)
        if taken is None:
            return None
        result, entry, in_flight = taken
        # promoted: the agent was spared the time the call had already run when it asked
        saved = result.duration_s if not in_flight else asked - entry.fired_at
        return Answer(
            result,
            entry.tool,
            entry.kind,
            saved,
            in_flight,
            first=entry.used == 1,
            session=entry.session,
            depth=entry.depth,
        )

    async def _take_remote(self, key: CacheKey) -> Answer | None:
        remote = await self.store.take_for(key)
        if remote is None:
            return None
        result, tool, kind, waited = remote
        saved = result.duration_s if waited is None else result.duration_s - waited
        return Answer(result, tool, kind, saved, waited is not None, remote=True)

    def promotion_wait(self, entry: Entry) -> float:
        """Seconds an agent request may still wait for `entry`'s call in flight."""
        usual = self.usual(entry.tool)
        if usual is None:
            bound = PROMOTION_WAIT_UNKNOWN_S
        else:
            bound = min(CALL_TIMEOUT_S, max(PROMOTION_WAIT_MIN_S, PROMOTION_WAIT_FACTOR * usual))
        return entry.fired_at + bound - self.clock()

    def _served(
        self,
        flow: http.HTTPFlow,
        answer: Answer,
        body: bytes,
        replaced: frozenset[bytes] = frozenset(),
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer the agent with `body` and the tool server's headers, less the hop-by-hop
        ones and those in `replaced`, plus `headers`."""
        result = answer.result
        saved = max(0.0, min(answer.saved_s, result.duration_s))
        self.note(
            Served(answer.tool, answer.session, answer.first, answer.promoted, saved, answer.kind)
        )
        dropped = _HOP_HEADERS | replaced
        flow.response = http.Response.make(
            result.status,
            body,
            [(k, v) for k, v in result.headers if k.lower() not in dropped] + (headers or []),
        )
        flow.metadata["prefire.served"] = answer.kind
        flow.metadata["prefire.promoted"] = answer.promoted
        flow.metadata["prefire.depth"] = answer.depth  # in-process only, never sent
        log.info(
            "speculate.served",
            tool=answer.tool,
            kind=answer.kind,
            promoted=answer.promoted,
            saved_s=round(answer.saved_s, 3),
            **({"from_replica": True} if answer.remote else {}),
        )

    async def _invalidate_for(
        self, tool: str, server: McpServer, called_as: str | None = None
    ) -> None:
        """A call that was not served goes upstream. If it may change state (no rule
        lets it run early, by its name or the one the model called it by), drop what
        was fetched from that server in that scope; a rule's `invalidates` globs drop
        the matching tools' results in that scope."""
        decision = self.rules.current.decide(
            (tool, called_as or tool), server=server.url, annotations=server.annotations.get(tool)
        )
        globs = decision.rule.invalidates if decision.rule is not None else ()

        def stale_call(name: str, tag: str) -> bool:
            same_server = tag == server.url
            return (not decision.allowed and same_server) or any(
                fnmatch.fnmatchcase(name, g) for g in globs
            )

        dropped = self.cache.invalidate(
            lambda e: (
                e.tags[0] == server.scope
                and (stale_call(e.tool, e.tags[1]) or stale_call(e.called_as, e.tags[1]))
            )
        )
        if globs or not decision.allowed:
            # before the write goes upstream, so no replica serves a read it changed
            dropped += await self.store.invalidate(server.scope, stale_call)
        if dropped:
            log.info("speculate.invalidated", by=tool, dropped=dropped)
