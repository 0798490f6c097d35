"""Which predicted calls to start early: the one firing policy of the live proxy and replay.

A candidate is worth starting when its expected saving beats its expected cost:

    p x saving - (1 - p) x cost > 0

p is the candidate's calibrated probability, saving the seconds of waiting it removes
when right (min(expected LLM time, expected tool time)), and cost what one wasted call
of the tool costs, in the same seconds, from the rule that allows the tool (`cost`,
raised for paid or rate-limited APIs). Candidates go best net value first. Budgets are
hard caps, never the deciding rule: calls per turn and speculative calls in flight.
Pure: the caller's `fire` does the starting (or, in replay, the counting) and says
whether the call was started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from prefire.patterns.model import Candidate


class Caps(Protocol):
    """The hard caps the policy keeps to: prefire.rules.ruleset.Budgets, from the rules file."""

    @property
    def min_probability(self) -> float: ...

    @property
    def max_per_turn(self) -> int: ...

    @property
    def max_concurrent(self) -> int: ...


def net_value(c: Candidate, cost: float) -> float:
    """Expected seconds saved minus the expected cost of a wasted call."""
    return c.value - (1.0 - c.probability) * cost


@dataclass(frozen=True)
class Firing:
    """What one offer did: the candidates started, and those worth starting that a cap
    left out (`room`: how many the caps allowed), so the caller can say why."""

    started: list[Candidate]
    left_out: list[Candidate]
    room: int


def fire_by_value(
    candidates: Iterable[Candidate],
    cost: Callable[[str], float],
    budgets: Caps,
    fire: Callable[[Candidate], bool],
    in_flight: int = 0,
) -> Firing:
    """Offer the candidates worth starting to `fire`, best net value first, until a cap
    is reached. `cost(tool)` prices a wasted call; `in_flight` is the number of
    speculative calls already running."""
    worth = []
    for c in candidates:
        if c.probability < budgets.min_probability:  # a floor from old rule files
            continue
        v = net_value(c, cost(c.tool))
        if v > 0:
            worth.append((v, c))
    worth.sort(key=lambda vc: (-vc[0], vc[1].tool, vc[1].key))
    room = max(0, min(budgets.max_per_turn, budgets.max_concurrent - in_flight))
    started: list[Candidate] = []
    for i, (_, c) in enumerate(worth):
        if len(started) >= room:
            return Firing(started, [c for _, c in worth[i:]], room)
        if fire(c):
            started.append(c)
    return Firing(started, [], room)
