"""Gemini generateContent / streamGenerateContent codec.

Gemini function calls often carry no id, so ids are synthesized from where the
call sits in the history: "gemini-{turn}-fc{k}", the k-th functionCall part of
the model turn that starts at content index `turn`. A response's model content
becomes content number `request.turns` of the next request, so the response
decoders use that index and the next request finds the same ids. Only function
calls are counted: clients that merge adjacent text parts, or store each
streamed chunk as a content of its own, still find the same ids.

Requests may spell fields in snake_case (the REST API accepts both spellings);
responses always use camelCase.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
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
    as_str,
    call_item,
    model_action,
    object_arguments,
    route,
    text_runs,
)
from prefire.wire.providers.sse import SSESplitter

_ACTIONS = (":generateContent", ":streamGenerateContent")


class GeminiCodec:
    api = "gemini"

    def matches(self, method: str, path: str, body: Any) -> bool:
        # Covers AI Studio (/v1beta/models/M:action) and Vertex
        # (/v1/projects/P/locations/L/publishers/google/models/M:action), not
        # Claude on Vertex (.../publishers/anthropic/models/M:rawPredict).
        return (
            method == "POST"
            and route(path).endswith(_ACTIONS)
            and isinstance(body, dict)
            and isinstance(body.get("contents"), list)
        )

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest:
        path = route(path)
        model = model_action(path)[0]
        if not isinstance(body, dict):
            return ParsedRequest(api=self.api, model=model)
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
            model=model,
            stream=":streamGenerateContent" in path,
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
        self._ids = _call_ids(turn)  # one turn across all chunks
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
        self._response_id = self._response_id or as_str(chunk.get("responseId"))
        candidate = _first_candidate(chunk)
        out: list[Output] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            call = _function_call(part)
            if call is not None:
                draft = _draft(call, next(self._ids))
                if draft is not None:
                    out.append(draft)
            elif _is_text(part):
                self._text.append(part["text"])
        finish = as_str(candidate.get("finishReason"))
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


def _call_ids(turn: int) -> Iterator[str]:
    """The synthesized ids of the function calls of the model turn at content index `turn`."""
    return (f"gemini-{turn}-fc{k}" for k in itertools.count())


def _field(obj: Any, camel: str, snake: str) -> Any:
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _is_text(part: Any) -> bool:
    """A text part that is not a thought summary."""
    return (
        isinstance(part, dict)
        and bool(as_str(part.get("text")))
        and part.get("thought") is not True
    )


def _system_text(system: Any) -> str:
    if isinstance(system, dict):
        parts = system.get("parts")
        if isinstance(parts, list):
            return "\n".join(p["text"] for p in parts if _is_text(p))
    return as_str(system)


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
    name = as_str(call.get("name"))
    if not name:
        return None
    return CallDraft(
        as_str(call.get("id")) or fallback_id, name, *object_arguments(call.get("args"))
    )


def _history_items(contents: list[Any]) -> list[Item]:
    items: list[Item] = []
    # (call_id, name) of the calls of the latest model turn not answered yet. A
    # turn may span several model contents (clients that store each streamed
    # chunk as a content), so it resets only when a new model turn starts.
    pending: list[tuple[str, str]] = []
    ids = _call_ids(0)
    previous_role: Any = None
    for content_index, content in enumerate(contents):
        if not isinstance(content, dict):
            continue
        role = content.get("role")
        if role != "model" or previous_role != "model":
            ids = _call_ids(content_index)
            if role == "model":
                pending = []
        previous_role = role
        parts = content.get("parts")
        if isinstance(parts, list):
            text_role = ASSISTANT if role == "model" else USER
            # Consecutive text parts make one item.
            entries = (_part_entry(part, ids, pending) for part in parts)
            items.extend(text_runs(entries, text_role))
    return items


def _part_entry(part: Any, ids: Iterator[str], pending: list[tuple[str, str]]) -> str | Item | None:
    """A part's text, or its call or result item; a call takes the next id, as in a response."""
    call = _function_call(part)
    if call is not None:
        draft = _draft(call, next(ids))
        if draft is None:
            return None
        pending.append((draft.call_id, draft.name))
        return call_item(draft)
    if _is_text(part):
        return part["text"]
    response = _field(part, "functionResponse", "function_response")
    if not isinstance(response, dict):
        return None
    name = as_str(response.get("name"))
    result = response.get("response")
    return Item(
        TOOL_RESULT,
        call_id=_answer(pending, as_str(response.get("id")), name),
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
            if isinstance(decl, dict) and as_str(decl.get("name")):
                specs.append(ToolSpec(decl["name"], as_str(decl.get("description")), _schema(decl)))
    return tuple(specs)


def _schema(decl: dict[str, Any]) -> Any:
    schema = decl.get("parameters")
    if schema is None:
        schema = _field(decl, "parametersJsonSchema", "parameters_json_schema")
    return schema


CODEC = GeminiCodec()
