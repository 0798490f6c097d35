"""Which tools the next assistant turn calls, given the recent tool sequence.

Counts are kept per application for contexts of order 0..MAX_ORDER (the last
k tool names, with START before a session's first call). Estimates back off
from long contexts to short ones by Dirichlet interpolation, so a context
seen once says little and one seen often says much. When a context's count
passes AGE_AT, its counts are halved: recent behaviour outweighs old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lru import LRU

START = "<start>"
END = "<end>"  # the agent answers without calling a tool
MAX_ORDER = 3
AGE_AT = 200.0
_PRIOR_WEIGHT = 1.5


@dataclass(slots=True)
class ContextCounts:
    total: float = 0.0
    # tool -> number of decision points in this context after which the next turn called it
    next: dict[str, float] = field(default_factory=dict)


def contexts(app: Any, names: Sequence[str]) -> list[tuple[Any, ...]]:
    """The keys of the contexts for a history, shortest first (order 0 .. MAX_ORDER)."""
    seq = [START, *names]
    return [
        (app, *seq[len(seq) - k :]) if k else (app,) for k in range(min(MAX_ORDER, len(seq)) + 1)
    ]


class ControlFlow:
    def __init__(self, max_contexts: int = 100_000) -> None:
        self.table: LRU = LRU(max_contexts)

    def observe(self, keys: list[tuple[Any, ...]], called: set[str]) -> None:
        """A decision point with these context keys was followed by a turn calling `called`
        (an empty set means the agent answered)."""
        outcome = called or {END}
        for key in keys:
            c = self.table.get(key)
            if c is None:
                c = self.table[key] = ContextCounts()
            c.total += 1
            for tool in outcome:
                c.next[tool] = c.next.get(tool, 0.0) + 1
            if c.total > AGE_AT:
                c.total /= 2
                c.next = {t: n / 2 for t, n in c.next.items() if n >= 0.5}

    def predict(self, keys: list[tuple[Any, ...]]) -> dict[str, float]:
        """P(tool is called in the next turn) for each tool seen in these contexts, and END.

        Each context refines the estimate of the shorter one below it:
        p_k = (c_k + w p_{k-1}) / (n_k + w). Unrolled, every context adds its counts
        times a coefficient, so one pass over the counts suffices.
        """
        levels = [c for key in keys if (c := self.table.get(key)) is not None and c.total > 0]
        probs: dict[str, float] = {}
        scale = 1.0  # product of w / (n_j + w) over the longer contexts
        for c in reversed(levels):
            coef = scale / (c.total + _PRIOR_WEIGHT)
            for tool, n in c.next.items():
                probs[tool] = probs.get(tool, 0.0) + coef * n
            scale *= _PRIOR_WEIGHT / (c.total + _PRIOR_WEIGHT)
        return probs
