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

from prefire.patterns.model import Candidate
from prefire.patterns.rules import Budgets


def net_value(c: Candidate, cost: float) -> float:
    """Expected seconds saved minus the expected cost of a wasted call."""
    return c.value - (1.0 - c.probability) * cost


def fire_by_value(
    candidates: Iterable[Candidate],
    cost: Callable[[str], float],
    budgets: Budgets,
    fire: Callable[[Candidate], bool],
    in_flight: int = 0,
) -> list[Candidate]:
    """Offer the candidates worth starting to `fire`, best net value first, until a cap
    is reached. `cost(tool)` prices a wasted call; `in_flight` is the number of
    speculative calls already running. Returns the candidates `fire` started."""
    worth = []
    for c in candidates:
        if c.probability < budgets.min_probability:  # a floor from old rule files
            continue
        v = net_value(c, cost(c.tool))
        if v > 0:
            worth.append((v, c))
    worth.sort(key=lambda vc: (-vc[0], vc[1].tool, vc[1].key))
    room = min(budgets.max_per_turn, budgets.max_concurrent - in_flight)
    started: list[Candidate] = []
    for _, c in worth:
        if len(started) >= room:
            break
        if fire(c):
            started.append(c)
    return started
