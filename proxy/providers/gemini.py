"""Gemini generateContent / streamGenerateContent codec.

Gemini function calls often carry no id, so ids are synthesized from where the
call sits in the history: "gemini-{content_index}-{part_index}". A response's
model content becomes content number `request.turns` of the next request, so
the response decoders use that index and the next request finds the same ids.

Requests may spell fields in snake_case (the REST API accepts both spellings);
responses always use camelCase.
"""

from __future__ import annotations

import json
import re
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

_ACTIONS = (":generateContent", ":streamGenerateContent")


class GeminiCodec:
    api = "gemini"

    def matches(self, method: str, path: str, body: Any) -> bool:
        # Covers AI Studio (/v1beta/models/M:action) and Vertex
        # (/v1/projects/P/locations/L/publishers/google/models/M:action).
        return (
            method == "POST"
            and _route(path).endswith(_ACTIONS)
            and isinstance(body, dict)
            and isinstance(body.get("contents"), list)
        )

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest:
        route = _route(path)
        if not isinstance(body, dict):
            return ParsedRequest(api=self.api, model=_model(route))
        contents = body.get("contents")
        if not isinstance(contents, list):
            contents = []
        items: list[Item] = []
        system = _system_text(_field(body, "systemInstruction", "system_instruction"))
        if system:
            items.append(Item(SYSTEM, text=system))
        items.extend(_history_items(contents))
        return ParsedRequest(
            api=self.api,
            model=_model(route),
            stream=":streamGenerateContent" in route,
            tools=_tools(body.get("tools")),
            items=tuple(items),
            turns=len(contents),
        )

    def parse_response(self, body: Any, request: ParsedRequest) -> list[Output]:
        # A buffered streamGenerateContent body is a JSON array of chunks.
        assembler = _Assembler(request.turns)
        out: list[Output] = []
        for chunk in body if isinstance(body, list) else [body]:
            out.extend(assembler.chunk(chunk))
        out.extend(assembler.finish())
        return out

    def stream_decoder(self, request: ParsedRequest) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(request.turns)


class _Assembler:
    """Turns GenerateContentResponse chunks (a whole response is one) into outputs."""

    def __init__(self, turn: int) -> None:
        self._turn = turn
        self._parts = 0  # parts seen across all chunks: the part index of synthesized ids
        self._text: list[str] = []
        self._response_id = ""
        self._seen = False
        self._ended = False

    def chunk(self, chunk: Any) -> list[Output]:
        if self._ended or not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self._ended = True  # a failed response: no ResponseDone
            return []
        self._seen = True
        self._response_id = self._response_id or _str(chunk.get("responseId"))
        candidate = _first_candidate(chunk)
        out: list[Output] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            index = self._parts
            self._parts += 1
            call = _function_call(part)
            if call is not None:
                draft = _draft(call, f"gemini-{self._turn}-{index}")
                if draft is not None:
                    out.append(draft)
            elif _is_text(part):
                self._text.append(part["text"])
        finish = _str(candidate.get("finishReason"))
        if finish:
            out.extend(self.finish(finish))
        return out

    def finish(self, stop_reason: str = "") -> list[Output]:
        if self._ended or not self._seen:
            return []
        self._ended = True
        return [ResponseDone(self._response_id, stop_reason, "".join(self._text))]


class GeminiStreamDecoder:
    """streamGenerateContent: SSE with ?alt=sse, else an incrementally sent JSON array."""

    def __init__(self, turn: int) -> None:
        self._assembler = _Assembler(turn)
        self._head = bytearray()  # bytes received before the framing is known
        self._frames: _SSEFrames | _ArrayFrames | None = None

    def feed(self, data: bytes) -> list[Output]:
        if not isinstance(data, bytes | bytearray):
            return []
        if self._frames is None:
            self._head += data
            first = self._head.lstrip()[:1]
            if not first:
                return []
            self._frames = _ArrayFrames() if first == b"[" else _SSEFrames()
            data = bytes(self._head)
            self._head.clear()
        out: list[Output] = []
        for chunk in self._frames.feed(data):
            out.extend(self._assembler.chunk(chunk))
        return out

    def close(self) -> list[Output]:
        return self._assembler.finish()


class _SSEFrames:
    def __init__(self) -> None:
        self._sse = SSESplitter()

    def feed(self, data: bytes) -> list[Any]:
        return [loads_or_none(event.data) for event in self._sse.feed(data)]


# Bytes that matter to brace counting, and the body of a string up to its closing
# quote. UTF-8 continuation bytes are >= 0x80, so scanning bytes for ASCII is safe.
_STRUCTURE = re.compile(rb'[{}"]')
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)


class _ArrayFrames:
    """Yields each top-level object of a streamed JSON array as soon as it is complete."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # scanning resumes here
        self._start = 0  # where the open top-level object began
        self._depth = 0
        self._in_string = False

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        while self._step(out):
            pass
        # Drop what is scanned and not part of an open object.
        cut = self._start if self._depth else self._pos
        del self._buf[:cut]
        self._pos -= cut
        self._start = 0
        return out

    def _step(self, out: list[Any]) -> bool:
        """Advance past one structural byte; False when more data is needed."""
        if self._in_string:
            # The pattern matches "" too, so match() never returns None.
            end = _STRING_BODY.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if end == len(self._buf) or self._buf[end] != ord('"'):
                self._pos = end  # at the end, or at a backslash whose escaped byte is to come
                return False
            self._in_string = False
            self._pos = end + 1
            return True
        m = _STRUCTURE.search(self._buf, self._pos)
        if m is None:
            self._pos = len(self._buf)
            return False
        self._pos = m.end()
        char = m.group()
        if char == b'"':
            self._in_string = True
        elif char == b"{":
            if self._depth == 0:
                self._start = m.start()
            self._depth += 1
        elif self._depth:
            self._depth -= 1
            if not self._depth:
                text = self._buf[self._start : self._pos].decode("utf-8", "replace")
                out.append(loads_or_none(text))
        return True


def _route(path: str) -> str:
    """The path without query string (?alt=sse, ?key=...)."""
    return path.partition("?")[0].rstrip("/") if isinstance(path, str) else ""


def _model(route: str) -> str:
    """The model name: gemini-2.5-flash in .../models/gemini-2.5-flash:generateContent."""
    last = route.rpartition("/")[2]
    return last.partition(":")[0] if ":" in last else ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _field(obj: Any, camel: str, snake: str) -> Any:
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _dump(value: Any) -> str:
    """Compact JSON text of an object the wire sent as an object."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass  # orjson refuses ints beyond 64 bits, deep nesting and lone surrogates
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return ""


def _is_text(part: Any) -> bool:
    """A text part that is not a thought summary."""
    return (
        isinstance(part, dict) and bool(_str(part.get("text"))) and part.get("thought") is not True
    )


def _system_text(system: Any) -> str:
    if isinstance(system, dict):
        parts = system.get("parts")
        if isinstance(parts, list):
            return "\n".join(p["text"] for p in parts if _is_text(p))
    return _str(system)


def _first_candidate(chunk: dict[str, Any]) -> dict[str, Any]:
    """Candidate 0; its `index` is omitted on the wire because it is zero."""
    candidates = chunk.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        if isinstance(candidate, dict) and candidate.get("index", 0) == 0:
            return candidate
    return {}


def _function_call(part: Any) -> dict[str, Any] | None:
    call = _field(part, "functionCall", "function_call")
    return call if isinstance(call, dict) else None


def _draft(call: dict[str, Any], fallback_id: str) -> CallDraft | None:
    name = _str(call.get("name"))
    if not name:
        return None
    call_id = _str(call.get("id")) or fallback_id
    value = call.get("args")
    if isinstance(value, str):
        # Not the API's shape, but some gateways pass the JSON text through.
        return CallDraft(call_id, name, loads_or_none(value), value)
    arguments = {} if value is None else value
    return CallDraft(call_id, name, arguments, _dump(arguments))


def _history_items(contents: list[Any]) -> list[Item]:
    items: list[Item] = []
    # (call_id, name) of the calls of the latest model turn not answered yet. A
    # turn may span several model contents (clients that store each streamed
    # chunk as a content), so it resets only when a new model turn starts.
    pending: list[tuple[str, str]] = []
    previous_role: Any = None
    for content_index, content in enumerate(contents):
        if not isinstance(content, dict):
            continue
        role = content.get("role")
        if role == "model" and previous_role != "model":
            pending = []
        previous_role = role
        parts = content.get("parts")
        if isinstance(parts, list):
            text_role = ASSISTANT if role == "model" else USER
            items.extend(_content_items(parts, content_index, text_role, pending))
    return items


def _content_items(
    parts: list[Any], content_index: int, text_role: str, pending: list[tuple[str, str]]
) -> list[Item]:
    items: list[Item] = []
    texts: list[str] = []  # consecutive text parts make one item
    for part_index, part in enumerate(parts):
        if _is_text(part):
            texts.append(part["text"])
            continue
        item = _tool_item(part, f"gemini-{content_index}-{part_index}", pending)
        if item is None:
            continue
        if texts:
            items.append(Item(text_role, text="\n".join(texts)))
            texts = []
        items.append(item)
    if texts:
        items.append(Item(text_role, text="\n".join(texts)))
    return items


def _tool_item(part: Any, fallback_id: str, pending: list[tuple[str, str]]) -> Item | None:
    call = _function_call(part)
    if call is not None:
        draft = _draft(call, fallback_id)
        if draft is None:
            return None
        pending.append((draft.call_id, draft.name))
        return Item(
            TOOL_CALL,
            call_id=draft.call_id,
            name=draft.name,
            arguments=draft.arguments,
            raw_arguments=draft.raw_arguments,
        )
    response = _field(part, "functionResponse", "function_response")
    if not isinstance(response, dict):
        return None
    name = _str(response.get("name"))
    call_id = _str(response.get("id"))
    result = response.get("response")
    return Item(
        TOOL_RESULT,
        call_id=_answer(pending, call_id, name),
        name=name,
        content=result,
        # Gemini's convention: an "error" key without "output" reports a failure.
        is_error=isinstance(result, dict) and "error" in result and "output" not in result,
    )


def _answer(pending: list[tuple[str, str]], call_id: str, name: str) -> str:
    """Mark a call answered: by id, else the earliest unanswered call of that name."""
    for i, (pending_id, pending_name) in enumerate(pending):
        if (pending_id == call_id) if call_id else (pending_name == name):
            del pending[i]
            return pending_id
    return call_id


def _tools(tools: Any) -> tuple[ToolSpec, ...]:
    specs: list[ToolSpec] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        declarations = _field(tool, "functionDeclarations", "function_declarations")
        for decl in declarations if isinstance(declarations, list) else []:
            if isinstance(decl, dict) and _str(decl.get("name")):
                specs.append(ToolSpec(decl["name"], _str(decl.get("description")), _schema(decl)))
    return tuple(specs)


def _schema(decl: dict[str, Any]) -> Any:
    schema = decl.get("parameters")
    if schema is None:
        schema = _field(decl, "parametersJsonSchema", "parameters_json_schema")
    return schema


CODEC = GeminiCodec()
