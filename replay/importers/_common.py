"""Pieces shared by the importers: lazy suite imports and the session writer.

A session is one line of prefire's OpenAI-messages JSONL (DESIGN.md, "Replay inputs"):
`{"id", "tools", "messages", "tool_labels", "meta"}`. Importers only decide which calls
happen and run them; how they become chat-completions messages lives here so both
suites produce exactly the same shape.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TextIO

Label = Literal["read", "write"]

# The suites end every turn with the agent's own answer, which neither suite records for
# its ground truth. A fixed text marks where the turn ends without pretending to be a
# real model reply; meta["closing_text"] says so.
CLOSING_TEXT = "Done."


class SuiteMissingError(RuntimeError):
    """A benchmark suite (or one of its import-time dependencies) is not installed."""


def pip_command(*installs: str) -> str:
    """`python -m pip install ...` for this interpreter, one install per argument."""
    return " && ".join(f"{sys.executable} -m pip install {args}" for args in installs)


def require(module: str, suite: str, installs: Sequence[str]) -> ModuleType:
    """Import `module` of an optional suite, or say exactly how to install it.

    The suites stay out of prefire's runtime dependencies, so the import happens only
    when an importer runs; the message names this interpreter's pip so the command
    installs into the environment that will run the importer.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise SuiteMissingError(
            f"{suite} is not importable here (missing module: {missing}). "
            f"Install it with: {pip_command(*installs)}"
        ) from exc


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (tool results are read by people too)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Call:
    """One tool call the assistant issues: name and already-decoded arguments."""

    name: str
    arguments: dict[str, Any]


@dataclass
class SessionBuilder:
    """Accumulates chat-completions messages for one session.

    Tool-call ids are `call_<n>` with a session-wide counter, so every id is unique in
    its session and the tool message that answers it is easy to pair up.
    """

    id: str
    tools: list[dict[str, Any]]
    tool_labels: dict[str, Label] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def system(self, text: str) -> None:
        self.messages.append({"role": "system", "content": text})

    def user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def assistant_text(self, text: str = CLOSING_TEXT) -> None:
        self.messages.append({"role": "assistant", "content": text})

    def step(self, calls: Iterable[Call], run: Callable[[Call], str]) -> list[str]:
        """One assistant message carrying `calls` in parallel, then one tool message each.

        `run` executes a call against the suite's real tools and returns the result text;
        calls run in the order given, which is the order the suite's ground truth lists.
        """
        batch = list(calls)
        if not batch:
            return []
        tool_calls = []
        for call in batch:
            self.calls += 1
            tool_calls.append(
                {
                    "id": f"call_{self.calls}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": dumps(call.arguments)},
                }
            )
        self.messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        results = []
        for call, tc in zip(batch, tool_calls, strict=True):
            text = run(call)
            results.append(text)
            self.messages.append({"role": "tool", "tool_call_id": tc["id"], "content": text})
        return results

    def to_dict(self) -> dict[str, Any]:
        # Only labels for tools this session offers: a label for an absent tool would
        # only confuse per-toolset learning.
        offered = {t["function"]["name"] for t in self.tools}
        labels = {k: v for k, v in sorted(self.tool_labels.items()) if k in offered}
        return {
            "id": self.id,
            "tools": self.tools,
            "messages": self.messages,
            "tool_labels": labels,
            "meta": self.meta,
        }


@dataclass
class Counts:
    """What the CLI reports after writing a file."""

    sessions: int = 0
    tool_calls: int = 0
    read_calls: int = 0
    write_calls: int = 0

    def add(self, session: dict[str, Any]) -> None:
        self.sessions += 1
        labels = session.get("tool_labels", {})
        for msg in session["messages"]:
            for tc in msg.get("tool_calls") or ():
                self.tool_calls += 1
                label = labels.get(tc["function"]["name"])
                if label == "read":
                    self.read_calls += 1
                elif label == "write":
                    self.write_calls += 1

    def summary(self) -> dict[str, Any]:
        per = self.tool_calls / self.sessions if self.sessions else 0.0
        share = self.read_calls / self.tool_calls if self.tool_calls else 0.0
        return {
            "sessions": self.sessions,
            "tool_calls": self.tool_calls,
            "calls_per_session": round(per, 2),
            "read_calls": self.read_calls,
            "write_calls": self.write_calls,
            "unlabelled_calls": self.tool_calls - self.read_calls - self.write_calls,
            "read_share": round(share, 4),
        }


def write_jsonl(sessions: Iterator[dict[str, Any]], out: Path | TextIO) -> Counts:
    """Write one session per line; returns the counts of what was written."""
    counts = Counts()
    if isinstance(out, Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            return write_jsonl(sessions, fh)
    for session in sessions:
        out.write(dumps(session))
        out.write("\n")
        counts.add(session)
    return counts
