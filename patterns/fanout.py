"""How many elements of a result list an agent takes in one turn (a fan-out).

"Details for the top three", "the two best", "each of them": the user's words
often say how many; otherwise the application's habit does (it looks at the first
two of five). P(element i is taken) comes from the counts a tool was called per
turn in this application; a count the user stated overrides it by how often a
stated count held, learned from every application together (a count, no values).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lru import LRU

from prefire.patterns.dataflow import Stat
from prefire.patterns.typed import stated_count

MAX_WIDTH = 20
AGE_AT = 200.0


class FanOut:
    def __init__(self, max_keys: int = 100_000) -> None:
        self.taken: LRU = LRU(max_keys)  # (app, tool) -> Counter of calls per turn
        # did the number of calls equal the count the user stated / the whole list?
        self.stated = Stat()
        self.every = Stat()

    def observe(self, app: Any, tool: str, n: int, text: str | None, list_len: int | None) -> None:
        """A turn called `tool` `n` times; `list_len` is the length of the list a fan-out
        was predicted over (None if none was)."""
        counts = self.taken.get((app, tool))
        if counts is None:
            counts = self.taken[(app, tool)] = Counter()
        counts[min(n, MAX_WIDTH)] += 1
        if counts.total() > AGE_AT:
            self.taken[(app, tool)] = Counter({k: v / 2 for k, v in counts.items() if v >= 1})
        want = stated_count(text) if text else None
        if want is None or list_len is None or list_len < 2:
            return
        stat = self.every if want == 0 else self.stated
        stat.trials += 1
        stat.hits += n == (list_len if want == 0 else min(want, list_len))

    def shares(self, app: Any, tool: str, text: str | None, list_len: int) -> list[float]:
        """P(element i of a list of `list_len` is taken), for each i."""
        counts = self.taken.get((app, tool))
        total = counts.total() if counts else 0.0
        habit = []
        for i in range(list_len):
            # calls beyond the list are capped at its length: n > i for n >= list_len too
            more = sum(v for k, v in counts.items() if k > i) if counts else 0.0
            habit.append((more + 0.5) / (total + 1.0))
        want = stated_count(text) if text else None
        if want is None:
            return habit
        stat = self.every if want == 0 else self.stated
        w = stat.score
        n = list_len if want == 0 else min(want, list_len)
        return [w * (i < n) + (1 - w) * h for i, h in enumerate(habit)]
