"""Decides what to run early, runs it, serves it, and accounts for it.

Two ways to start early:
- eager: an LLM response has just finished emitting a tool call (the stream is
  still running); the call is certain, so it starts now;
- predicted: a request carrying tool results or a user message went to the LLM;
  the pattern model's candidates start, best expected saving first, within the
  rules' budgets, while the LLM thinks.
Nothing starts unless a rule allows the tool and the proxy knows exactly how the
agent reaches it (a binding: proxy/bindings.py, proxy/mcpclient.py); whatever stops a
call is logged as speculate.skipped with its reason and counted, and a call that brings
back nothing to serve is logged as speculate.failed with the status and body it got.
When the agent's own request arrives, a finished result is served at once and a
running one is waited for (promotion); otherwise the request goes upstream untouched.

With a shared store (proxy/store.py) the replicas behind a load balancer act as one:
a call is claimed there before it is fired (no two replicas fire it), its result is
served once across all of them, a request that meets another replica's call in flight
waits for it, writes drop the scope's shared reads, and a call this replica has no
binding for is relayed to the replicas that have one.
"""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
import structlog
from lru import LRU
from mitmproxy import http

from prefire.patterns.canonical import canonical_key, loads_or_none
from prefire.patterns.chain import Chain, chain_candidates, continuation
from prefire.patterns.events import Event, LLMRequest, SessionKey, ToolCall, ToolsOffered
from prefire.patterns.latency import ewma
from prefire.patterns.model import Candidate, PatternModel, call_key
from prefire.patterns.policy import fire_by_value
from prefire.proxy.accounting import Accounting
from prefire.proxy.bindings import Bindings, McpServer, NoTarget, Target
from prefire.proxy.cache import (
    BODY_START,
    CacheKey,
    Entry,
    Failure,
    Fetch,
    Result,
    ResultCache,
    Superseded,
)
from prefire.proxy.calljoin import Ambiguous, CallJoin, Joined, ModelCall, ServerCall
from prefire.proxy.mcpclient import McpClient
from prefire.proxy.rest import RestLearner
from prefire.proxy.store import Store, result_key
from prefire.rules import rest
from prefire.rules.files import RulesWatcher
from prefire.rules.rest import RestRequest
from prefire.wire.observer import Exchange, Observer
from prefire.wire.providers import mcp
from prefire.wire.sessions import tool_scope_of

log = structlog.get_logger(__name__)

CALL_TIMEOUT_S = 60.0
# How long an agent request waits for the same speculative call still in flight before
# it goes upstream itself: 3x the tool's usual speculative latency, within these bounds;
# PROMOTION_WAIT_UNKNOWN_S while no call of the tool has finished yet.
PROMOTION_WAIT_FACTOR = 3.0
PROMOTION_WAIT_MIN_S = 1.0
PROMOTION_WAIT_UNKNOWN_S = 10.0
# Where a connection for (host, port) really goes: (host, port). Live playback uses it to
# send prefire's own calls to recorded answers instead of the network.
ConnectTo = Callable[[str, int], tuple[str, int]]
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
class _Served:
    result: Result
    tool: str
    kind: str
    saved_s: float  # the tool time the agent did not wait
    promoted: bool  # still running when the agent asked
    first: bool = True  # the call's first answer to the agent
    remote: bool = False  # fetched by another replica
    session: SessionKey | None = None  # the conversation it was fired for, for accounting
    depth: int = 0  # steps of a chain past its decision point


class Speculator:
    def __init__(
        self,
        model: PatternModel,
        rules: RulesWatcher,
        observer: Observer,
        accounting: Accounting,
        enabled: bool = True,
        verify_tls: bool = True,
        connect_to: ConnectTo | None = None,
        store: Store | None = None,
    ) -> None:
        self.model = model
        self.rules = rules
        self.observer = observer
        self.accounting = accounting
        self.enabled = enabled
        self.verify_tls = verify_tls
        self.connect_to = connect_to
        self.bindings = Bindings()
        self.rest = RestLearner()
        self.cache = ResultCache(on_end=self._ended)
        self.mcp = McpClient(self._send)
        self._http: aiohttp.ClientSession | None = None
        # guesses (predicted and chained calls) in flight, per conversation (None: relayed
        # from another replica); the cap bounds each conversation's, as replay does
        self._guessing: Counter[SessionKey | None] = Counter()
        # tool -> EWMA of finished speculative calls, s
        self._latency: LRU[str, float] = LRU(10_000)
        self.store = store or Store()
        # shared name -> cache key, for calls we claimed
        self._claimed: LRU[str, CacheKey] = LRU(10_000)
        self.store.on_used = self._used_elsewhere
        self.store.on_invalidated = self._invalidated_elsewhere
        self.store.on_fire = self._fire_requested
        # pairs each model-side tool call with the tools/call that runs it
        self.join = CallJoin()
        self._chains: LRU = LRU(10_000)  # session -> Chain of its early calls
        self.on_join: list[Callable[[Joined], None]] = [self.bindings.learn]

    # -- events -------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Listener for every observed event (after the model has learned from it)."""
        if isinstance(event, ToolsOffered) and event.api == "mcp":
            origin = self.observer.origin(event.session)
            if origin is not None:
                server = self.bindings.server(event.session.scope, origin[1])
                if server is not None:
                    self.bindings.observe_tools(origin[0], server, event.tools)
        elif isinstance(event, LLMRequest) and self.enabled:
            self._drop_orphans(event.session)
            self._fire_predicted(event.session)
        elif isinstance(event, ToolCall) and isinstance(event.arguments, dict):
            origin = self.observer.origin(event.session)
            if origin is None:
                return
            call = ModelCall(
                origin[0],
                event.session,
                event.call_id,
                event.name,
                canonical_key(event.arguments),
                event.t,
            )
            self._joined(self.join.model_call(call))
            if isinstance(self.bindings.resolve(origin[0], event.name), NoTarget):
                self.rest.call_seen(origin[0], event.name, event.arguments)

    def _joined(self, outcome: Joined | Ambiguous | None) -> str | None:
        """Learn from what the join found; the model-side name of the call, if joined."""
        if isinstance(outcome, Ambiguous):
            log.info(
                "join.ambiguous",
                tool=outcome.server.tool,
                server=outcome.server.server,
                model_names=list(outcome.names),
            )
        elif isinstance(outcome, Joined):
            for listener in self.on_join:
                listener(outcome)
            return outcome.model.name
        return None

    def eager(self, call: ToolCall) -> None:
        """A tool call has just closed in an LLM response: it is certain, start it."""
        if (
            self.enabled
            and isinstance(call.arguments, dict)
            and self._fire(call.session, call.name, call.arguments, "eager")
        ):
            self._root(call.session, call.name, call.arguments, 1.0)

    def _fire_predicted(self, session: SessionKey) -> None:
        def fire(c: Candidate) -> bool:
            if isinstance(c.arguments, dict) and self._fire(
                session, c.tool, c.arguments, "predicted"
            ):
                self._root(session, c.tool, c.arguments, c.probability)
                return True
            return False

        ruleset = self.rules.current
        fire_by_value(
            self.model.predict(session),
            self._cost(session),
            ruleset.budgets,
            fire,
            self._guessing[session],
        )

    def _cost(self, session: SessionKey) -> Callable[[str], float]:
        """What a wasted early call of a tool costs, by the rule that allows it."""
        ruleset = self.rules.current
        origin = self.observer.origin(session)

        def cost(tool: str) -> float:
            target = self.bindings.resolve(origin[0], tool) if origin is not None else None
            if not isinstance(target, Target):
                return ruleset.cost(tool)
            server, name = target.server, target.tool
            return ruleset.cost(
                (tool, name), server=server.url, annotations=server.annotations.get(name)
            )

        return cost

    # -- chaining (patterns/chain.py) ----------------------------------------------

    def _root(self, session: SessionKey, tool: str, args: dict[str, Any], p: float) -> None:
        """An early call started at a decision point: the first link of a chain."""
        if self.rules.current.budgets.max_chain_depth > 0:
            chain = self._chains.get(session)
            if chain is None:
                chain = self._chains[session] = Chain()
            chain.root(tool, args, p, self.model.memory(session).turn)

    def _chain_from(self, session: SessionKey, tool: str, args: dict[str, Any], value: Any) -> None:
        """An early call's result has arrived: start the calls that would follow it, as
        predicted from a provisional continuation of the session (never learned from)."""
        chain = self._chains.get(session)
        link = chain.links.get(call_key(tool, args)) if chain is not None else None
        if chain is None or link is None or link.has_result:
            return
        link.result, link.has_result = value, True
        budgets = self.rules.current.budgets
        if link.depth >= budgets.max_chain_depth:
            return
        mem = self.model.memory(session)
        answered = {r.key for r in mem.calls if r.has_result}
        if link.key in answered:
            return  # the agent has the result already: its own next request predicts
        link.chained = True
        layers = chain.layers(link, mem.called, answered)
        candidates = chain_candidates(
            continuation(self.model, session, layers, limit=budgets.max_per_turn + 3),
            link.probability,
        )

        def fire(c: Candidate) -> bool:
            if c.key in chain.links or not isinstance(c.arguments, dict):
                return False
            if not self._fire(session, c.tool, c.arguments, "chained", link.depth + 1):
                return False
            child = chain.child(link, c)
            log.info(
                "speculate.chained",
                tool=c.tool,
                depth=child.depth,
                p=round(child.probability, 3),
                after=tool,
                session=_label(session),
            )
            return True

        started = fire_by_value(
            candidates, self._cost(session), budgets, fire, self._guessing[session]
        )
        if candidates and not started:
            log.info("chain.none_worth", tool=tool, depth=link.depth, session=_label(session))

    def _drop_orphans(self, session: SessionKey) -> None:
        """The agent's calls of a turn are in: chained calls whose parent it did not call
        are never served; drop them (cancelling those still running), counted wasted."""
        chain = self._chains.get(session)
        if chain is None:
            return
        mem = self.model.memory(session)
        doomed = {link.key for link in chain.orphans(mem.turn, mem.called)}
        chain.forget(mem.turn, self.rules.current.budgets.max_chain_depth)
        if doomed:
            dropped = self.cache.invalidate(
                lambda e: e.session == session and e.link in doomed, "orphaned"
            )
            log.info("chain.orphaned", session=_label(session), calls=len(doomed), dropped=dropped)

    async def _then_chain(
        self, fetch: Fetch, session: SessionKey, tool: str, args: dict[str, Any], is_mcp: bool
    ) -> Result | None:
        """Make the early call; once its result is in, chain from it."""
        result = await fetch()
        if result is not None:
            value = mcp.call_result(result.reply)[0] if is_mcp else loads_or_none(result.body)
            try:
                self._chain_from(session, tool, args, value)
            except Exception as exc:  # a chain that cannot start never costs the result
                log.warning("chain.failed", tool=tool, error=repr(exc)[:200])
        return result

    # -- firing ---------------------------------------------------------------------

    def _fire(
        self, session: SessionKey, tool: str, args: dict[str, Any], kind: str, depth: int = 0
    ) -> bool:
        origin = self.observer.origin(session)
        if origin is None:
            return False
        return self._fire_for(origin[0], tool, args, kind, session, relay=True, depth=depth)

    def _fire_requested(self, request: dict[str, Any]) -> None:
        """Another replica asks for a call it cannot make (no binding for the client):
        make it if this replica can. The claim keeps two replicas from both making it."""
        client, tool, args = request.get("client"), request.get("tool"), request.get("args")
        if not (isinstance(client, str) and isinstance(tool, str) and isinstance(args, dict)):
            return
        kind = "eager" if request.get("kind") == "eager" else "predicted"
        if self.enabled:
            self._fire_for(client, tool, args, kind, None, relay=False)

    def _fire_for(
        self,
        client: str,
        tool: str,
        args: dict[str, Any],
        kind: str,
        session: SessionKey | None,
        relay: bool,
        depth: int = 0,
    ) -> bool:
        """Fire a call for `session` (None: asked for by another replica); `tool` is the
        name the model calls it by; `depth`: steps of a chain past its decision point.
        Whatever stops it is logged and counted."""
        ruleset = self.rules.current
        target = self.bindings.resolve(client, tool)
        name = tool  # the name it is counted and served under: the server's, for MCP
        if isinstance(target, Target):
            server, name = target.server, target.tool
            decision = ruleset.decide(
                (tool, name), server=server.url, annotations=server.annotations.get(name)
            )
            if not decision.allowed or decision.rule is None:
                return self._skip("rule_denied", tool, kind, session, why=decision.reason)
            agent_session = None
            if decision.rule.session == "agent" and not server.sessionless:
                # the conversation's own session, if the join has seen it and it is open
                if session is not None:
                    agent_session = self.bindings.agent_session(session, server)
                if agent_session is None:
                    return self._skip(
                        "agent_session_unknown", tool, kind, session, server=server.url
                    )
            binding = f"{server.id}|{server.protocol}"
            if agent_session is not None:
                binding += "|" + agent_session
            key = CacheKey.mcp(server.scope, binding, name, args)
            tags = (server.scope, server.url)

            def fetch() -> Coroutine[Any, Any, Result | None]:
                return self._call_mcp(server, name, args, agent_session)

        else:
            planned = self._plan_rest(client, tool, args)
            if planned is None:
                if relay and self._relay(client, tool, args, kind, session):
                    return True
                return self._skip(target.reason, tool, kind, session, **target.detail)
            request, headers, scope = planned
            parts = urlsplit(request.url)
            decision = ruleset.decide(tool, method=request.method, host=parts.hostname)
            if not decision.allowed or decision.rule is None:
                return self._skip("rule_denied", tool, kind, session, why=decision.reason)
            key = CacheKey.rest(scope, request.method, request.url, request.body)
            tags = (scope, rest.origin(request.url))

            def fetch() -> Coroutine[Any, Any, Result | None]:
                return self._call_rest(request, headers, tool)

        if session is not None and ruleset.budgets.max_chain_depth > 0:
            inner, is_mcp = fetch, isinstance(target, Target)

            def fetch() -> Coroutine[Any, Any, Result | None]:
                return self._then_chain(inner, session, tool, args, is_mcp)

        counters = self.accounting.tool(name)
        if ruleset.budgets.backs_off(counters.fired, counters.unused):
            return self._skip(
                "backed_off", tool, kind, session, fired=counters.fired, unused=counters.unused
            )
        # The cap bounds guesses, per conversation. An eager call is the agent's own call
        # started sooner: it adds no load the agent would not make, so it neither waits for
        # guesses nor counts as one (counted, eager calls of busy agents left no room for
        # any guess: most hits came from eager starts only).
        guessing = self._guessing[session]
        if kind != "eager" and guessing >= ruleset.budgets.max_concurrent:
            return self._skip("budget", tool, kind, session, in_flight=guessing)
        ttl, reuse = decision.rule.ttl, decision.rule.reuse
        cell: list[Entry] = []
        if self.store.shared:
            call = fetch

            def fetch() -> Coroutine[Any, Any, Result | None]:
                return self._fetch_shared(key, name, kind, tags, ttl, reuse, call, cell)

        entry = self.cache.start(
            key, name, fetch, ttl=ttl, reuse=reuse, kind=kind, tags=tags, session=session
        )
        if entry is None:
            return False  # the same call is in flight or fetched already
        entry.called_as = tool
        if kind == "chained":
            entry.link, entry.depth = call_key(tool, args), depth
        if kind != "eager":
            self._guessing[session] += 1
            entry.task.add_done_callback(lambda _: self._guessed(session))
        cell.append(entry)
        self.accounting.fired(name, session, kind)
        log.info(
            "speculate.fired",
            tool=name,
            kind=kind,
            session=_label(session),
            **({"called_as": tool} if tool != name else {}),
        )
        return True

    def _guessed(self, session: SessionKey | None) -> None:
        """A guess of `session`'s ended (used, wasted or cancelled): room for another."""
        self._guessing[session] -= 1
        if self._guessing[session] <= 0:
            del self._guessing[session]

    def _skip(
        self, reason: str, tool: str, kind: str, session: SessionKey | None, **detail: Any
    ) -> bool:
        """A call the model made or may make is not made early: say why."""
        self.accounting.skip(reason)
        log.info(
            "speculate.skipped",
            reason=reason,
            tool=tool,
            kind=kind,
            session=_label(session),
            **detail,
        )
        return False

    def _relay(
        self, client: str, tool: str, args: dict[str, Any], kind: str, session: SessionKey | None
    ) -> bool:
        """No binding here: the agent reaches this tool through another replica. Ask the
        replicas that have a binding for this client to fire it, unless a rule that needs
        no binding to match already says never."""
        if not self.store.shared:
            return False
        decision = self.rules.current.decide(tool)
        if decision.rule is not None and not decision.allowed:
            return False
        self.store.relay({"client": client, "tool": tool, "args": args, "kind": kind})
        log.info("speculate.relayed", tool=tool, kind=kind, session=_label(session))
        return True

    async def _fetch_shared(
        self,
        key: CacheKey,
        tool: str,
        kind: str,
        tags: tuple[str, ...],
        ttl: float,
        reuse: int,
        call: Fetch,
        cell: list[Entry],
    ) -> Result | None:
        """Claim the call in the shared store, make it, and share its result."""
        h = result_key(key)
        claimed = await self.store.claim(h, key.scope, tool, tags[1], reuse, ttl)
        if claimed is False:
            raise Superseded(tool)  # in flight or ready on another replica
        if claimed:
            cell[0].shared = h
            self._claimed[h] = key
        try:
            result = await call()
        except BaseException:
            if claimed:
                self.store.settle(h, None)
            raise
        if claimed:
            self.store.settle(h, result, tool, kind)
        return result

    async def _call_mcp(
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
            _failed(tool, got, server=server.url)
            return None
        ewma(self._latency, tool, got.duration_s)
        return got

    def _plan_rest(
        self, client: str, tool: str, args: dict[str, Any]
    ) -> tuple[RestRequest, dict[str, str], str] | None:
        """The request a REST tool call becomes, the headers to send and its scope: from a
        binding declared in the rules, or one learned from this client's traffic."""
        declared = self.rules.current.decide(tool).rule
        template = declared.rest if declared is not None and declared.rest is not None else None
        template = template or self.rest.binding(client, tool)
        if template is None:
            return None
        try:
            request = template.render(args)
        except KeyError:
            return None
        headers = self.rest.headers_for(client, request.url)
        if headers is None:
            return None  # this client sent that host more than one set of credentials
        return request, headers, tool_scope_of(headers, request.url)

    async def _call_rest(
        self, request: RestRequest, headers: dict[str, str], tool: str
    ) -> Result | None:
        data = None if request.body is None else orjson.dumps(request.body)
        if data is not None:
            headers = {**headers, "content-type": "application/json"}
        got = await self._send(request.method, request.url, data, headers)
        if isinstance(got, Result) and not 200 <= got.status < 300:
            got = Failure.of_response("status", got)
        if isinstance(got, Failure):
            _failed(tool, got, url=rest.origin(request.url))
            return None
        ewma(self._latency, tool, got.duration_s)
        return got

    async def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> Result | Failure:
        """Send one of prefire's own requests: the response, whatever its status, or a
        Failure when none came."""
        started = time.monotonic()
        extra: dict[str, Any] = {}
        if self.connect_to is not None:
            url, headers, extra = _connect_to(self.connect_to, url, headers)
        try:
            async with self._client().request(
                method, url, data=data, headers=headers, **extra
            ) as resp:
                body = await resp.read()
                status, ctype = resp.status, resp.headers.get("content-type", "")
                raw_headers = list(resp.raw_headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Failure("unreachable", 0, repr(exc)[:BODY_START])
        return Result(status, raw_headers, body, ctype, time.monotonic() - started)

    def _promotion_wait(self, entry: Entry) -> float:
        """Seconds an agent request may still wait for `entry`'s call in flight."""
        usual = self._latency.get(entry.tool)
        if usual is None:
            bound = PROMOTION_WAIT_UNKNOWN_S
        else:
            bound = min(CALL_TIMEOUT_S, max(PROMOTION_WAIT_MIN_S, PROMOTION_WAIT_FACTOR * usual))
        return entry.fired_at + bound - time.monotonic()

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.verify_tls),  # True: verify as usual
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
                auto_decompress=True,
            )
        return self._http

    async def close(self) -> None:
        self.cache.clear()
        await self.mcp.close()
        if self._http is not None:
            await self._http.close()

    # -- serving ------------------------------------------------------------------

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
        called_as = self._joined(
            self.join.server_call(
                ServerCall(
                    ex.client,
                    ex.session.scope,
                    ex.url,
                    tool,
                    canonical_key(args),
                    mcp_session,
                    agent_id,
                    ex.started,
                )
            )
        )
        if not self.enabled:
            return
        # a call made in this very session (rule `session: agent`), else one in a session
        # of prefire's own, in the protocol version this request speaks
        binding = f"{server.id}|{req.headers.get('mcp-protocol-version', '')}"
        bindings = [binding + "|" + mcp_session] if mcp_session else []
        served = None
        for b in [*bindings, binding]:
            served = await self._take(CacheKey.mcp(server.scope, b, tool, args))
            if served is not None:
                break
        if served is None:
            await self._invalidate_for(tool, server, called_as)
            return
        result = served.result
        # the server's own bytes, answering the agent's JSON-RPC id instead of ours
        body = result.body.replace(orjson.dumps(result.request_id), orjson.dumps(agent_id))
        # the answer belongs to the agent's own MCP session, never to the one prefire made
        # the call in (a client that adopts a response's Mcp-Session-Id would move into it)
        session_header = [(b"mcp-session-id", mcp_session.encode())] if mcp_session else []
        self._served(flow, served, body, _SESSION_HEADER, session_header)

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
        served = await self._take(key) if self.enabled else None
        if served is None:
            if req.method not in ("GET", "HEAD", "OPTIONS"):
                # it may change what was read from this host: drop this scope's reads from it
                tags = (scope, rest.origin(req.url))
                self.cache.invalidate(lambda e: e.tags == tags)
                if self.store.shared:
                    await self.store.invalidate(scope, lambda _tool, tag: tag == tags[1])
            return
        self._served(flow, served, served.result.body)

    async def _take(self, key: CacheKey) -> _Served | None:
        """A result for the agent's request, using one of its serves: this replica's own
        (finished, or still running: promotion), or, with a shared store, another
        replica's (finished, or still running there: waited for, within bounds)."""
        entry = self.cache.lookup(key)
        # a call claimed in the shared store: its serves are counted there, across replicas
        if entry is not None and entry.shared and await self.store.consume(entry.shared) is False:
            return None  # served by another replica already (or expired there)
        if entry is not None:
            asked = time.monotonic()
            taken = await self.cache.take(key, self._promotion_wait)
            if taken is None:
                return None
            result, entry, in_flight = taken
            # promoted: the agent was spared the time the call had already run when it asked
            saved = result.duration_s if not in_flight else asked - entry.fired_at
            return _Served(
                result,
                entry.tool,
                entry.kind,
                saved,
                in_flight,
                first=entry.used == 1,
                session=entry.session,
                depth=entry.depth,
            )
        if not self.store.shared:
            return None
        remote = await self.store.take(result_key(key))
        if remote is None:
            return None
        result, tool, kind, waited = remote
        saved = result.duration_s if waited is None else result.duration_s - waited
        return _Served(result, tool, kind, saved, waited is not None, remote=True)

    def _served(
        self,
        flow: http.HTTPFlow,
        served: _Served,
        body: bytes,
        replaced: frozenset[bytes] = frozenset(),
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer the agent with `body` and the tool server's headers, less the hop-by-hop
        ones and those in `replaced`, plus `headers`."""
        result = served.result
        saved = max(0.0, min(served.saved_s, result.duration_s))
        self.accounting.used(
            served.tool, served.session, served.first, served.promoted, saved, served.kind
        )
        dropped = _HOP_HEADERS | replaced
        flow.response = http.Response.make(
            result.status,
            body,
            [(k, v) for k, v in result.headers if k.lower() not in dropped] + (headers or []),
        )
        flow.metadata["prefire.served"] = served.kind
        flow.metadata["prefire.promoted"] = served.promoted
        flow.metadata["prefire.depth"] = served.depth  # in-process only, never sent
        log.info(
            "speculate.served",
            tool=served.tool,
            kind=served.kind,
            promoted=served.promoted,
            saved_s=round(served.saved_s, 3),
            **({"from_replica": True} if served.remote else {}),
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
        if self.store.shared and (globs or not decision.allowed):
            # before the write goes upstream, so no replica serves a read it changed
            dropped += await self.store.invalidate(server.scope, stale_call)
        if dropped:
            log.info("speculate.invalidated", by=tool, dropped=dropped)

    def _used_elsewhere(self, h: str) -> None:
        """Another replica served (or is waiting for) a call this replica claimed."""
        key = self._claimed.get(h)
        entry = self.cache.lookup(key) if key is not None else None
        if key is None or entry is None or entry.shared != h:
            return
        entry.used += 1  # not wasted: it answered an agent, there (counted there)
        self.cache.end(entry, "used_elsewhere")
        entry.uses_left -= 1
        if entry.uses_left <= 0:
            self.cache.discard(key)

    def _invalidated_elsewhere(self, hashes: list[str]) -> None:
        """A write through another replica dropped shared results; drop our copies."""
        for h in hashes:
            key = self._claimed.get(h)
            entry = self.cache.lookup(key) if key is not None else None
            if key is not None and entry is not None and entry.shared == h:
                self.cache.drop(key, "invalidated")

    def _ended(self, entry: Entry, outcome: str) -> None:
        """An early call ended (see proxy/cache.py): count it."""
        if outcome == "superseded":
            # another replica has the same call in flight or ready: ours never ran
            self.accounting.unfired(entry.tool, entry.session, entry.kind)
            log.info("speculate.superseded", tool=entry.tool)
            return
        self.accounting.ended(entry.tool, entry.session, outcome)
        if outcome not in ("used", "used_elsewhere"):
            log.info("speculate.wasted", tool=entry.tool, why=outcome)


def _failed(tool: str, failure: Failure, **where: str) -> None:
    log.info(
        "speculate.failed",
        tool=tool,
        why=failure.reason,
        status=failure.status or None,
        body=failure.body,
        **where,
    )


def _label(session: SessionKey | None) -> str:
    return "relayed" if session is None else str(session)


def _connect_to(
    connect_to: ConnectTo, url: str, headers: dict[str, str]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The request sent to where `connect_to` says, as if to the URL's own host: same Host
    header, same TLS server name."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host, port = connect_to(parts.hostname or "", parts.port or default)
    target = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
    extra: dict[str, Any] = {"server_hostname": parts.hostname} if parts.scheme == "https" else {}
    return target, {**headers, "host": parts.netloc}, extra
