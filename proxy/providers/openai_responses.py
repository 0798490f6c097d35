"""OpenAI Responses API codec: `POST .../responses` with an `input` string or item list.

Requests chain through `previous_response_id`, so a request may carry only the
new items (tool outputs) and the response id links it to its conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefire.patterns.canonical import loads_or_none
from prefire.patterns.events import ToolSpec
from prefire.proxy.providers.base import (
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
from prefire.proxy.providers.shape import (
    arguments,
    as_dict,
    as_list,
    as_str,
    call_item,
    content_text,
    json_or_text,
    route,
)
from prefire.proxy.providers.sse import SSESplitter

API = "openai_responses"
_ROLES = {"user": USER, "system": SYSTEM, "developer": SYSTEM, "assistant": ASSISTANT}
_TEXT_PARTS = frozenset({"input_text", "output_text"})
_TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})


def _text(content: Any) -> str:
    """Text of a content string or part list; images, files and refusals are skipped."""
    return content_text(content, _TEXT_PARTS)


def tool_name(namespace: str, name: str) -> str:
    """The model-side name of a function tool, inside a namespace or not.

    Codex offers each MCP server's tools in a namespace (`mcp__docs`) and its calls
    name both; `mcp__docs__search_docs` reads like Claude Code's `mcp__server__tool`,
    which the bindings map to the server's own `search_docs`.
    """
    return f"{namespace}__{name}" if namespace and name else name


def _function_specs(tools: Any, namespace: str = "") -> list[ToolSpec]:
    out: list[ToolSpec] = []
    for t in as_list(tools):
        t = as_dict(t)
        name = as_str(t.get("name"))
        if t.get("type") == "function" and name:
            out.append(
                ToolSpec(
                    name=tool_name(namespace, name),
                    description=as_str(t.get("description")),
                    parameters=t.get("parameters"),
                )
            )
        elif t.get("type") == "namespace" and name and not namespace:
            out += _function_specs(t.get("tools"), name)
    return out


def _tools(body: dict[str, Any]) -> tuple[ToolSpec, ...]:
    # Built-in tools (web_search, file_search, ...) run at OpenAI, never at the agent.
    return tuple(_function_specs(body.get("tools")))


def _input_item(entry: dict[str, Any]) -> Item | None:
    # Easy input messages (`{role, content}`) may omit `type`.
    kind = entry.get("type") or "message"
    role = as_str(entry.get("role"))  # a list or an object would not even hash
    if kind == "message" and role in _ROLES:
        return Item(_ROLES[role], text=_text(entry.get("content")))
    if kind == "function_call":
        return call_item(_draft(entry))
    if kind == "function_call_output":
        content = json_or_text(_text(entry.get("output")))
        return Item(TOOL_RESULT, call_id=as_str(entry.get("call_id")), content=content)
    return None  # reasoning, item references, built-in tool calls


def _items(body: dict[str, Any]) -> list[Item]:
    items = [Item(SYSTEM, text=body["instructions"])] if as_str(body.get("instructions")) else []
    value = body.get("input")
    if isinstance(value, str):
        return [*items, Item(USER, text=value)]
    parsed = (_input_item(e) for e in as_list(value) if isinstance(e, dict))
    return items + [item for item in parsed if item is not None]


def _turns(value: Any) -> int:
    return 1 if isinstance(value, str) else len(as_list(value))


def _output_draft(item: Any) -> CallDraft | None:
    """A finished `function_call` output item as a draft; anything else gives None."""
    item = as_dict(item)
    # An `incomplete` call was cut off (max_output_tokens): its arguments are partial.
    if item.get("type") != "function_call" or item.get("status") == "incomplete":
        return None
    return _draft(item) if as_str(item.get("name")) else None


def _name(item: dict[str, Any]) -> str:
    return tool_name(as_str(item.get("namespace")), as_str(item.get("name")))


def _draft(item: dict[str, Any]) -> CallDraft:
    return CallDraft(as_str(item.get("call_id")), _name(item), *arguments(item.get("arguments")))


def _output_text(output: Any) -> str:
    """All `output_text` parts of all messages, concatenated like the SDK's `output_text`."""
    messages = [as_dict(o) for o in as_list(output) if as_dict(o).get("type") == "message"]
    parts = [as_dict(p) for m in messages for p in as_list(m.get("content"))]
    return "".join(as_str(p.get("text")) for p in parts if p.get("type") == "output_text")


@dataclass(slots=True)
class _Call:
    """A streamed function call, from `output_item.added` until it is emitted."""

    call_id: str
    name: str
    pieces: list[str] = field(default_factory=list)
    emitted: bool = False


class ResponsesStreamDecoder:
    """Decodes the typed SSE events of a streamed response.

    A call is emitted at `function_call_arguments.done`, or at
    `output_item.done` when the former was missing; it is never emitted twice.
    """

    def __init__(self) -> None:
        self._sse = SSESplitter()
        # The same record under ("item", item_id) and ("index", output_index):
        # events name the item by either.
        self._calls: dict[tuple[str, Any], _Call] = {}
        self._emitted_ids: set[str] = set()
        self._response_id = ""
        self._text: list[str] = []
        self._done = False

    def feed(self, data: bytes) -> list[Output]:
        out: list[Output] = []
        for event in self._sse.feed(data):
            payload = loads_or_none(event.data)
            if isinstance(payload, dict) and not self._done:
                self._event(as_str(payload.get("type")) or event.event, payload, out)
        return out

    def close(self) -> list[Output]:
        self._sse.close()
        if self._done:
            return []
        self._done = True  # cut off: no terminal event, unfinished calls stay unemitted
        return [ResponseDone(self._response_id, "", "".join(self._text))]

    def _event(self, kind: str, payload: dict[str, Any], out: list[Output]) -> None:
        if kind in _TERMINAL:
            self._terminal(as_dict(payload.get("response")), out)
        elif kind in ("response.created", "response.queued", "response.in_progress"):
            self._response_id = (
                as_str(as_dict(payload.get("response")).get("id")) or self._response_id
            )
        elif kind == "response.output_item.added":
            self._added(payload)
        elif kind == "response.function_call_arguments.delta":
            call = self._find(payload.get("item_id"), payload.get("output_index"))
            if call is not None and isinstance(payload.get("delta"), str):
                call.pieces.append(payload["delta"])
        elif kind == "response.function_call_arguments.done":
            self._arguments_done(payload, out)
        elif kind == "response.output_item.done":
            self._item_done(payload, out)
        elif kind == "response.output_text.delta" and isinstance(payload.get("delta"), str):
            self._text.append(payload["delta"])

    def _added(self, payload: dict[str, Any]) -> None:
        item = as_dict(payload.get("item"))
        if item.get("type") != "function_call":
            return
        call = _Call(as_str(item.get("call_id")), _name(item))
        if as_str(item.get("arguments")):
            call.pieces.append(item["arguments"])
        self._remember(call, item.get("id"), payload.get("output_index"))

    def _remember(self, call: _Call, item_id: Any, output_index: Any) -> None:
        if isinstance(item_id, str) and item_id:
            self._calls["item", item_id] = call
        if isinstance(output_index, int):
            self._calls["index", output_index] = call

    def _find(self, item_id: Any, output_index: Any) -> _Call | None:
        if isinstance(item_id, str) and ("item", item_id) in self._calls:
            return self._calls["item", item_id]
        if isinstance(output_index, int):
            return self._calls.get(("index", output_index))
        return None

    def _arguments_done(self, payload: dict[str, Any], out: list[Output]) -> None:
        call = self._find(payload.get("item_id"), payload.get("output_index"))
        # Without `output_item.added` the call id is unknown: `output_item.done` has it.
        if call is None or not call.call_id:
            return
        raw = payload.get("arguments")
        name = call.name or _name(payload)
        self._emit(call, name, raw if isinstance(raw, str) else "".join(call.pieces), out)

    def _item_done(self, payload: dict[str, Any], out: list[Output]) -> None:
        draft = _output_draft(payload.get("item"))
        if draft is None:
            return
        item = as_dict(payload.get("item"))
        call = self._find(item.get("id"), payload.get("output_index"))
        if call is None:
            call = _Call(draft.call_id, draft.name)
            self._remember(call, item.get("id"), payload.get("output_index"))
        call.call_id = call.call_id or draft.call_id
        self._emit(call, draft.name, draft.raw_arguments, out)

    def _emit(self, call: _Call, name: str, raw: str, out: list[Output]) -> None:
        if call.emitted or not name or call.call_id in self._emitted_ids:
            return
        call.emitted = True
        if call.call_id:
            self._emitted_ids.add(call.call_id)
        out.append(CallDraft(call.call_id, name, *arguments(raw)))

    def _terminal(self, response: dict[str, Any], out: list[Output]) -> None:
        self._done = True
        response_id = as_str(response.get("id")) or self._response_id
        out.append(ResponseDone(response_id, as_str(response.get("status")), "".join(self._text)))


class OpenAIResponsesCodec:
    api = API

    def matches(self, method: str, path: str, body: Any) -> bool:
        # The suffix excludes GET/DELETE `.../responses/{id}` and `.../responses/input_tokens`.
        return (
            isinstance(method, str)
            and method.upper() == "POST"
            and route(path).endswith("/responses")
            and isinstance(body, dict)
            and isinstance(body.get("input"), str | list)
        )

    def parse_request(self, body: dict[str, Any], path: str) -> ParsedRequest:
        if not isinstance(body, dict):
            return ParsedRequest(api=API)
        return ParsedRequest(
            api=API,
            model=as_str(body.get("model")),
            stream=body.get("stream") is True,
            tools=_tools(body),
            items=tuple(_items(body)),
            previous_response_id=as_str(body.get("previous_response_id")),
            turns=_turns(body.get("input")),
        )

    def parse_response(self, body: Any, request: ParsedRequest) -> list[Output]:
        if not isinstance(body, dict):
            return []
        output = body.get("output")
        drafts = [d for d in map(_output_draft, as_list(output)) if d is not None]
        done = ResponseDone(
            as_str(body.get("id")), as_str(body.get("status")), _output_text(output)
        )
        return [*drafts, done]

    def stream_decoder(self, request: ParsedRequest) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()


CODEC = OpenAIResponsesCodec()
