"""OpenAI Chat Completions codec: `POST .../chat/completions` with a `messages` list.

Most OpenAI-compatible servers (vLLM, Ollama, LiteLLM, OpenRouter, Azure) speak
this format behind arbitrary hosts and path prefixes, so a request is recognised
by its path suffix and body shape only.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    as_list,
    as_str,
    call_item,
    content_text,
    json_or_text,
    route,
)
from prefire.wire.providers.sse import SSESplitter

API = "openai_chat"
_SYSTEM_ROLES = frozenset({"system", "developer"})
_TEXT_PARTS = frozenset({"text"})


def _text(content: Any) -> str:
    """A message's text: a plain string, or its text parts joined with newlines."""
    return content_text(content, _TEXT_PARTS, default_kind="text")


def _choice0(choices: Any) -> dict[str, Any] | None:
    """The first choice; with `n` > 1 the other choices are alternatives nobody acts on."""
    for choice in as_list(choices):
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _spec(fn: Any) -> ToolSpec | None:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        return None
    return ToolSpec(
        name=fn["name"], description=as_str(fn.get("description")), parameters=fn.get("parameters")
    )


def _tools(body: dict[str, Any]) -> tuple[ToolSpec, ...]:
    fns = [t.get("function") for t in as_list(body.get("tools")) if _is_function(t)]
    fns += as_list(body.get("functions"))  # legacy pre-`tools` form
    return tuple(spec for spec in map(_spec, fns) if spec is not None)


def _is_function(entry: Any) -> bool:
    # Other types (`custom` free-text tools) carry no JSON arguments.
    return isinstance(entry, dict) and entry.get("type", "function") == "function"


def _draft(call_id: str, fn: dict[str, Any]) -> CallDraft:
    return CallDraft(call_id, as_str(fn.get("name")), *arguments(fn.get("arguments")))


def _assistant_items(message: dict[str, Any]) -> list[Item]:
    calls = [
        call_item(_draft(as_str(tc.get("id")), tc["function"]))
        for tc in as_list(message.get("tool_calls"))
        if _is_function(tc) and isinstance(tc.get("function"), dict)
    ]
    if isinstance(message.get("function_call"), dict):  # legacy single call, no id
        calls.append(call_item(_draft("", message["function_call"])))
    text = _text(message.get("content"))
    # A message with neither text nor calls still marks a turn in the history.
    head = [Item(ASSISTANT, text=text)] if text or not calls else []
    return head + calls


def _message_items(message: dict[str, Any]) -> list[Item]:
    role = as_str(message.get("role"))  # a list or an object would not even hash
    text = _text(message.get("content"))
    if role in _SYSTEM_ROLES:
        return [Item(SYSTEM, text=text)]
    if role == "user":
        return [Item(USER, text=text)]
    if role == "assistant":
        return _assistant_items(message)
    if role in ("tool", "function"):
        # Legacy `function` results name the function but carry no call id.
        call_id = as_str(message.get("tool_call_id")) if role == "tool" else ""
        name = as_str(message.get("name"))
        return [Item(TOOL_RESULT, call_id=call_id, name=name, content=json_or_text(text))]
    return []


def _response_drafts(message: dict[str, Any]) -> list[CallDraft]:
    drafts = []
    for tc in as_list(message.get("tool_calls")):
        fn = as_dict(tc.get("function")) if _is_function(tc) else {}
        if as_str(fn.get("name")):
            drafts.append(_draft(as_str(tc.get("id")), fn))
    legacy = as_dict(message.get("function_call"))
    if as_str(legacy.get("name")):
        drafts.append(_draft("", legacy))
    return drafts


@dataclass(slots=True)
class _Partial:
    """A streamed tool call whose argument pieces are still arriving."""

    index: int
    call_id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    def add(self, delta: dict[str, Any]) -> None:
        self.call_id = self.call_id or as_str(delta.get("id"))
        fn = as_dict(delta.get("function"))
        # The name comes whole in the first delta; some servers repeat it later.
        self.name = self.name or as_str(fn.get("name"))
        piece = fn.get("arguments")
        self.pieces.append(piece if isinstance(piece, str) else arguments(piece)[1])

    def complete(self) -> bool:
        """Whether the arguments so far are a whole JSON object (checked only when the
        last piece ends in "}", so a long stream is not re-parsed on every piece)."""
        if not self.name or not self.pieces or not self.pieces[-1].rstrip().endswith("}"):
            return False
        return isinstance(loads_or_none("".join(self.pieces)), dict)

    def draft(self) -> CallDraft:
        raw = "".join(self.pieces)
        return CallDraft(self.call_id, self.name, *arguments(raw))


def _call_deltas(delta: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (tc for tc in as_list(delta.get("tool_calls")) if isinstance(tc, dict))
    if isinstance(delta.get("function_call"), dict):  # legacy: one call, no id, no index
        yield {"index": 0, "function": delta["function_call"]}


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ChatStreamDecoder:
    """Decodes `data: {chat.completion.chunk}` events up to `data: [DONE]`.

    Only one call is open at a time: OpenAI streams parallel calls one after
    the other, so a delta that starts another call closes the open one.
    """

    def __init__(self) -> None:
        self._sse = SSESplitter()
        self._open: _Partial | None = None
        self._closed_indexes: set[int] = set()
        self._closed_ids: set[str] = set()
        self._response_id = ""
        self._stop_reason = ""
        self._text: list[str] = []
        self._done = False

    def feed(self, data: bytes) -> list[Output]:
        out: list[Output] = []
        for event in self._sse.feed(data):
            self._event(event.data, out)
        return out

    def close(self) -> list[Output]:
        self._sse.close()
        out: list[Output] = []
        self._finish(out)
        return out

    def _event(self, data: str, out: list[Output]) -> None:
        if self._done:
            return
        if data.strip() == "[DONE]":
            self._finish(out)
            return
        chunk = loads_or_none(data)
        if not isinstance(chunk, dict):
            return
        self._response_id = self._response_id or as_str(chunk.get("id"))
        choice = _choice0(chunk.get("choices"))  # None for usage-only chunks
        if choice is None:
            return
        delta = as_dict(choice.get("delta"))
        if isinstance(delta.get("content"), str):
            self._text.append(delta["content"])
        for call_delta in _call_deltas(delta):
            self._call_delta(call_delta, out)
        if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
            self._stop_reason = choice["finish_reason"]
            self._close_call(out)

    def _call_delta(self, delta: dict[str, Any], out: list[Output]) -> None:
        current = self._open
        # Some servers omit `index`; such a delta continues the open call.
        index = _index(delta.get("index"))
        if index is None:
            index = current.index if current else 0
        call_id = as_str(delta.get("id"))
        # Some servers send every call at index 0, told apart only by a new id.
        new_id = (
            bool(call_id)
            and current is not None
            and bool(current.call_id)
            and call_id != current.call_id
        )
        if current is not None and index == current.index and not new_id:
            current.add(delta)
        elif index in self._closed_indexes and (not call_id or call_id in self._closed_ids):
            return  # a late piece of a call already emitted: never emit twice
        else:
            self._close_call(out)
            self._open = _Partial(index)
            self._open.add(delta)
        if self._open is not None and self._open.complete():
            # Arguments are one JSON object: once they parse, nothing valid can follow,
            # so the call is done now, not when the stream says so (often much later).
            self._close_call(out)

    def _close_call(self, out: list[Output]) -> None:
        call, self._open = self._open, None
        if call is None:
            return
        self._closed_indexes.add(call.index)
        if call.call_id:
            self._closed_ids.add(call.call_id)
        if call.name:
            out.append(call.draft())

    def _finish(self, out: list[Output]) -> None:
        if self._done:
            return
        self._done = True
        self._close_call(out)
        out.append(ResponseDone(self._response_id, self._stop_reason, "".join(self._text)))


class OpenAIChatCodec:
    api = API

    def matches(self, method: str, path: str, body: Any) -> bool:
        return (
            isinstance(method, str)
            and method.upper() == "POST"
            and route(path).endswith("/chat/completions")
            and isinstance(body, dict)
            and isinstance(body.get("messages"), list)
        )

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest:
        if not isinstance(body, dict):
            return ParsedRequest(api=API)
        messages = as_list(body.get("messages"))
        items = [item for m in messages if isinstance(m, dict) for item in _message_items(m)]
        return ParsedRequest(
            api=API,
            model=as_str(body.get("model")),
            stream=body.get("stream") is True,
            tools=_tools(body),
            items=tuple(items),
            turns=len(messages),
        )

    def parse_response(self, body: Any, request: ParsedRequest) -> list[Output]:
        if not isinstance(body, dict):
            return []
        choice = _choice0(body.get("choices")) or {}
        message = as_dict(choice.get("message"))
        done = ResponseDone(
            response_id=as_str(body.get("id")),
            stop_reason=as_str(choice.get("finish_reason")),
            text=_text(message.get("content")),
        )
        return [*_response_drafts(message), done]

    def stream_decoder(self, request: ParsedRequest) -> ChatStreamDecoder:
        return ChatStreamDecoder()


CODEC = OpenAIChatCodec()
