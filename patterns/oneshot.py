"""How far one example can be trusted: learned per application and across them.

A source seen explaining a value once (an argument copied from a result, a span of
the user's words, a constant) is a guess for the next call, not evidence. How
often such a guess holds at its first trial depends mostly on what kind of source
it is, so it is counted per kind: over every application together, which a new
tool starts from, and per tool of an application (`owner`), which takes over as
its own first trials accumulate. Only rates are kept, never values, so nothing of
one scope's data reaches another.
"""

from __future__ import annotations

from typing import Any

from lru import LRU

from prefire.patterns.values import WILDCARD

AGE_AT = 2_000.0
_PRIOR = (0.5, 1.5)  # Laplace, as a tried source's score: one success in one trial
_SHRINK = 4.0  # an application's own first trials, in pseudo-trials at the shared rate


def kind(source: tuple[Any, ...]) -> tuple[Any, ...]:
    """A source's kind: what it reads, without which call, path or words."""
    what = source[0]
    if what in ("user", "ctx", "typed"):
        return (what, source[2])
    if what in ("res", "arg"):
        return (what, WILDCARD in source[3])
    return (what,)


class OneShot:
    def __init__(self, max_apps: int = 100_000) -> None:
        self.shared: dict[tuple[Any, ...], list[float]] = {}  # kind -> [held, first trials]
        self.apps: LRU = LRU(max_apps)  # owner -> {kind: [held, first trials]}

    def observe(self, app: Any, source: tuple[Any, ...], held: bool) -> None:
        """A source seen once for `app` (application, tool) was tried for the first
        time, and held or not."""
        table = self.apps.get(app)
        if table is None:
            table = self.apps[app] = {}
        k = kind(source)
        for cell in (self.shared.setdefault(k, [0.0, 0.0]), table.setdefault(k, [0.0, 0.0])):
            cell[0] += held
            cell[1] += 1
            if cell[1] > AGE_AT:
                cell[0] /= 2
                cell[1] /= 2

    def prior(self, app: Any, source: tuple[Any, ...]) -> float:
        """P(a source of this kind, seen once in `app`, holds at its next trial)."""
        k = kind(source)
        held, trials = self.shared.get(k, (0.0, 0.0))
        p = (held + _PRIOR[0]) / (trials + _PRIOR[1])
        table = self.apps.get(app)
        held, trials = table.get(k, (0.0, 0.0)) if table is not None else (0.0, 0.0)
        return (held + _SHRINK * p) / (trials + _SHRINK)
