"""Anthropic Messages API codec: POST .../messages, or Claude on Vertex AI.

Vertex AI serves the same body at .../models/claude-...:rawPredict and
:streamRawPredict, with the model in the path instead of the body.

A message thread (beta message-threads) holds the conversation at Anthropic: a request
with `thread: {"type": "continue", "previous_message_id": ID}` carries only its new
messages (no system prompt, no tools) and continues the conversation of reply ID, as a
Responses request with `previous_response_id` does.

Only client tools matter to the proxy: `tool_use` blocks the agent must run.
Server tools (`server_tool_use`, `web_search_tool_result`, ...) and thinking
blocks run or live at Anthropic and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefire.patterns.canonical import loads_or_none
from prefire.patterns.events import ToolSpec
from prefire.wire.providers.base import (
    ASSISTANT,
    SYSTEM,
    TOOL_RESULT,
    USER,
    CallDraft,
    Item,
    Output,
    ParsedRequest,
    ResponseDone,
)
from prefire.wire.providers.shape import (
    arguments,
    as_dict,
    as_str,
    call_item,
    json_or_text,
    model_action,
    object_arguments,
    route,
    text_runs,
)
from prefire.wire.providers.sse import SSESplitter

_VERTEX_ACTIONS = ("rawPredict", "streamRawPredict")
_ROLES = {"assistant": ASSISTANT, "system": SYSTEM}


class AnthropicCodec:
    api = "anthropic"

    def matches(self, method: str, path: str, body: Any) -> bool:
        # The path ends in /messages whatever the prefix; /messages/count_tokens
        # and /messages/batches do not, and OpenAI thread messages have no list.
        # On Vertex AI only Claude models count: count-tokens:rawPredict does not.
        path = route(path)
        return (
            method == "POST"
            and (path.endswith("/messages") or bool(_vertex_model(path)))
            and isinstance(body, dict)
            and isinstance(body.get("messages"), list)
        )

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest:
        if not isinstance(body, dict):
            return ParsedRequest(api=self.api)
        path = route(path)
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        items: list[Item] = []
        system = _system_text(body.get("system"))
        if system:
            items.append(Item(SYSTEM, text=system))
        for message in messages:
            items.extend(_message_items(message))
        return ParsedRequest(
            api=self.api,
            model=as_str(body.get("model")) or _vertex_model(path),
            stream=body.get("stream") is True or path.endswith(":streamRawPredict"),
            tools=_tools(body.get("tools")),
            items=tuple(items),
            turns=len(messages),
            previous_response_id=_thread_continues(body.get("thread")),
        )

    def parse_response(self, body: Any, request: ParsedRequest) -> list[Output]:
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            return []  # error bodies ({"type": "error", ...}) have no content
        blocks = [b for b in body["content"] if isinstance(b, dict)]
        out: list[Output] = [d for b in blocks if b.get("type") == "tool_use" and (d := _draft(b))]
        text = "".join(as_str(b.get("text")) for b in blocks if b.get("type") == "text")
        out.append(
            ResponseDone(
                response_id=as_str(body.get("id")),
                stop_reason=as_str(body.get("stop_reason")),
                text=text,
            )
        )
        return out

    def stream_decoder(self, request: ParsedRequest) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()


@dataclass(slots=True)
class _ToolBlock:
    """A streamed tool_use block whose input JSON is still arriving."""

    call_id: str
    name: str
    start_input: Any
    parts: list[str] = field(default_factory=list)

    def draft(self) -> CallDraft:
        raw = "".join(self.parts)
        if not raw:
            # No input_json_delta at all: the input is the one content_block_start carried.
            return CallDraft(self.call_id, self.name, *object_arguments(as_dict(self.start_input)))
        return CallDraft(self.call_id, self.name, *arguments(raw))


class AnthropicStreamDecoder:
    """Messages API SSE: a tool call is complete at its content_block_stop."""

    def __init__(self) -> None:
        self._sse = SSESplitter()
        self._blocks: dict[int, _ToolBlock] = {}
        self._text: list[str] = []
        self._response_id = ""
        self._stop_reason = ""
        self._ended = False

    def feed(self, data: bytes) -> list[Output]:
        if not isinstance(data, bytes | bytearray):
            return []
        out: list[Output] = []
        for event in self._sse.feed(data):
            if self._ended:
                break
            payload = loads_or_none(event.data)
            if isinstance(payload, dict):
                kind = payload.get("type")
                self._event(kind if isinstance(kind, str) else event.event, payload, out)
        return out

    def close(self) -> list[Output]:
        # A stream cut before message_stop is not a finished response.
        self._sse.close()
        self._ended = True
        return []

    def _event(self, kind: str, payload: dict[str, Any], out: list[Output]) -> None:
        match kind:
            case "message_start":
                message = payload.get("message")
                if isinstance(message, dict):
                    self._response_id = as_str(message.get("id"))
            case "content_block_start":
                self._block_start(payload)
            case "content_block_delta":
                self._block_delta(payload)
            case "content_block_stop":
                index = _index(payload)
                block = self._blocks.pop(index, None) if index is not None else None
                if block is not None:
                    out.append(block.draft())
            case "message_delta":
                delta = payload.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                    self._stop_reason = delta["stop_reason"]
            case "message_stop":
                out.append(ResponseDone(self._response_id, self._stop_reason, "".join(self._text)))
                self._ended = True
            case "error":
                # Calls still open never finished; no ResponseDone for a failed response.
                self._ended = True

    def _block_start(self, payload: dict[str, Any]) -> None:
        index = _index(payload)
        block = payload.get("content_block")
        if index is None or not isinstance(block, dict):
            return
        if block.get("type") == "text":
            self._text.append(as_str(block.get("text")))
        elif block.get("type") == "tool_use" and as_str(block.get("name")):
            self._blocks[index] = _ToolBlock(
                as_str(block.get("id")), block["name"], block.get("input")
            )

    def _block_delta(self, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return
        if delta.get("type") == "text_delta":
            self._text.append(as_str(delta.get("text")))
        elif delta.get("type") == "input_json_delta":
            index = _index(payload)
            block = self._blocks.get(index) if index is not None else None
            if block is not None:
                block.parts.append(as_str(delta.get("partial_json")))


def _thread_continues(thread: Any) -> str:
    """The reply a message-thread request continues from, or ""."""
    if isinstance(thread, dict) and thread.get("type") == "continue":
        return as_str(thread.get("previous_message_id"))
    return ""


def _vertex_model(path: str) -> str:
    """The Claude model of a Vertex AI .../models/MODEL:rawPredict path, else ""."""
    model, action = model_action(path)
    return model if action in _VERTEX_ACTIONS and model.startswith("claude") else ""


def _index(payload: dict[str, Any]) -> int | None:
    index = payload.get("index")
    return index if isinstance(index, int) else None


def _system_text(system: Any) -> str:
    if isinstance(system, list):
        return "\n".join(as_str(b.get("text")) for b in system if _is_text(b))
    return as_str(system)


def _is_text(block: Any) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "text" and bool(as_str(block.get("text")))
    )


def _message_items(message: Any) -> list[Item]:
    if not isinstance(message, dict):
        return []
    # Claude Code (2.1.3xx) puts `role: "system"` entries among the messages: system text.
    role = _ROLES.get(as_str(message.get("role")), USER)
    content = message.get("content")
    if isinstance(content, str):
        return [Item(role, text=content)] if content else []
    if not isinstance(content, list):
        return []
    # Consecutive text blocks make one item.
    return text_runs((b["text"] if _is_text(b) else _tool_item(b) for b in content), role)


def _tool_item(block: Any) -> Item | None:
    if not isinstance(block, dict):
        return None
    if block.get("type") == "tool_use":
        draft = _draft(block)
        return None if draft is None else call_item(draft)
    if block.get("type") == "tool_result" and as_str(block.get("tool_use_id")):
        return Item(
            TOOL_RESULT,
            call_id=block["tool_use_id"],
            content=_result_content(block.get("content")),
            is_error=block.get("is_error") is True,
        )
    return None


def _draft(block: dict[str, Any]) -> CallDraft | None:
    """A tool_use block as a call; `input` is an object on the wire."""
    name = as_str(block.get("name"))
    if not name:
        return None
    return CallDraft(as_str(block.get("id")), name, *object_arguments(block.get("input")))


def _result_content(content: Any) -> Any:
    """Parsed JSON when the result text is JSON, else the text (text blocks joined)."""
    if isinstance(content, list):
        content = "\n".join(b["text"] for b in content if _is_text(b))
    return json_or_text(as_str(content))


def _tools(tools: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(tools, list):
        return ()
    specs: list[ToolSpec] = []
    for tool in tools:
        if not isinstance(tool, dict) or not as_str(tool.get("name")):
            continue
        schema = tool.get("input_schema")
        if schema is None and tool.get("type", "custom") != "custom":
            continue  # a server tool (web_search_20250305, ...): Anthropic runs it
        specs.append(ToolSpec(tool["name"], as_str(tool.get("description")), schema))
    return tuple(specs)


CODEC = AnthropicCodec()
