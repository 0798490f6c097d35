"""The events that codecs, patterns, speculator and replay share.

Every event carries a session key (scope + conversation) and a timestamp `t`
in seconds. The live proxy stamps wall-clock time taken from mitmproxy's flow
timestamps, so events line up with the flows of a `.mitm` capture.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from prefire.patterns.canonical import digest


@dataclass(frozen=True, slots=True)
class SessionKey:
    scope: str
    conversation: str

    def __str__(self) -> str:
        return f"{self.scope}/{self.conversation}"

    @classmethod
    def parse(cls, text: str) -> SessionKey:
        scope, _, conversation = text.partition("/")
        return cls(scope, conversation)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the agent offered the LLM, or an MCP server listed."""

    name: str
    description: str = ""
    parameters: Any = None
    annotations: Any = None


def toolset_id(tools: Iterable[ToolSpec]) -> str:
    """Identifies an application by the names of the tools it offers."""
    return digest(sorted({t.name for t in tools}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: ClassVar[str] = ""
    session: SessionKey
    t: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolsOffered(Event):
    kind: ClassVar[str] = "tools"
    tools: tuple[ToolSpec, ...]
    api: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMessage(Event):
    kind: ClassVar[str] = "user_message"
    text: str
    # "system" for the system/developer prompt: read for context (a stated date), never
    # as the user's words
    role: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMRequest(Event):
    """A request to the LLM that carries new input (a user message or tool results)."""

    kind: ClassVar[str] = "llm_request"
    api: str
    model: str = ""
    stream: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(Event):
    """A tool call the LLM emitted. `arguments` is None when `raw_arguments` is not JSON."""

    kind: ClassVar[str] = "tool_call"
    call_id: str
    name: str
    arguments: Any
    raw_arguments: str = ""
    api: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult(Event):
    """A tool result the agent sent back; `content` is parsed JSON when the text is JSON."""

    kind: ClassVar[str] = "tool_result"
    call_id: str
    name: str = ""
    content: Any = None
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolExchange(Event):
    """An HTTP exchange that executed a tool (an MCP tools/call, or a REST request)."""

    kind: ClassVar[str] = "tool_exchange"
    name: str
    arguments: Any
    result: Any = None
    is_error: bool = False
    transport: str = "mcp"
    method: str = "POST"
    url: str = ""
    status: int = 0
    duration_s: float = 0.0
    request_id: Any = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (ToolsOffered, UserMessage, LLMRequest, ToolCall, ToolResult, ToolExchange)
}


def to_record(event: Event) -> dict[str, Any]:
    """A JSON-ready dict: `kind`, `session`, `t`, then the event's own fields."""
    record: dict[str, Any] = {"kind": event.kind, "session": str(event.session), "t": event.t}
    for f in fields(event):
        if f.name in ("session", "t"):
            continue
        value = getattr(event, f.name)
        if f.name == "tools":
            value = [_spec_record(s) for s in value]
        record[f.name] = value
    return record


def _spec_record(spec: ToolSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name}
    if spec.description:
        out["description"] = spec.description
    if spec.parameters is not None:
        out["parameters"] = spec.parameters
    if spec.annotations is not None:
        out["annotations"] = spec.annotations
    return out


class RecordError(ValueError):
    """A capture record that cannot be turned into an event."""


def from_record(record: dict[str, Any]) -> Event:
    """Inverse of `to_record`; raises RecordError saying what is wrong."""
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    kind = record.get("kind")
    cls = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise RecordError(f"unknown kind {kind!r}")
    try:
        kwargs: dict[str, Any] = {
            "session": SessionKey.parse(str(record["session"])),
            "t": float(record["t"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{kind}: missing or bad session/t ({exc})") from None
    for f in fields(cls):
        if f.name in kwargs or f.name not in record:
            continue
        value = record[f.name]
        if f.name == "tools":
            value = tuple(ToolSpec(**_spec_kwargs(s)) for s in value)
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RecordError(f"{kind}: {exc}") from None


def _spec_kwargs(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise RecordError("tools: each tool needs a string name")
    keys = ("name", "description", "parameters", "annotations")
    return {k: spec[k] for k in keys if k in spec}


__all__ = [
    "EVENT_TYPES",
    "Event",
    "LLMRequest",
    "RecordError",
    "SessionKey",
    "ToolCall",
    "ToolExchange",
    "ToolResult",
    "ToolSpec",
    "ToolsOffered",
    "UserMessage",
    "from_record",
    "to_record",
    "toolset_id",
]
