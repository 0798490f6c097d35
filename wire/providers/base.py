"""The codec interface: sans-I/O parsers from wire formats to normalized records.

A codec never raises on bad input: a malformed part is skipped, and what could
be understood is returned. The addon turns these records into the events of
`prefire.patterns.events` once sessions.py has placed them in a conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from prefire.patterns.events import ToolSpec

# Item roles, in the order a chat history can hold them.
SYSTEM = "system"
USER = "user"
ASSISTANT = "assistant"
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of the history a chat request carries.

    `text` holds user/system/assistant text. A TOOL_CALL has call_id, name,
    arguments (parsed, or None when raw_arguments is not JSON) and
    raw_arguments. A TOOL_RESULT has call_id, name when the wire format says
    it, content (parsed JSON when the text is JSON, else the text) and is_error.
    """

    role: str
    text: str = ""
    call_id: str = ""
    name: str = ""
    arguments: Any = None
    raw_arguments: str = ""
    content: Any = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    api: str
    model: str = ""
    stream: bool = False
    tools: tuple[ToolSpec, ...] = ()
    items: tuple[Item, ...] = ()
    # Responses API: the response this request continues.
    previous_response_id: str = ""
    # Number of turns (messages / contents) in the request; Gemini derives call ids from it.
    turns: int = 0


@dataclass(frozen=True, slots=True)
class CallDraft:
    """A tool call the LLM has finished emitting."""

    call_id: str
    name: str
    arguments: Any
    raw_arguments: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The LLM response ended. `response_id` links Responses API chains."""

    response_id: str = ""
    stop_reason: str = ""
    text: str = ""


Output = CallDraft | ResponseDone


class StreamDecoder(Protocol):
    """Incremental parser of one streamed response body (already content-decoded)."""

    def feed(self, data: bytes) -> list[Output]: ...

    def close(self) -> list[Output]: ...


class LLMCodec(Protocol):
    api: str

    def matches(self, method: str, path: str, body: Any) -> bool:
        """Whether a request with this method, URL path and parsed JSON body is ours."""
        ...

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest: ...

    def parse_response(self, body: Any, request: ParsedRequest) -> list[Output]:
        """Parse a whole (non-streamed) JSON response body."""
        ...

    def stream_decoder(self, request: ParsedRequest) -> StreamDecoder: ...
