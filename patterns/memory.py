"""What one session has seen so far: its calls, their results, the user's words.

Argument sources are found through an index from normalized values to the
places they were seen. Places are kept as concrete call records; a learned
source names them relatively ("the most recent result of `search`"), which
is what carries over to the next session.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prefire.patterns.canonical import canonical_key
from prefire.patterns.values import Path, at_path, leaves, match_keys, min_size

MAX_CALLS = 64
MAX_USER_TEXTS = 8
MAX_REFS_PER_KEY = 6
MAX_INDEX_KEYS = 2_000
# A result larger than this (canonical bytes) is not kept: sessions hold their results,
# so this bounds a session's memory; such a result cannot be a source.
MAX_KEPT_RESULT = 256 * 1024


@dataclass(slots=True)
class CallRecord:
    seq: int
    turn: int
    name: str
    arguments: Any
    key: bytes  # call_key(name, arguments)
    result: Any = None
    has_result: bool = False
    # the result's paths by their last key (casefolded, "_" and "-" dropped), first
    # occurrences only; built on demand for schema name matches
    keyed: dict[str, list[Path]] | None = None


@dataclass(frozen=True, slots=True)
class Ref:
    """A place a value was seen: an argument or the result of a recorded call."""

    seq: int
    part: str  # "arg" | "res"
    path: Path


@dataclass(slots=True)
class SessionMemory:
    app: Any = ""
    turn: int = 0
    calls: deque[CallRecord] = field(default_factory=lambda: deque(maxlen=MAX_CALLS))
    by_id: dict[str, CallRecord] = field(default_factory=dict)
    user_texts: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_USER_TEXTS))
    # what the client added to user messages (context.py), most recent last
    context_texts: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_USER_TEXTS))
    # user messages of the turn in progress, sorted out at its decision point
    pending_texts: list[str] = field(default_factory=list)
    index: dict[tuple[str, Any], list[Ref]] = field(default_factory=dict)
    next_seq: int = 0
    # control flow: tool names in call order, most recent last
    names: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    turn_calls: list[CallRecord] = field(default_factory=list)
    # Resolved sources, valid for one turn: what a source gives depends only on
    # calls of earlier turns and on user texts, which change only between turns.
    resolved: dict[Any, Any] = field(default_factory=dict)
    resolved_turn: int = -1
    # Resolved sources that read only the user's words, the client's context and the
    # day (or nothing: constants), valid until a text is added or the day changes: most
    # turns answer tool results, not a new message, so these outlive the turn.
    text_resolved: dict[Any, Any] = field(default_factory=dict)
    text_version: tuple[Any, ...] = ()
    texts_added: int = 0  # user and context texts added so far
    # call keys (tool + canonical arguments) this session has made
    called: set[bytes] = field(default_factory=set)
    # words of a user message not yet answered by a decision point
    new_words: frozenset[str] | None = None
    # (tool, argument name) -> canonical values already used, for sources that walk a list
    used: dict[tuple[str, str], set[bytes]] = field(default_factory=dict)
    # the day relative dates in the user's words count from: a date the conversation
    # states as today, else the day of the latest request when it carries a wall-clock time
    stated_day: dt.date | None = None
    request_day: dt.date | None = None

    @property
    def today(self) -> dt.date | None:
        return self.stated_day or self.request_day

    def resolved_now(self) -> dict[Any, Any]:
        """The resolved sources of this turn."""
        if self.resolved_turn != self.turn:
            self.resolved.clear()
            self.resolved_turn = self.turn
        return self.resolved

    def add_text(self, text: str, context: bool) -> None:
        """A user's message, or (`context`) what a client added to one."""
        (self.context_texts if context else self.user_texts).append(text)
        self.texts_added += 1

    def text_resolved_now(self) -> dict[Any, Any]:
        """The resolved sources that depend only on the texts and the day."""
        version = (self.texts_added, len(self.user_texts), len(self.context_texts), self.today)
        if version != self.text_version:
            self.text_resolved = {}  # a new dict: a fork (chain.py) may share the old one
            self.text_version = version
        return self.text_resolved

    def add_call(self, call_id: str, name: str, arguments: Any, key: bytes) -> CallRecord:
        rec = CallRecord(self.next_seq, self.turn, name, arguments, key)
        self.next_seq += 1
        if len(self.calls) == self.calls.maxlen:
            old = self.calls[0]
            self.by_id = {k: v for k, v in self.by_id.items() if v is not old}
        self.calls.append(rec)
        self.by_id[call_id] = rec
        self.names.append(name)
        self.turn_calls.append(rec)
        self._index(rec.seq, "arg", arguments)
        if isinstance(arguments, dict):
            for arg, value in arguments.items():
                used = self.used.setdefault((name, arg), set())
                if len(used) < MAX_CALLS:
                    used.add(canonical_key(value))
        return rec

    def add_result(self, call_id: str, content: Any) -> CallRecord | None:
        rec = self.by_id.get(call_id)
        if rec is None or rec.has_result:
            return None
        rec.has_result = True
        if min_size(content, MAX_KEPT_RESULT) > MAX_KEPT_RESULT:
            return rec
        rec.result = content
        self._index(rec.seq, "res", content)
        return rec

    def _index(self, seq: int, part: str, value: Any) -> None:
        if len(self.index) > MAX_INDEX_KEYS:
            return
        for path, leaf in leaves(value):
            for key in match_keys(leaf):
                refs = self.index.setdefault(key, [])
                refs.append(Ref(seq, part, path))
                if len(refs) > MAX_REFS_PER_KEY:
                    del refs[0]

    def record(self, seq: int) -> CallRecord | None:
        first = self.calls[0].seq if self.calls else 0
        i = seq - first
        if 0 <= i < len(self.calls) and self.calls[i].seq == seq:
            return self.calls[i]
        return None

    def lookup(self, value: Any) -> list[tuple[CallRecord, Ref, Any]]:
        """Where `value` (or a normalized twin of it) was seen before this turn:
        (call, ref, the value found there), most recent first."""
        out: list[tuple[CallRecord, Ref, Any]] = []
        seen: set[Ref] = set()
        for key in match_keys(value):
            for ref in reversed(self.index.get(key, ())):
                rec = self.record(ref.seq)
                if ref in seen or rec is None or rec.turn >= self.turn:
                    continue
                seen.add(ref)
                src = rec.arguments if ref.part == "arg" else rec.result
                out.append((rec, ref, at_path(src, ref.path)))
        return out

    def back_of(self, rec: CallRecord) -> int:
        """How many calls of the same tool, before this turn, came after `rec`."""
        return sum(
            1 for c in self.calls if c.name == rec.name and c.seq > rec.seq and c.turn < self.turn
        )

    def last_turn_calls(self, name: str) -> list[CallRecord]:
        """The calls of `name` in the latest turn before this one that called it, in order."""
        out: list[CallRecord] = []
        for c in reversed(self.calls):
            if c.name == name and c.turn < self.turn:
                if out and c.turn != out[-1].turn:
                    break
                out.append(c)
        return out[::-1]

    def nth_recent(self, name: str, back: int) -> CallRecord | None:
        """The `back`-th most recent call of `name` before this turn (0 = most recent)."""
        for c in reversed(self.calls):
            if c.name == name and c.turn < self.turn:
                if back == 0:
                    return c
                back -= 1
        return None
