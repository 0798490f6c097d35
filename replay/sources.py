"""Readers: every replay input becomes ReplaySessions of events plus recorded timings.

- OpenAI-messages JSONL (one session a line: id, tools, messages, optional
  timing {"llm_s": [...per LLM turn...], "tool_s": {call_id: seconds}},
  optional tool_labels {tool: "read"|"write"}), parsed with the OpenAI Chat codec;
- prefire capture JSONL (the events written by `prefire run --capture`);
- mitmproxy `.mitm` flow files and HAR, through the same observer the live proxy uses;
  a capture directory stands for its flows-*.mitm files.

A malformed line or flow is reported as an InputError (file, line, what is
wrong) and the rest of the file is still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from prefire.patterns.events import (
    Event,
    LLMRequest,
    RecordError,
    SessionKey,
    ToolCall,
    ToolExchange,
    ToolResult,
    ToolsOffered,
    UserMessage,
    from_record,
)
from prefire.patterns.model import call_key
from prefire.replay.errors import InputError
from prefire.wire.providers.base import (
    ASSISTANT,
    SYSTEM,
    TOOL_CALL,
    TOOL_RESULT,
    USER,
    ParsedRequest,
)
from prefire.wire.providers.openai_chat import CODEC as OPENAI_CHAT


@dataclass(slots=True)
class ReplaySession:
    id: str
    events: list[Event]
    # recorded latencies: per call id, and per LLM turn in order
    tool_s: dict[str, float] = field(default_factory=dict)
    llm_s: list[float] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    origin: str = ""


Item = ReplaySession | InputError


def detect_format(path: Path) -> str:
    if path.suffix == ".mitm":
        return "mitm"
    if path.suffix == ".har":
        return "har"
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    first = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return "openai"
                return "capture" if isinstance(first, dict) and "kind" in first else "openai"
    return "openai"


def capture_files(path: Path) -> list[Path]:
    """The flow files of a capture directory (`prefire run --capture DIR`): its
    flows-*.mitm files, or any *.mitm, in name (so time) order."""
    return sorted(path.glob("flows-*.mitm")) or sorted(path.glob("*.mitm"))


def read(paths: list[Path], fmt: str = "auto") -> Iterator[Item]:
    for path in paths:
        if path.is_dir():
            files = capture_files(path)
            if not files:
                yield InputError(str(path), 0, "a directory with no flows-*.mitm (or *.mitm) files")
            yield from read(files, "mitm" if fmt == "auto" else fmt)
            continue
        kind = detect_format(path) if fmt == "auto" else fmt
        if kind == "openai":
            yield from read_openai(path)
        elif kind == "capture":
            yield from read_capture(path)
        else:
            yield from read_flows(path)


# -- OpenAI-messages JSONL ------------------------------------------------------


def read_openai(path: Path) -> Iterator[Item]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield InputError(str(path), lineno, f"not JSON ({exc})")
                continue
            try:
                yield openai_session(record, f"{path}:{lineno}")
            except ValueError as exc:
                yield InputError(str(path), lineno, str(exc))


def openai_session(record: Any, origin: str = "") -> ReplaySession:
    """Events for one OpenAI-messages session, timed by its recorded or default latencies."""
    if not isinstance(record, dict):
        raise ValueError("a session must be a JSON object")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError('"messages" must be a non-empty list')
    sid = str(record.get("id", origin))
    timing: dict[str, Any] = record["timing"] if isinstance(record.get("timing"), dict) else {}
    labels: dict[str, Any] = (
        record["tool_labels"] if isinstance(record.get("tool_labels"), dict) else {}
    )
    parsed = OPENAI_CHAT.parse_request(
        {"messages": messages, "tools": record.get("tools") or []}, "/v1/chat/completions"
    )
    if not parsed.items:
        raise ValueError("no message could be read")
    events = _openai_events(SessionKey("replay", sid), parsed)
    tool_s = {str(k): float(v) for k, v in (timing.get("tool_s") or {}).items()}
    llm_s = [float(v) for v in timing.get("llm_s") or []]
    return ReplaySession(
        sid, events, tool_s, llm_s, {str(k): str(v) for k, v in labels.items()}, origin
    )


def _openai_events(session: SessionKey, parsed: ParsedRequest) -> list[Event]:
    """A session's messages as events: an LLM request after each user message or tool
    result that the LLM answers (and at the end, when the last input is unanswered)."""
    events: list[Event] = []
    if parsed.tools:
        events.append(ToolsOffered(session=session, t=0.0, tools=parsed.tools, api="openai_chat"))
    pending_input = False
    for item in parsed.items:
        if item.role == USER:
            events.append(UserMessage(session=session, t=0.0, text=item.text))
            pending_input = True
        elif item.role == SYSTEM and item.text:
            events.append(UserMessage(session=session, t=0.0, text=item.text, role="system"))
        elif item.role in (TOOL_CALL, ASSISTANT):
            if pending_input:
                events.append(LLMRequest(session=session, t=0.0, api="openai_chat"))
                pending_input = False
            if item.role == TOOL_CALL:
                events.append(
                    ToolCall(
                        session=session,
                        t=0.0,
                        call_id=item.call_id,
                        name=item.name,
                        arguments=item.arguments,
                        raw_arguments=item.raw_arguments,
                        api="openai_chat",
                    )
                )
        elif item.role == TOOL_RESULT:
            events.append(
                ToolResult(
                    session=session,
                    t=0.0,
                    call_id=item.call_id,
                    content=item.content,
                    is_error=item.is_error,
                )
            )
            pending_input = True
    if pending_input:
        events.append(LLMRequest(session=session, t=0.0, api="openai_chat"))
    return events


# -- capture JSONL and flow files: grouped into sessions ---------------------------


def read_capture(path: Path) -> Iterator[Item]:
    events: list[Event] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                events.append(from_record(orjson.loads(raw)))
            except orjson.JSONDecodeError as exc:
                yield InputError(str(path), lineno, f"not JSON ({exc})")
            except RecordError as exc:
                yield InputError(str(path), lineno, str(exc))
    yield from group_sessions(events, str(path))


def read_flows(path: Path) -> Iterator[Item]:
    from prefire.replay.flows import flow_events  # mitmproxy's reader, for .mitm files only

    events: list[Event] = []
    for item in flow_events(path):
        if isinstance(item, InputError):
            yield item
        else:
            events.append(item)
    yield from group_sessions(events, str(path))


def group_sessions(events: list[Event], origin: str) -> Iterator[ReplaySession]:
    """LLM conversations in order of first appearance, with latencies read off the
    events: tool time from the MCP exchange that ran the call where there is one,
    else from the call to its result; LLM time from each request to its first call."""
    exchanges: dict[bytes, list[float]] = {}
    for e in events:
        if isinstance(e, ToolExchange):
            exchanges.setdefault(call_key(e.name, e.arguments), []).append(e.duration_s)
    by_session: dict[SessionKey, list[Event]] = {}
    for e in events:
        if not isinstance(e, ToolExchange) and not (isinstance(e, ToolsOffered) and e.api == "mcp"):
            by_session.setdefault(e.session, []).append(e)
    for key, evs in by_session.items():
        if not any(isinstance(e, ToolCall | LLMRequest) for e in evs):
            continue
        tool_s: dict[str, float] = {}
        llm_s: list[float] = []
        call_t: dict[str, float] = {}
        request_t: float | None = None
        for e in evs:
            if isinstance(e, LLMRequest):
                request_t = e.t
            elif isinstance(e, ToolCall):
                if request_t is not None:
                    llm_s.append(max(0.0, e.t - request_t))
                    request_t = None
                call_t[e.call_id] = e.t
                recorded = exchanges.get(call_key(e.name, e.arguments))
                if recorded:
                    tool_s[e.call_id] = recorded.pop(0)
            elif isinstance(e, ToolResult) and e.call_id in call_t and e.call_id not in tool_s:
                tool_s[e.call_id] = max(0.0, e.t - call_t[e.call_id])
        yield ReplaySession(str(key), evs, tool_s, llm_s, {}, origin)
