"""Provisional continuations: predict past calls the agent has not seen yet.

An early call's result usually arrives while the LLM still thinks, and it often holds
what the next call needs (search results hold the ids the details calls take). A
provisional continuation is the session's real memory with speculative (call, result)
pairs laid over it, one layer per step of a chain; the model predicts from it as from
a decision point after them. Nothing is learned from it and the session's memory is
untouched: the layer is a copy, dropped once the prediction is made, so the agent's
real calls replace it as they arrive. Pure, as the rest of patterns/.

Chaining is shared by the live speculator and replay: `chain_candidates` scales the
model's candidates by the probability of the chain they continue (the product along
it), and `Chain` tracks which early calls hang on which.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prefire.patterns.events import SessionKey
from prefire.patterns.memory import SessionMemory
from prefire.patterns.model import Candidate, PatternModel, call_key


@dataclass(frozen=True, slots=True)
class Speculative:
    """An early call the agent has not seen: its result, if it has arrived."""

    tool: str
    arguments: Any
    result: Any = None
    has_result: bool = True


def fork(mem: SessionMemory) -> SessionMemory:
    """A copy of `mem` that calls can be added to without touching `mem`: the
    containers are copied, the call records (never changed once made) are shared."""
    f = copy.copy(mem)
    f.calls = deque(mem.calls, maxlen=mem.calls.maxlen)
    f.by_id = dict(mem.by_id)
    f.index = {k: list(v) for k, v in mem.index.items()}
    f.names = deque(mem.names, maxlen=mem.names.maxlen)
    f.turn_calls = []
    f.resolved = {}
    f.resolved_turn = -1
    f.called = set(mem.called)
    f.used = {k: set(v) for k, v in mem.used.items()}
    f.pending_texts = []
    return f


def continuation(
    model: PatternModel,
    session: SessionKey,
    layers: Sequence[Sequence[Speculative]],
    limit: int = 8,
) -> list[Candidate]:
    """The model's candidates for the decision point after the session's real state plus
    `layers` (each a step of speculative calls, oldest first), most probable first. The
    probabilities are conditional on the layers coming true."""
    mem = model._sessions.get(session)
    if mem is None or not layers:
        return []
    f = fork(mem)
    for i, layer in enumerate(layers):
        f.turn += 1
        f.turn_calls = []
        for j, call in enumerate(layer):
            key = call_key(call.tool, call.arguments)
            if _answer(f, key, call):
                continue  # the agent made this call already: only its result is new
            call_id = f"~chain{i}.{j}"
            f.add_call(call_id, call.tool, call.arguments, key)
            f.called.add(key)
            if call.has_result:
                f.add_result(call_id, call.result)
    f.turn += 1  # the decision point after the last layer sees its results
    return model.predict_after(f, limit)


def _answer(f: SessionMemory, key: bytes, call: Speculative) -> bool:
    """Give the fork's record of a real call still waiting for its result the early
    call's result (on a copy: the records are shared with the real memory)."""
    for i in range(len(f.calls) - 1, -1, -1):
        rec = f.calls[i]
        if rec.key == key and not rec.has_result:
            if call.has_result:
                twin = replace(rec, keyed=None)
                f.calls[i] = twin
                f.by_id = {k: twin if v is rec else v for k, v in f.by_id.items()}
                f.turn_calls = [twin if c is rec else c for c in f.turn_calls]
                call_id = next((k for k, v in f.by_id.items() if v is twin), None)
                if call_id is not None:
                    f.add_result(call_id, call.result)
            return True
    return False


def chain_candidates(candidates: Sequence[Candidate], p_chain: float) -> list[Candidate]:
    """The candidates as calls of a chain whose calls so far come true with `p_chain`:
    probability and expected saving scaled by it."""
    return [
        Candidate(c.tool, c.arguments, c.probability * p_chain, c.value * p_chain, c.key)
        for c in candidates
    ]


@dataclass(slots=True)
class Link:
    """An early call and where it hangs in a chain."""

    key: bytes  # call_key(tool, arguments) as the model calls it
    tool: str
    arguments: Any
    depth: int  # 0: started at a decision point (predicted or eager); n: n steps past one
    probability: float  # of the whole chain up to and including this call
    parent: bytes | None
    turn: int  # the session's turn when the chain's first call started
    result: Any = None
    has_result: bool = False
    chained: bool = False  # children were predicted from its result
    children: list[bytes] = field(default_factory=list)


class Chain:
    """One session's early calls as chains: which call's result predicted which."""

    def __init__(self) -> None:
        self.links: dict[bytes, Link] = {}

    def root(self, tool: str, arguments: Any, probability: float, turn: int) -> Link:
        key = call_key(tool, arguments)
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = Link(key, tool, arguments, 0, probability, None, turn)
        return link

    def child(self, parent: Link, c: Candidate) -> Link:
        link = Link(
            c.key, c.tool, c.arguments, parent.depth + 1, c.probability, parent.key, parent.turn
        )
        self.links[c.key] = link
        parent.children.append(c.key)
        return link

    def layers(
        self, link: Link, called: set[bytes], answered: frozenset[bytes] | set[bytes] = frozenset()
    ) -> list[list[Speculative]]:
        """The speculative steps up to `link`: the link itself (with its result) and its
        ancestors the agent has not called yet (what it called is in the real state).
        `answered`: calls whose results the agent has already (no layer repeats them)."""
        path: list[Link] = [link]
        cur = self.links.get(link.parent) if link.parent is not None else None
        while cur is not None and cur.key not in called:
            path.append(cur)
            cur = self.links.get(cur.parent) if cur.parent is not None else None
        return [self._step(x, answered) for x in reversed(path)]

    def _step(self, link: Link, answered: frozenset[bytes] | set[bytes]) -> list[Speculative]:
        """A link with its siblings whose results are in and not yet the agent's: the calls
        of one turn, as the agent would make them (a fan-out's calls come together, so a
        map over them, one details call per search, sees every search). The siblings of a
        call started at a decision point are the calls started at the same one."""
        if link.parent is not None:
            parent = self.links.get(link.parent)
            keys = parent.children if parent is not None else [link.key]
        else:
            keys = [k for k, x in self.links.items() if x.parent is None and x.turn == link.turn]
        step = [link]
        for k in keys:
            sib = self.links.get(k)
            if sib is not None and sib is not link and sib.has_result and k not in answered:
                step.append(sib)
        step.sort(key=lambda x: keys.index(x.key) if x.key in keys else -1)
        return [Speculative(x.tool, x.arguments, x.result, x.has_result) for x in step]

    def orphans(self, turn: int, called: set[bytes]) -> list[Link]:
        """Chained calls whose parent's turn has passed without the agent calling the
        parent: their arguments came from a result the agent never saw, so they are never
        served. Removed from the chain, descendants with them."""
        doomed: list[Link] = []
        for link in list(self.links.values()):
            parent = self.links.get(link.parent) if link.parent is not None else None
            if parent is None or parent.key in called:
                continue
            if parent.turn + parent.depth < turn:
                doomed.extend(self._cut(link))
        return doomed

    def _cut(self, link: Link) -> list[Link]:
        if self.links.pop(link.key, None) is None:
            return []
        out = [link]
        for k in link.children:
            child = self.links.get(k)
            if child is not None:
                out += self._cut(child)
        return out

    def forget(self, turn: int, max_depth: int) -> None:
        """Drop links no later step can hang on (their chain's last turn has passed)."""
        for key in [k for k, v in self.links.items() if v.turn + max_depth + 1 < turn]:
            self.links.pop(key, None)
