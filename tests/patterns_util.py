"""Builders for hand-made event sequences in pattern tests."""

from __future__ import annotations

import itertools
from typing import Any

from prefire.patterns.events import (
    Event,
    LLMRequest,
    SessionKey,
    ToolCall,
    ToolResult,
    ToolsOffered,
    ToolSpec,
    UserMessage,
)
from prefire.patterns.model import Candidate, PatternModel

_ids = itertools.count()


class Script:
    """Writes one session's events: user text, turns of calls, results."""

    def __init__(self, sid: str, tools: list[str], scope: str = "s") -> None:
        self.key = SessionKey(scope, sid)
        self.t = 0.0
        self.events: list[Event] = [
            ToolsOffered(session=self.key, t=0.0, tools=tuple(ToolSpec(n) for n in tools))
        ]

    def user(self, text: str) -> Script:
        self.events.append(UserMessage(session=self.key, t=self.t, text=text))
        self.events.append(LLMRequest(session=self.key, t=self.t, api="test"))
        return self

    def turn(self, *calls: tuple[str, dict[str, Any], Any]) -> Script:
        """One assistant message with parallel calls (name, args, result), then the results."""
        self.t += 2.0
        ids = []
        for name, args, _ in calls:
            cid = f"c{next(_ids)}"
            ids.append(cid)
            self.events.append(
                ToolCall(session=self.key, t=self.t, call_id=cid, name=name, arguments=args)
            )
        self.t += 1.0
        for cid, (_, _, result) in zip(ids, calls, strict=True):
            self.events.append(ToolResult(session=self.key, t=self.t, call_id=cid, content=result))
        self.events.append(LLMRequest(session=self.key, t=self.t, api="test"))
        return self


def feed(model: PatternModel, script: Script, predict_at: int | None = None) -> list[Candidate]:
    """Feed a session; return the predictions made at decision point `predict_at` (0-based)."""
    got: list[Candidate] = []
    dp = -1
    for e in script.events:
        model.observe(e)
        if isinstance(e, LLMRequest):
            dp += 1
            if dp == predict_at:
                got = model.predict(e.session)
    model.end_session(script.key)
    return got
