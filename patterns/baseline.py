"""The comparison predictor: the most frequent next tool given the previous tool,
called with that tool's most frequent arguments. Same interface as PatternModel."""

from __future__ import annotations

from collections import Counter, defaultdict

from prefire.patterns.controlflow import START
from prefire.patterns.events import Event, LLMRequest, SessionKey, ToolCall
from prefire.patterns.model import Candidate, call_key


class BaselineModel:
    def __init__(self, default_tool_s: float = 1.0, default_llm_s: float = 2.0) -> None:
        self.saving = min(default_tool_s, default_llm_s)
        self.next: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.args: defaultdict[str, Counter[bytes]] = defaultdict(Counter)
        self.arg_values: dict[bytes, object] = {}
        self.prev: dict[SessionKey, str] = {}
        self.open: dict[SessionKey, bool] = {}

    def observe(self, event: Event) -> None:
        if isinstance(event, LLMRequest):
            self.prev.setdefault(event.session, START)
            self.open[event.session] = True
        elif isinstance(event, ToolCall):
            prev = self.prev.get(event.session, START)
            if self.open.pop(event.session, False):
                self.next[prev][event.name] += 1
            key = call_key(event.name, event.arguments)
            self.args[event.name][key] += 1
            self.arg_values[key] = event.arguments
            self.prev[event.session] = event.name

    def end_session(self, session: SessionKey) -> None:
        self.prev.pop(session, None)
        self.open.pop(session, None)

    def predict(self, session: SessionKey, limit: int = 8) -> list[Candidate]:
        if not self.open.get(session):
            return []
        following = self.next.get(self.prev.get(session, START))
        if not following:
            return []
        total = sum(following.values())
        out: list[Candidate] = []
        for tool, n in following.most_common(limit):
            key, count = self.args[tool].most_common(1)[0]
            p = n / total * count / sum(self.args[tool].values())
            out.append(Candidate(tool, self.arg_values[key], p, p * self.saving, key))
        return out
