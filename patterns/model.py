"""The pattern model: events in, ranked candidate calls out. Pure and deterministic.

Used unchanged by the live proxy and by replay. A decision point is an
LLMRequest (a request carrying a user message or tool results); `predict`
answers for the session's current decision point.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lru import LRU

from prefire.patterns.affordance import Affordance
from prefire.patterns.calibration import Calibrator, ToolCalibration
from prefire.patterns.canonical import canonical_key
from prefire.patterns.context import MAX_TEXTS_SEEN, REPEATED_IN, split_context
from prefire.patterns.controlflow import END, START, ControlFlow, contexts
from prefire.patterns.dataflow import ArgHypotheses, discover, identity
from prefire.patterns.events import (
    Event,
    LLMRequest,
    SessionKey,
    ToolCall,
    ToolExchange,
    ToolResult,
    ToolsOffered,
    UserMessage,
    toolset_id,
)
from prefire.patterns.fanout import FanOut
from prefire.patterns.intent import Intent, tokens
from prefire.patterns.latency import Latencies, ewma
from prefire.patterns.memory import MAX_CALLS, MAX_USER_TEXTS, CallRecord, SessionMemory
from prefire.patterns.oneshot import OneShot
from prefire.patterns.priors import Priors
from prefire.patterns.reread import Rereads
from prefire.patterns.schema import ArgSpec, ToolSchema, conforms, parse_tool, snap
from prefire.patterns.typed import reference_day, stated_count, stated_date
from prefire.patterns.values import at_path

MIN_TOOL_PROBABILITY = 0.05
SHARED_SCOPE = "*"  # the scope of what shared tools learn
MAX_KEY_ARGS = 512  # canonical bytes; longer arguments are identified by a digest
TOOLS_CONSIDERED = 4
FAN_OUT_LIMIT = 8
PRIOR_UNTIL = 3  # trials of an argument's best learned source after which priors are quiet
MAX_COMBINATIONS = 64  # of argument values, ranked to find the likeliest


@dataclass(frozen=True, slots=True)
class Candidate:
    tool: str
    arguments: Any
    probability: float
    # expected seconds saved: probability x min(expected LLM time, expected tool latency)
    value: float
    # the call's identity, call_key(tool, arguments)
    key: bytes = b""

    @classmethod
    def of(cls, tool: str, arguments: Any, probability: float, value: float) -> Candidate:
        return cls(tool, arguments, probability, value, call_key(tool, arguments))


def call_key(tool: str, arguments: Any) -> bytes:
    """The identity of a call: tool name and canonical arguments, or a digest of them
    when they are long (keys are kept per session and per prediction)."""
    args = canonical_key(arguments)
    if len(args) > MAX_KEY_ARGS:
        args = b"#" + hashlib.blake2b(args, digest_size=16).digest()
    return tool.encode() + b"\0" + args


@dataclass(slots=True)
class _Decision:
    keys: list[tuple[Any, ...]]
    t: float
    first_call_t: float | None = None
    # the words of the user message this decision answers, if it follows one
    words: frozenset[str] | None = None
    # what was predicted here, (raw rank, raw probability, call key, tool, calibrated
    # probability), for calibration
    predicted: list[tuple[int, float, bytes, str, float]] | None = None
    # the two experts' tool distributions at this point, computed once
    experts: tuple[dict[str, float], dict[str, float]] | None = None
    # tools the application never called that the latest results make callable
    afforded: tuple[str, ...] = ()
    # (touching tool, earlier call) for earlier calls the latest turn touched (reread.py)
    touched: tuple[tuple[str, CallRecord], ...] = ()


class PatternModel:
    def __init__(
        self,
        max_sessions: int = 4_096,
        max_arg_keys: int = 100_000,
        default_tool_s: float = 1.0,
        default_llm_s: float = 2.0,
    ) -> None:
        self.flow = ControlFlow()
        self.intent = Intent()
        self.calibrator = Calibrator()
        self.tool_calibration = ToolCalibration()
        # app -> [mean P the control flow gave the called tools, same for the intent model],
        # over decisions that answer a user message: how far to trust each
        self.trust: LRU[str, list[float]] = LRU(max_arg_keys)
        # (app, tool, arg name) and (app, previous tool, tool, arg name) -> ArgHypotheses
        self.args: LRU[tuple[str, ...], ArgHypotheses] = LRU(max_arg_keys)
        # (app, tool) and (app, previous tool, tool) -> Counter of argument-name tuples
        self.keysets: LRU[tuple[str, ...], Counter[tuple[str, ...]]] = LRU(max_arg_keys)
        self.offered: LRU[str, frozenset[str]] = LRU(max_arg_keys)  # app -> frozenset of tool names
        # app -> [calls that repeated one, calls]
        self.repeats: LRU[str, list[float]] = LRU(max_arg_keys)
        # (app, tool) -> mean number of calls of the tool in a turn that calls it (fan-out width)
        self.width: LRU[tuple[str, str], float] = LRU(max_arg_keys)
        # (app, digest of a user text) -> the sessions that sent it, up to REPEATED_IN + 1
        # (repeated texts are looked up every session, so they stay in it while prompts churn)
        self.texts_seen: LRU[tuple[str, str], tuple[str, ...]] = LRU(MAX_TEXTS_SEEN)
        self.latency = Latencies(default_tool_s, default_llm_s)
        # app -> {tool: what its JSON schema says of its arguments} (sent with every
        # request, so not learned state)
        self.schemas: LRU = LRU(max_arg_keys)
        self.priors = Priors()
        self.one_shot = OneShot()
        self.fanout = FanOut(max_arg_keys)
        self.affordance = Affordance()
        self.rereads = Rereads(max_arg_keys)
        # tools whose arguments are learned across scopes (tenants); the rules say which
        self.shared: Callable[[str], bool] = _never
        self._sessions: LRU = LRU(max_sessions)  # SessionKey -> SessionMemory
        self._decisions: LRU = LRU(max_sessions)  # SessionKey -> _Decision
        self._call_t: LRU = LRU(max_sessions * 8)  # (session, call id) -> (app, tool, t)

    # -- learning ----------------------------------------------------------

    def memory(self, session: SessionKey) -> SessionMemory:
        mem = self._sessions.get(session)
        if mem is None:
            mem = self._sessions[session] = SessionMemory(app=(session.scope, ""))
        return mem

    def observe(self, event: Event) -> None:
        mem = self.memory(event.session)
        if isinstance(event, ToolsOffered):
            if event.api != "mcp" and event.tools:
                mem.app = (event.session.scope, toolset_id(event.tools))
                self.offered[mem.app] = frozenset(t.name for t in event.tools)
                if mem.app not in self.schemas:  # an application's schemas are read once
                    parsed = {t.name: parse_tool(t.parameters) for t in event.tools}
                    self.schemas[mem.app] = {k: v for k, v in parsed.items() if v is not None}
        elif isinstance(event, UserMessage):
            # a date stated anywhere (the system prompt, a client's context) dates the session
            mem.stated_day = stated_date(event.text) or mem.stated_day
            if event.role == "user" and len(mem.pending_texts) < MAX_USER_TEXTS:
                mem.pending_texts.append(event.text)
        elif isinstance(event, LLMRequest):
            mem.request_day = reference_day(event.t) or mem.request_day
            self._take_user_texts(event.session, mem)
            self._close_turn(event.session, mem)
            mem.turn += 1
            self._decisions[event.session] = _Decision(
                contexts(mem.app, list(mem.names)),
                event.t,
                words=mem.new_words,
                afforded=self._afforded(mem),
                touched=self.rereads.touched(mem),
            )
            mem.new_words = None
        elif isinstance(event, ToolCall):
            self._observe_call(event, mem)
        elif isinstance(event, ToolResult):
            rec = mem.add_result(event.call_id, event.content)
            started = self._call_t.pop((event.session, event.call_id), None)
            if rec is not None and started is not None:
                self.latency.observe_tool(started[0], started[1], event.t - started[2])
        elif isinstance(event, ToolExchange):
            self.latency.observe_tool(mem.app, event.name, event.duration_s)

    def _take_user_texts(self, session: SessionKey, mem: SessionMemory) -> None:
        """Sort the turn's user messages into the user's words and the client's context.

        A text other sessions sent verbatim is context when the user still says
        something after it in this turn; the last one is always the user's.
        """
        texts, mem.pending_texts = mem.pending_texts, []
        for i, text in enumerate(texts):
            user, blocks = split_context(text)
            for block in blocks:
                mem.add_text(block, context=True)
            if not user.strip():
                continue
            if self._repeated(mem.app, session, user) and i < len(texts) - 1:
                mem.add_text(user, context=True)
            else:
                mem.add_text(user, context=False)
                mem.new_words = tokens(user)

    def _repeated(self, app: Any, session: SessionKey, text: str) -> bool:
        """Whether REPEATED_IN other sessions of the application sent this text."""
        key = (app, hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
        senders = self.texts_seen.get(key) or ()
        if session.conversation not in senders and len(senders) <= REPEATED_IN:
            self.texts_seen[key] = (*senders, session.conversation)
        return len([s for s in senders if s != session.conversation]) >= REPEATED_IN

    def end_session(self, session: SessionKey) -> None:
        """The session is over: its last decision point led to no tool call."""
        mem = self._sessions.get(session)
        if mem is not None:
            self._close_turn(session, mem)
            del self._sessions[session]
        self._decisions.pop(session, None)

    def _close_turn(self, session: SessionKey, mem: SessionMemory) -> None:
        decision = self._decisions.pop(session, None)
        if decision is not None:
            called = Counter(c.name for c in mem.turn_calls)
            if decision.predicted:
                keys = {c.key for c in mem.turn_calls}
                for rank, raw, key, tool, p in decision.predicted:
                    self.calibrator.observe(mem.app, rank, raw, key in keys)
                    group, pool = _groups(mem.app, decision)
                    self.tool_calibration.observe(group, pool, tool, p, key in keys)
            if decision.words is not None:
                self._learn_trust(mem.app, decision, set(called))
                if called:
                    self.intent.observe(mem.app, decision.words, set(called))
            self.flow.observe(decision.keys, set(called))
            for tool in decision.afforded:
                self.affordance.observe(tool in called)
            keys = {c.key for c in mem.turn_calls}
            for toucher, rec in decision.touched:
                self.rereads.observe(mem.app, toucher, rec.name, rec.key in keys)
            text = mem.user_texts[-1] if mem.user_texts else None
            for tool, n in called.items():
                ewma(self.width, (mem.app, tool), n)
                # the list's length matters only where the user said how many
                asked = text is not None and stated_count(text) is not None
                list_len = _list_taken_from(mem, tool) if asked else None
                self.fanout.observe(mem.app, tool, n, text, list_len)
        mem.turn_calls = []

    def _experts(self, app: Any, decision: _Decision) -> tuple[dict[str, float], dict[str, float]]:
        """(control flow's, intent model's) P(tool in the next turn) at this decision."""
        if decision.experts is None:
            flow = self.flow.predict(decision.keys)
            intent = self.intent.predict(app, decision.words) if decision.words is not None else {}
            decision.experts = (flow, intent)
        return decision.experts

    def _learn_trust(self, app: Any, decision: _Decision, called: set[str]) -> None:
        outcome = called or {END}
        scores = [
            sum(d.get(t, 0.0) for t in outcome) / len(outcome) for d in self._experts(app, decision)
        ]
        old = self.trust.get(app) or [0.5, 0.5]
        self.trust[app] = [o + 0.1 * (n - o) for o, n in zip(old, scores, strict=True)]

    def _tool_probabilities(self, app: Any, decision: _Decision) -> dict[str, float]:
        probs, intent = self._experts(app, decision)
        if not intent:
            return probs
        trust_flow, trust_intent = self.trust.get(app) or [0.5, 0.5]
        if trust_flow + trust_intent <= 0:
            return probs
        w = trust_intent / (trust_flow + trust_intent)
        # the intent model does not speak of END: scale the flow's P(END) along with the rest
        return {
            t: w * intent.get(t, 0.0) + (1 - w) * probs.get(t, 0.0)
            for t in set(probs) | set(intent)
        }

    def _observe_call(self, event: ToolCall, mem: SessionMemory) -> None:
        decision = self._decisions.get(event.session)
        if decision is None:  # a call with no request before it (capture began mid-session)
            mem.turn += 1
            decision = self._decisions[event.session] = _Decision(
                contexts(mem.app, list(mem.names)), event.t
            )
        if decision.first_call_t is None:
            decision.first_call_t = event.t
            self.latency.observe_llm(mem.app, event.t - decision.t)
        key = call_key(event.name, event.arguments)
        repeats = self.repeats.get(mem.app) or [0.0, 0.0]
        self.repeats[mem.app] = [repeats[0] + (key in mem.called), repeats[1] + 1]
        if len(mem.called) < 4 * MAX_CALLS:
            mem.called.add(key)
        args = event.arguments
        if isinstance(args, dict):
            app = self._args_app(mem.app, event.name)
            keyset_key = (app, event.name)
            counts = self.keysets.get(keyset_key)
            schema = self.schemas.get(mem.app, {}).get(event.name)
            if counts is None:
                counts = self.keysets[keyset_key] = Counter()
                if schema is not None:  # how often a first call sends just the required names
                    self.priors.observe_keyset(
                        tuple(sorted(args)) == tuple(sorted(schema.required))
                    )
            counts[tuple(sorted(args))] += 1
            prev = mem.names[-1] if mem.names else START
            after = self.keysets.get((app, prev, event.name))
            if after is None:
                after = self.keysets[(app, prev, event.name)] = Counter()
            after[tuple(sorted(args))] += 1
            for name, value in args.items():
                if schema is not None and _before_evidence(self.args.get((app, event.name, name))):
                    self.priors.observe(event.name, name, schema.args.get(name), value, mem)
                explained_by = discover(value, mem, (event.name, name))
                # sources are learned for the tool in general and after the previous tool
                general = (app, event.name, name)
                for hkey in (general, (app, prev, event.name, name)):
                    hyps = self.args.get(hkey)
                    if hyps is None:
                        hyps = self.args[hkey] = ArgHypotheses()
                    # one-shot outcomes are counted once, on the tool's general hypotheses
                    first = (
                        functools.partial(self.one_shot.observe, (app, event.name))
                        if hkey is general
                        else None
                    )
                    hyps.observe(value, mem, explained_by, first)
        mem.add_call(event.call_id, event.name, args, key)
        self._call_t[(event.session, event.call_id)] = (mem.app, event.name, event.t)

    def _afforded(self, mem: SessionMemory) -> tuple[str, ...]:
        schemas = self.schemas.get(mem.app)
        if not schemas:
            return ()
        return self.affordance.afforded(
            schemas, mem, lambda tool: (self._args_app(mem.app, tool), tool) not in self.keysets
        )

    def _args_app(self, app: Any, tool: str) -> Any:
        """Whose argument sources a tool's calls learn from and predict with: the
        application in its scope, or, for a tool the rules share, in every scope."""
        return (SHARED_SCOPE, app[1]) if self.shared(tool) else app

    # -- prediction --------------------------------------------------------

    def predict(self, session: SessionKey, limit: int = 8) -> list[Candidate]:
        """Candidate calls for the session's current decision point, most probable first."""
        decision = self._decisions.get(session)
        mem = self._sessions.get(session)
        if decision is None or mem is None or decision.first_call_t is not None:
            return []
        return self._rank(mem, decision, limit)

    def predict_after(self, mem: SessionMemory, limit: int = 8) -> list[Candidate]:
        """Candidates for a decision point after what `mem` holds, which may be a
        provisional continuation (patterns/chain.py): nothing is learned or recorded."""
        decision = _Decision(
            contexts(mem.app, list(mem.names)), 0.0, predicted=[], afforded=self._afforded(mem)
        )
        return self._rank(mem, decision, limit)

    def _rank(self, mem: SessionMemory, decision: _Decision, limit: int) -> list[Candidate]:
        probs = self._tool_probabilities(mem.app, decision)
        if decision.afforded:
            p_afforded = self.affordance.probability()
            probs = {**probs, **{t: max(probs.get(t, 0.0), p_afforded) for t in decision.afforded}}
        offered = self.offered.get(mem.app)
        tools = sorted(
            (
                (p, t)
                for t, p in probs.items()
                if t != END and p >= MIN_TOOL_PROBABILITY and (offered is None or t in offered)
            ),
            reverse=True,
        )[:TOOLS_CONSIDERED]
        llm_s = self.latency.llm_s(mem.app)
        out: dict[bytes, Candidate] = {}
        for p_tool, tool in tools:
            # a tool's candidates are no likelier than the tool: once `limit` candidates
            # beat it, no later tool can enter the answer; nor can a call of it less
            # likely than the limit-th candidate, so its arguments stop being worked out
            # as soon as they cannot beat that
            floor = sorted(c.probability for c in out.values())[-limit] if len(out) >= limit else 0
            if floor >= p_tool:
                break
            saving = min(llm_s, self.latency.tool_s(mem.app, tool))
            repeats, calls = self.repeats.get(mem.app) or [0.0, 0.0]
            # how often this application repeats a call it already made in a session
            repeat_rate = (repeats + 0.5) / (calls + 1.0)
            for args, p_args in self._arguments(mem, tool, floor / p_tool):
                p = p_tool * p_args
                cand = Candidate.of(tool, args, p, p * saving)
                if cand.key in mem.called:
                    p *= repeat_rate
                    cand = Candidate(tool, args, p, p * saving, cand.key)
                if cand.key not in out or out[cand.key].probability < p:
                    out[cand.key] = cand
        for toucher, rec in decision.touched:
            # a record the latest turn touched, read again as it was
            p = self.rereads.probability(mem.app, toucher, rec.name)
            if p > 0 and (rec.key not in out or out[rec.key].probability < p):
                saving = min(llm_s, self.latency.tool_s(mem.app, rec.name))
                out[rec.key] = Candidate(rec.name, rec.arguments, p, p * saving, rec.key)
        raw = sorted(out.values(), key=lambda c: (-c.probability, c.tool, c.key))[:limit]
        first = decision.predicted is None
        predicted: list[tuple[int, float, bytes, str, float]] = []
        calibrated = []
        for i, c in enumerate(raw):
            p = self.calibrator.calibrated(mem.app, i, c.probability)
            predicted.append((i, c.probability, c.key, c.tool, p))
            p = self.tool_calibration.corrected(*_groups(mem.app, decision), c.tool, p)
            saving = c.value / c.probability if c.probability > 0 else 0.0
            calibrated.append(Candidate(c.tool, c.arguments, p, p * saving, c.key))
        if first:
            decision.predicted = predicted
        return sorted(calibrated, key=lambda c: (-c.probability, c.tool, c.key))

    def _keyset(
        self, app: Any, prev: str, tool: str, schema: ToolSchema | None
    ) -> tuple[tuple[str, ...], float] | None:
        """The argument names a call of `tool` likely sends, and how likely."""
        # the names sent after the previous tool where they are as sure as in general (a
        # tool is called with other optional arguments at another step)
        counts = _sharper_keys(self.keysets.get((app, prev, tool)), self.keysets.get((app, tool)))
        if counts:
            names, seen = counts.most_common(1)[0]
            return names, seen / sum(counts.values())
        if schema is not None and schema.required:
            # never called here: the schema's required names, as often as first calls send them
            return tuple(sorted(schema.required)), self.priors.keyset_weight()
        return None

    def _values(
        self,
        mem: SessionMemory,
        key: tuple[Any, str, str, str],
        schema: ToolSchema | None,
        prior: Callable[[tuple[Any, ...]], float],
    ) -> list[tuple[Any, float, bool]]:
        """One argument's likeliest values: from its learned sources (after the previous
        tool or in general, the sharper), then the schema's priors for what they leave,
        as the schema allows them. `key` is (app, previous tool, tool, argument name)."""
        app, _, tool, name = key
        hyps = _sharper(self.args.get(key), self.args.get((app, tool, name)))
        values = hyps.values(mem, prior=prior) if hyps is not None else []
        spec = schema.args.get(name) if schema is not None else None
        remaining = 1.0 - sum(p for _, p, _ in values)
        if schema is not None and remaining >= 0.05 and _before_evidence(hyps):
            known = {identity(v) for v, _, _ in values}
            values += [
                v
                for v in self.priors.values(tool, name, spec, mem, remaining)
                if identity(v[0]) not in known
            ]
        if spec is not None:
            values = [(_snapped(v, fan, spec), p, fan) for v, p, fan in values]
            values = [v for v in values if _fits(v[0], v[2], spec)]
        return values

    def _arguments(
        self, mem: SessionMemory, tool: str, floor: float = 0.0
    ) -> list[tuple[Any, float]]:
        """The likeliest arguments of a call of `tool`, each with P(arguments | tool);
        none whose probability is under `floor`."""
        app = self._args_app(mem.app, tool)
        schema: ToolSchema | None = self.schemas.get(mem.app, {}).get(tool)
        prev = mem.names[-1] if mem.names else START
        keyset = self._keyset(app, prev, tool, schema)
        if keyset is None:
            return []
        names, p_keyset = keyset
        options: list[list[tuple[str, Any, float, bool]]] = []
        bound = p_keyset  # the likeliest combination's probability, so far
        prior = functools.partial(self.one_shot.prior, (app, tool))
        # a fan-out source only speaks for tools that are called several times a turn
        fans_out = self.width.get((mem.app, tool), 1.0) >= 1.5
        for name in names:
            values = self._values(mem, (app, prev, tool, name), schema, prior)
            values = [v for v in values if fans_out or not v[2]]
            if not values:
                return []
            bound *= max(p for _, p, _ in values)
            if bound < floor:
                return []
            options.append([(name, v, p, fan) for v, p, fan in values])
        return self._combine(mem, tool, options, p_keyset)

    def _combine(
        self,
        mem: SessionMemory,
        tool: str,
        options: list[list[tuple[str, Any, float, bool]]],
        p_keyset: float,
    ) -> list[tuple[Any, float]]:
        """Whole argument objects from each argument's (name, value, probability, fans
        out) options, with their probabilities."""
        results: list[tuple[Any, float]] = []
        text = mem.user_texts[-1] if mem.user_texts else None
        # the likeliest few combinations of the arguments' values, not the first few
        combos = sorted(
            itertools.islice(itertools.product(*options), MAX_COMBINATIONS),
            key=lambda combo: -math.prod(option[2] for option in combo),
        )
        for combo in combos[:4]:
            p = p_keyset
            fans: dict[str, list[Any]] = {}
            args: dict[str, Any] = {}
            for name, value, p_value, fan in combo:
                p *= p_value
                if fan:
                    fans[name] = value[:FAN_OUT_LIMIT]
                else:
                    args[name] = value
            widths = {len(v) for v in fans.values()}
            if not fans:
                results.append((args, p))
            elif len(widths) == 1 and 0 not in widths:
                # arguments fanning out over lists as long go together, element by element
                # (each place's lat with its lon); element i is called as often as turns
                # took more than i of a list, or as the user's words say ("the top three")
                shares = self.fanout.shares(mem.app, tool, text, widths.pop())
                results += [
                    ({**args, **{k: v[i] for k, v in fans.items()}}, p * share)
                    for i, share in enumerate(shares)
                ]
        return results


def _never(tool: str) -> bool:
    return False


def _groups(app: Any, decision: _Decision) -> tuple[Any, Any]:
    """Whose records a tool's candidates are calibrated by: the application's, and the
    same tool's in every application of the scope (its tool sets change; its tools
    mostly do not); in both, a request's opening calls apart from the calls after them
    (the first come from the user's words, the rest from results, not equally sure)."""
    opening = decision.words is not None
    return (app, opening), (app[0], "*", opening)


def _list_taken_from(mem: SessionMemory, tool: str) -> int | None:
    """The length of the earlier result list this turn's calls of `tool` took their
    first argument from, or None when it took none from a list."""
    first = next((c for c in mem.turn_calls if c.name == tool), None)
    if first is None or not isinstance(first.arguments, dict) or not first.arguments:
        return None
    value = next(iter(first.arguments.values()))
    for rec, ref, _ in mem.lookup(value):
        if ref.part != "res":
            continue
        for i in range(len(ref.path) - 1, -1, -1):
            if isinstance(ref.path[i], int):
                items = at_path(rec.result, ref.path[:i])
                return len(items) if isinstance(items, list) else None
    return None


def _before_evidence(hyps: ArgHypotheses | None) -> bool:
    """Whether schema priors speak for this argument: until its best learned source has
    been tried PRIOR_UNTIL times. A prior that is right is found as a learned source
    the first time it explains a value, and from then on earns its own evidence."""
    if hyps is None or not hyps.ranked:
        return True
    return hyps.stats[hyps.ranked[0][0]].trials < PRIOR_UNTIL


def _snapped(value: Any, fans_out: bool, spec: ArgSpec) -> Any:
    """The value (each element, for a fan-out) as the enum member it names."""
    if fans_out and isinstance(value, list):
        return [snap(v, spec) for v in value]
    return snap(value, spec)


def _fits(value: Any, fans_out: bool, spec: ArgSpec) -> bool:
    """Whether a predicted value (each element, for a fan-out) has a JSON type the
    schema allows, in the form it states."""
    if fans_out:
        return isinstance(value, list) and all(conforms(v, spec) for v in value)
    return conforms(value, spec)


def _sharper_keys(
    specific: Counter[tuple[str, ...]] | None, general: Counter[tuple[str, ...]] | None
) -> Counter[tuple[str, ...]] | None:
    """The argument names counted after the previous tool where their likeliest set is
    at least as likely as the likeliest set counted for the tool in general."""
    if not specific:
        return general
    if not general:
        return specific
    share = max(specific.values()) / sum(specific.values())
    return specific if share >= max(general.values()) / sum(general.values()) else general


def _sharper(specific: ArgHypotheses | None, general: ArgHypotheses | None) -> ArgHypotheses | None:
    """The hypotheses learned after the previous tool where their best source is at
    least as reliable as the best one learned for the tool in general."""
    if specific is None or not specific.ranked:
        return general
    if general is None or not general.ranked:
        return specific
    return specific if specific.ranked[0][1] >= general.ranked[0][1] else general
