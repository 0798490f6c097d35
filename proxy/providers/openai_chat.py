"""OpenAI Chat Completions codec: `POST .../chat/completions` with a `messages` list.

Most OpenAI-compatible servers (vLLM, Ollama, LiteLLM, OpenRouter, Azure) speak
this format behind arbitrary hosts and path prefixes, so a request is recognised
by its path suffix and body shape only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from prefire.patterns.canonical import loads_or_none
from prefire.patterns.events import ToolSpec
from prefire.proxy.providers.base import (
    ASSISTANT,
    SYSTEM,
    TOOL_CALL,
    TOOL_RESULT,
    USER,
    CallDraft,
    Item,
    Output,
    ParsedRequest,
    ResponseDone,
)
from prefire.proxy.providers.sse import SSESplitter

API = "openai_chat"
_SYSTEM_ROLES = frozenset({"system", "developer"})


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _path_ends(path: Any, suffix: str) -> bool:
    # Azure adds `?api-version=...`; some clients add a trailing slash.
    return isinstance(path, str) and path.partition("?")[0].rstrip("/").endswith(suffix)


def _text(content: Any) -> str:
    """A message's text: a plain string, or its text parts joined with newlines."""
    if isinstance(content, str):
        return content
    parts = [p for p in _list(content) if isinstance(p, dict) and p.get("type", "text") == "text"]
    return "\n".join(p["text"] for p in parts if isinstance(p.get("text"), str))


def _arguments(raw: Any) -> tuple[Any, str]:
    """(parsed, raw string) of tool call arguments; a few servers send an object."""
    if isinstance(raw, str):
        return loads_or_none(raw), raw
    if raw is None:
        return None, ""
    try:
        return raw, orjson.dumps(raw).decode()
    except TypeError:  # orjson.JSONEncodeError, e.g. an integer wider than 64 bits
        return None, ""


def _result_content(text: str) -> Any:
    parsed = loads_or_none(text)
    return text if parsed is None else parsed


def _choice0(choices: Any) -> dict[str, Any] | None:
    """The first choice; with `n` > 1 the other choices are alternatives nobody acts on."""
    for choice in _list(choices):
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _spec(fn: Any) -> ToolSpec | None:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        return None
    return ToolSpec(
        name=fn["name"], description=_str(fn.get("description")), parameters=fn.get("parameters")
    )


def _tools(body: dict[str, Any]) -> tuple[ToolSpec, ...]:
    fns = [t.get("function") for t in _list(body.get("tools")) if _is_function(t)]
    fns += _list(body.get("functions"))  # legacy pre-`tools` form
    return tuple(spec for spec in map(_spec, fns) if spec is not None)


def _is_function(entry: Any) -> bool:
    # Other types (`custom` free-text tools) carry no JSON arguments.
    return isinstance(entry, dict) and entry.get("type", "function") == "function"


def _call_item(call_id: str, fn: dict[str, Any]) -> Item:
    arguments, raw = _arguments(fn.get("arguments"))
    return Item(
        TOOL_CALL,
        call_id=call_id,
        name=_str(fn.get("name")),
        arguments=arguments,
        raw_arguments=raw,
    )


def _assistant_items(message: dict[str, Any]) -> list[Item]:
    calls = [
        _call_item(_str(tc.get("id")), tc["function"])
        for tc in _list(message.get("tool_calls"))
        if _is_function(tc) and isinstance(tc.get("function"), dict)
    ]
    if isinstance(message.get("function_call"), dict):  # legacy single call, no id
        calls.append(_call_item("", message["function_call"]))
    text = _text(message.get("content"))
    # A message with neither text nor calls still marks a turn in the history.
    head = [Item(ASSISTANT, text=text)] if text or not calls else []
    return head + calls


def _message_items(message: dict[str, Any]) -> list[Item]:
    role = message.get("role")
    text = _text(message.get("content"))
    if role in _SYSTEM_ROLES:
        return [Item(SYSTEM, text=text)]
    if role == "user":
        return [Item(USER, text=text)]
    if role == "assistant":
        return _assistant_items(message)
    if role in ("tool", "function"):
        # Legacy `function` results name the function but carry no call id.
        call_id = _str(message.get("tool_call_id")) if role == "tool" else ""
        name = _str(message.get("name"))
        return [Item(TOOL_RESULT, call_id=call_id, name=name, content=_result_content(text))]
    return []


def _draft(call_id: str, name: str, raw_arguments: Any) -> CallDraft:
    arguments, raw = _arguments(raw_arguments)
    return CallDraft(call_id=call_id, name=name, arguments=arguments, raw_arguments=raw)


def _response_drafts(message: dict[str, Any]) -> list[CallDraft]:
    drafts = []
    for tc in _list(message.get("tool_calls")):
        fn = _dict(tc.get("function")) if _is_function(tc) else {}
        if _str(fn.get("name")):
            drafts.append(_draft(_str(tc.get("id")), fn["name"], fn.get("arguments")))
    legacy = _dict(message.get("function_call"))
    if _str(legacy.get("name")):
        drafts.append(_draft("", legacy["name"], legacy.get("arguments")))
    return drafts


@dataclass(slots=True)
class _Partial:
    """A streamed tool call whose argument pieces are still arriving."""

    index: int
    call_id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    def add(self, delta: dict[str, Any]) -> None:
        self.call_id = self.call_id or _str(delta.get("id"))
        fn = _dict(delta.get("function"))
        # The name comes whole in the first delta; some servers repeat it later.
        self.name = self.name or _str(fn.get("name"))
        piece = fn.get("arguments")
        self.pieces.append(piece if isinstance(piece, str) else _arguments(piece)[1])

    def draft(self) -> CallDraft:
        raw = "".join(self.pieces)
        return CallDraft(self.call_id, self.name, loads_or_none(raw), raw)


def _call_deltas(delta: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (tc for tc in _list(delta.get("tool_calls")) if isinstance(tc, dict))
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
        self._response_id = self._response_id or _str(chunk.get("id"))
        choice = _choice0(chunk.get("choices"))  # None for usage-only chunks
        if choice is None:
            return
        delta = _dict(choice.get("delta"))
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
        call_id = _str(delta.get("id"))
        # Some servers send every call at index 0, told apart only by a new id.
        new_id = bool(call_id) and bool(current and current.call_id) and call_id != current.call_id
        if current is not None and index == current.index and not new_id:
            current.add(delta)
            return
        if index in self._closed_indexes and (not call_id or call_id in self._closed_ids):
            return  # a late piece of a call already emitted: never emit twice
        self._close_call(out)
        self._open = _Partial(index)
        self._open.add(delta)

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
            and _path_ends(path, "/chat/completions")
            and isinstance(body, dict)
            and isinstance(body.get("messages"), list)
        )

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest:
        if not isinstance(body, dict):
            return ParsedRequest(api=API)
        messages = _list(body.get("messages"))
        items = [item for m in messages if isinstance(m, dict) for item in _message_items(m)]
        return ParsedRequest(
            api=API,
            model=_str(body.get("model")),
            stream=body.get("stream") is True,
            tools=_tools(body),
            items=tuple(items),
            turns=len(messages),
        )

    def parse_response(self, body: Any, request: ParsedRequest) -> list[Output]:
        if not isinstance(body, dict):
            return []
        choice = _choice0(body.get("choices")) or {}
        message = _dict(choice.get("message"))
        done = ResponseDone(
            response_id=_str(body.get("id")),
            stop_reason=_str(choice.get("finish_reason")),
            text=_text(message.get("content")),
        )
        return [*_response_drafts(message), done]

    def stream_decoder(self, request: ParsedRequest) -> ChatStreamDecoder:
        return ChatStreamDecoder()


CODEC = OpenAIChatCodec()
