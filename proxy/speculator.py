"""Decides what to run early and fires it.

Three ways to start early:
- eager: an LLM response has just finished emitting a tool call (the stream is
  still running); the call is certain, so it starts now;
- predicted: a request carrying tool results or a user message went to the LLM;
  the pattern model's candidates start, best expected saving first, within the
  rules' budgets, while the LLM thinks (patterns/policy.py);
- chained: an early call's result arrived; the calls that would follow it start.
Nothing starts unless a rule allows the tool and the proxy knows exactly how the
agent reaches it (a binding: proxy/bindings.py, proxy/mcpclient.py); whatever stops a
call is logged as speculate.skipped with its reason and counted.

The parts it drives: the planner turns a wanted call into one it can make, or says why
not (proxy/planner.py); the caller makes the calls (proxy/caller.py, over a transport), the
result cache holds them (proxy/cache.py), the responder answers the agent from them
(proxy/responder.py), the store shares them with other replicas (proxy/store/: a call
is claimed there before it is made, and one this replica has no binding for is relayed
to the replicas that have one). The counters are fed facts (proxy/accounting.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import structlog
from lru import LRU

from prefire.patterns.canonical import canonical_key, loads_or_none
from prefire.patterns.chain import Chain, chain_candidates, continuation
from prefire.patterns.events import Event, LLMRequest, SessionKey, ToolCall, ToolsOffered
from prefire.patterns.model import Candidate, PatternModel, call_key
from prefire.patterns.policy import Firing, fire_by_value
from prefire.proxy.accounting import Accounting, Ended, Fact, Fired, Skipped
from prefire.proxy.bindings import Bindings, NoTarget, Target
from prefire.proxy.cache import Clock, Entry, Fetch, Result, ResultCache
from prefire.proxy.caller import Caller
from prefire.proxy.calljoin import Ambiguous, CallJoin, Joined, ModelCall
from prefire.proxy.planner import Plan, Planner, Skip
from prefire.proxy.responder import Responder
from prefire.proxy.rest import RestLearner
from prefire.proxy.store import Store
from prefire.proxy.transport import AiohttpTransport, ConnectTo, Transport
from prefire.rules.files import RulesWatcher
from prefire.wire.observer import Observer
from prefire.wire.providers import mcp

log = structlog.get_logger(__name__)


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
        transport: Transport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.model = model
        self.rules = rules
        self.observer = observer
        self.accounting = accounting
        self.enabled = enabled
        self.bindings = Bindings(clock=clock)
        self.rest = RestLearner(clock=clock)
        self.cache = ResultCache(on_end=self._ended, clock=clock)
        self.caller = Caller(transport or AiohttpTransport(verify_tls, connect_to, clock), clock)
        self.store = store or Store()
        self.planner = Planner(rules, self.bindings, self.rest, self.caller)
        # pairs each model-side tool call with the tools/call that runs it
        self.join = CallJoin()
        self._chains: LRU = LRU(10_000)  # session -> Chain of its early calls
        # guesses (predicted and chained calls) in flight, per conversation (None: relayed
        # from another replica); the cap bounds each conversation's, as replay does
        self._guessing: Counter[SessionKey | None] = Counter()
        self.on_join: list[Callable[[Joined], None]] = [self.bindings.learn]
        self.responder = Responder(
            bindings=self.bindings,
            rest=self.rest,
            join=self.join,
            joined=self._joined,
            cache=self.cache,
            store=self.store,
            rules=rules,
            usual=self.caller.usual,
            note=self.note,
            enabled=enabled,
            clock=clock,
        )

    def note(self, fact: Fact) -> None:
        """Every counted fact goes through here, to the accounting."""
        self.accounting.record(fact)

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
            self._model_call(event, event.arguments)

    def _model_call(self, event: ToolCall, arguments: dict[str, Any]) -> None:
        """The LLM emitted a tool call: join it with the server's, learn its REST shape."""
        origin = self.observer.origin(event.session)
        if origin is None:
            return
        call = ModelCall(
            origin[0],
            event.session,
            event.call_id,
            event.name,
            canonical_key(arguments),
            event.t,
        )
        self._joined(self.join.model_call(call))
        if isinstance(self.bindings.resolve(origin[0], event.name), NoTarget):
            self.rest.call_seen(origin[0], event.name, arguments)

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
        firing = fire_by_value(
            self.model.predict(session),
            self._cost(session),
            ruleset.budgets,
            fire,
            self._guessing[session],
        )
        self._left_out(firing, session)

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

        firing = fire_by_value(
            candidates, self._cost(session), budgets, fire, self._guessing[session]
        )
        self._left_out(firing, session, depth=link.depth + 1)
        if candidates and not firing.started and not firing.left_out:
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

    def fire_requested(self, request: dict[str, Any]) -> None:
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
        plan = self.planner.plan(client, tool, args, session)
        if isinstance(plan, Skip):
            if plan.relayable and relay and self._relay(client, tool, args, kind, session):
                return True
            return self._skip(plan.reason, tool, kind, session, **plan.detail)
        budgets = self.rules.current.budgets
        counters = self.accounting.tool(plan.name)
        if budgets.backs_off(counters.fired, counters.unused):
            return self._skip(
                "backed_off", tool, kind, session, fired=counters.fired, unused=counters.unused
            )
        # The cap bounds guesses, per conversation. An eager call is the agent's own call
        # started sooner: it adds no load the agent would not make, so it neither waits for
        # guesses nor counts as one (counted, eager calls of busy agents left no room for
        # any guess: most hits came from eager starts only).
        guessing = self._guessing[session]
        if kind != "eager" and guessing >= budgets.max_concurrent:
            return self._skip("budget", tool, kind, session, in_flight=guessing)
        return self._start(plan, tool, args, kind, session, depth)

    def _start(
        self,
        plan: Plan,
        tool: str,
        args: dict[str, Any],
        kind: str,
        session: SessionKey | None,
        depth: int = 0,
    ) -> bool:
        """Start the planned call, unless the same call is in flight or fetched already."""
        rule = plan.rule
        chain = session is not None and self.rules.current.budgets.max_chain_depth > 0
        make = partial(self._make, plan=plan, tool=tool, args=args, chain=chain)

        def run(entry: Entry) -> Coroutine[Any, Any, Result | None]:
            return self.store.run(entry, partial(make, entry), rule.ttl, rule.reuse)

        entry = self.cache.start(
            plan.key, plan.name, run, rule.ttl, rule.reuse, kind, plan.tags, session
        )
        if entry is None:
            return False
        entry.called_as = tool
        if kind == "chained":
            entry.link, entry.depth = call_key(tool, args), depth
        if kind != "eager":
            self._guessing[session] += 1
            entry.task.add_done_callback(lambda _: self._guessed(session))
        log.info(
            "speculate.fired",
            tool=plan.name,
            kind=kind,
            session=_label(session),
            **({"called_as": tool} if tool != plan.name else {}),
        )
        return True

    async def _make(
        self, entry: Entry, *, plan: Plan, tool: str, args: dict[str, Any], chain: bool
    ) -> Result | None:
        """The call goes out (the shared store's claim, if any, is ours): count it."""
        entry.made = True
        self.note(Fired(entry.tool, entry.session, entry.kind))
        if not chain or entry.session is None:
            return await plan.call()
        return await self._then_chain(plan.call, entry.session, tool, args, plan.is_mcp)

    def _guessed(self, session: SessionKey | None) -> None:
        """A guess of `session`'s ended (used, wasted or cancelled): room for another."""
        self._guessing[session] -= 1
        if self._guessing[session] <= 0:
            del self._guessing[session]

    def _skip(
        self, reason: str, tool: str, kind: str, session: SessionKey | None, **detail: Any
    ) -> bool:
        """A call the model made or may make is not made early: say why."""
        self.note(Skipped(reason))
        log.info(
            "speculate.skipped",
            reason=reason,
            tool=tool,
            kind=kind,
            session=_label(session),
            **detail,
        )
        return False

    def _left_out(self, firing: Firing, session: SessionKey, depth: int = 0) -> None:
        """Calls worth starting that a budget left out are not made early: say so, once."""
        if not firing.left_out:
            return
        for _ in firing.left_out:
            self.note(Skipped("budget"))
        log.info(
            "speculate.skipped",
            reason="budget",
            tools=[c.tool for c in firing.left_out],
            room=firing.room,
            depth=depth,
            session=_label(session),
        )

    def _relay(
        self, client: str, tool: str, args: dict[str, Any], kind: str, session: SessionKey | None
    ) -> bool:
        """No binding here: the agent reaches this tool through another replica. Ask the
        replicas that have a binding for this client to fire it, unless a rule that needs
        no binding to match already says never."""
        decision = self.rules.current.decide(tool)
        if decision.rule is not None and not decision.allowed:
            return False
        if not self.store.relay({"client": client, "tool": tool, "args": args, "kind": kind}):
            return False  # no other replica to ask
        log.info("speculate.relayed", tool=tool, kind=kind, session=_label(session))
        return True

    # -- what other replicas did (proxy/store/) -----------------------------------------

    def used_elsewhere(self, name: str) -> None:
        """Another replica served (or is waiting for) a call this replica claimed."""
        entry = self.store.holder(name)
        if entry is None or self.cache.lookup(entry.key) is not entry:
            return
        entry.used += 1  # not wasted: it answered an agent, there (counted there)
        self.cache.end(entry, "used_elsewhere")
        entry.uses_left -= 1
        if entry.uses_left <= 0:
            self.cache.discard(entry.key)

    def invalidated_elsewhere(self, names: list[str]) -> None:
        """A write through another replica dropped shared results; drop our copies."""
        for name in names:
            entry = self.store.holder(name)
            if entry is not None and self.cache.lookup(entry.key) is entry:
                self.cache.drop(entry.key, "invalidated")

    def _ended(self, entry: Entry, outcome: str) -> None:
        """An early call ended (see proxy/cache.py): count it, if it was made."""
        if not entry.made:
            # superseded: another replica has the same call in flight or ready; else it
            # was dropped before it started
            log.info(
                "speculate.superseded" if outcome == "superseded" else "speculate.unmade",
                tool=entry.tool,
                why=outcome,
            )
            return
        self.note(Ended(entry.tool, entry.session, outcome))
        if outcome not in ("used", "used_elsewhere"):
            log.info("speculate.wasted", tool=entry.tool, why=outcome)

    async def close(self) -> None:
        self.cache.clear()
        await self.caller.close()


def _label(session: SessionKey | None) -> str:
    return "relayed" if session is None else str(session)
