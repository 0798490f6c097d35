"""What a perfect speculator could save on one recorded task: the ceilings.

From what an agent waited for, turn by turn (its LLM's turn, then each tool call of
the turn, run together), this computes the task's wall time four ways:
- base: nothing starts early (what was recorded);
- per_turn: every call that may start early starts at its decision point (the request
  that carried the user message or the previous turn's results), always right: the
  best any speculator can do that predicts once per LLM turn;
- chained: every such call starts as soon as the values its arguments hold exist (the
  user's words: at once; an earlier call's arguments: when that call starts; an
  earlier result: when that result exists, early or not), never later than its
  decision point, and never before a write the agent made before it has finished:
  perfect chaining, at any depth;
- llm_only: every such call is hidden wholly; the agent waits only for its LLM and for
  the calls no rule lets start early.
Writes (calls that may not start early) run when the agent asks, in all four. Pure:
numbers in, numbers out; the demo reports them for its own baseline run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prefire.patterns.canonical import loads_or_none

MIN_VALUE_CHARS = 3  # shorter values ("1", "no") say nothing about where they came from


@dataclass(frozen=True, slots=True)
class Timed:
    """One tool call as the agent made it: what it sent, what it got, how long it waited,
    and whether a rule lets it start early."""

    tool: str
    arguments: Any
    result: Any
    seconds: float
    early: bool


@dataclass(frozen=True, slots=True)
class Turn:
    llm_s: float
    calls: tuple[Timed, ...] = ()


@dataclass(frozen=True, slots=True)
class Ceilings:
    base: float
    per_turn: float
    chained: float
    llm_only: float

    def __add__(self, other: Ceilings) -> Ceilings:
        return Ceilings(
            self.base + other.base,
            self.per_turn + other.per_turn,
            self.chained + other.chained,
            self.llm_only + other.llm_only,
        )

    def reductions(self) -> dict[str, float]:
        """Each ceiling as a share of the base wall time saved."""
        if self.base <= 0:
            return {"per_turn": 0.0, "chained": 0.0, "llm_only": 0.0}
        return {
            "per_turn": round(1 - self.per_turn / self.base, 4),
            "chained": round(1 - self.chained / self.base, 4),
            "llm_only": round(1 - self.llm_only / self.base, 4),
        }


def ceilings(prompt: str, turns: Sequence[Turn]) -> Ceilings:
    """The task's wall time without early starts, at the per-turn and chained ceilings,
    and waiting only for the LLM and the calls that may not start early."""
    base = sum(t.llm_s + max((c.seconds for c in t.calls), default=0.0) for t in turns)
    llm_only = sum(
        t.llm_s + max((c.seconds for c in t.calls if not c.early), default=0.0) for t in turns
    )
    return Ceilings(base, _timeline(prompt, turns, False), _timeline(prompt, turns, True), llm_only)


def _timeline(prompt: str, turns: Sequence[Turn], chained: bool) -> float:
    text = prompt.casefold()
    known: list[
        tuple[set[str], float, set[str], float]
    ] = []  # per earlier call: args, start, result, ready
    clock = barrier = 0.0  # barrier: when the agent's last write finished
    for turn in turns:
        decided, ask = clock, clock + turn.llm_s
        got = ask
        for call in turn.calls:
            if not call.early:
                end = ask + call.seconds
                barrier = max(barrier, end)
                start, ready = ask, end
            else:
                start = decided
                if chained:
                    start = min(decided, max(barrier, _inputs_at(call, text, known, decided)))
                ready = start + call.seconds
            got = max(got, ready)
            known.append((_leaves(call.arguments), start, _leaves(_parsed(call.result)), ready))
        clock = got
    return clock


def _inputs_at(
    call: Timed, text: str, known: list[tuple[set[str], float, set[str], float]], decided: float
) -> float:
    """When every value in the call's arguments existed; `decided` for a value with no
    source (only a prediction at the decision point can know it)."""
    at = 0.0
    for value in _leaves(call.arguments):
        if value.casefold() in text:
            continue
        sources = [s for args, s, _, _ in known if value in args]
        sources += [r for _, _, res, r in known if value in res]
        at = max(at, min(sources, default=decided))
    return at


def _parsed(result: Any) -> Any:
    return loads_or_none(result) if isinstance(result, str | bytes) else result


def _leaves(value: Any) -> set[str]:
    return {v for v in _walk(value) if len(v) >= MIN_VALUE_CHARS}


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
