"""Which tools a user's words ask for: the first turn after a user message.

The tool sequence says little about the first call of a request ("move the
file" -> mv); the words do. Each word votes with the tools that followed
messages containing it, weighted by how rare the word is (idf), so function
words count for little. Counts are per application and age like the control
flow's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from lru import LRU

_TOKEN = re.compile(r"[a-z][a-z0-9_]{2,}")
MAX_TOKENS = 64
# An application's vocabulary is hundreds of words (BFCL, tau2: ~700): the caps bound the
# table to about a million words whatever the traffic.
MAX_WORDS_PER_APP = 4_096
AGE_AT = 2000.0


def tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text.lower())[:MAX_TOKENS])


@dataclass(slots=True)
class _Word:
    seen: float = 0.0
    next: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _App:
    messages: float = 0.0
    words: LRU = field(default_factory=lambda: LRU(MAX_WORDS_PER_APP))


class Intent:
    def __init__(self, max_apps: int = 256) -> None:
        self.apps: LRU = LRU(max_apps)

    def observe(self, app: Any, words: frozenset[str], called: set[str]) -> None:
        a = self.apps.get(app)
        if a is None:
            a = self.apps[app] = _App()
        a.messages += 1
        for w in words:
            entry = a.words.get(w)
            if entry is None:
                entry = a.words[w] = _Word()
            entry.seen += 1
            for tool in called:
                entry.next[tool] = entry.next.get(tool, 0.0) + 1
        if a.messages > AGE_AT:
            a.messages /= 2
            for _, entry in a.words.items():
                entry.seen /= 2
                entry.next = {t: n / 2 for t, n in entry.next.items() if n >= 0.5}

    def predict(self, app: Any, words: frozenset[str]) -> dict[str, float]:
        """P(tool in the first turn): an idf-weighted mean of the words' conditional
        frequencies."""
        a = self.apps.get(app)
        if a is None or a.messages < 1:
            return {}
        votes: dict[str, float] = {}
        total = 0.0
        for w in words:
            entry = a.words.get(w)
            if entry is None or entry.seen < 1:
                continue
            weight = math.log((a.messages + 1) / entry.seen)
            if weight <= 0:
                continue
            total += weight
            for tool, n in entry.next.items():
                votes[tool] = votes.get(tool, 0.0) + weight * n / entry.seen
        if total <= 0:
            return {}
        return {t: v / total for t, v in votes.items()}
