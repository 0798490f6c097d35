"""MCP over streamable HTTP (spec 2025-03-26 to 2026-07-28): sans-I/O JSON-RPC parsing,
and the parts of a request a client derives from its body.

The client POSTs one JSON-RPC message or a batch to a single endpoint whose
path is arbitrary. The server answers with application/json (one response or
a batch), with text/event-stream (each event's data is one JSON-RPC message;
server notifications and requests are interleaved with the responses), or with
202 and no body for notifications. This is not an LLM codec: the proxy uses
these functions to see tools/list and tools/call exchanges and to run tools.
Nothing here raises on bad input; what cannot be understood is skipped.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from prefire.patterns.canonical import loads_or_none
from prefire.patterns.events import ToolSpec
from prefire.wire.providers.shape import as_list, as_str, json_or_text
from prefire.wire.providers.sse import SSEEvent, SSESplitter

_SSE_TYPE = "text/event-stream"
# 2026-07-28: every request carries the protocol version, client info and client
# capabilities in params._meta under this prefix, and no session
ENVELOPE_PREFIX = "io.modelcontextprotocol/"
PROTOCOL_VERSION_KEY = ENVELOPE_PREFIX + "protocolVersion"
# 2026-07-28 (SEP-2243): headers mirrored from the body, so intermediaries can route
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
PARAM_HEADER_PREFIX = "mcp-param-"
_NAME_PARAM = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
}
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*\Z")


@dataclass(frozen=True, slots=True)
class McpRequest:
    """A client message with a method; `id` is None for a notification.

    `params` is kept as sent (MCP always sends an object or nothing).
    """

    id: str | int | None
    method: str
    params: Any = None


@dataclass(frozen=True, slots=True)
class McpReply:
    """A JSON-RPC response: `error` is the error object as sent, None on success.

    `id` is None only for errors to requests the server could not read.
    """

    id: str | int | None
    result: Any = None
    error: Any = None


def matches(method: str, path: str, body: Any) -> bool:
    """A POST whose body is a JSON-RPC 2.0 call or a batch holding one.

    `path` is ignored: an MCP endpoint can live at any path.
    """
    if not isinstance(method, str) or method.upper() != "POST":
        return False
    if isinstance(body, dict):
        return _is_call(body)
    if not isinstance(body, list) or not body:
        return False
    # A batch may mix calls with the client's responses to server requests.
    rpc = all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in body)
    return rpc and any(_is_call(m) for m in body)


def parse_request(body: Any) -> list[McpRequest]:
    """The requests and notifications of a POST body, in body order."""
    return [r for m in _messages(body) if (r := _request(m)) is not None]


def parse_response(body: bytes, content_type: str) -> list[McpReply]:
    """The JSON-RPC responses of a whole response body (JSON or SSE).

    The content type picks the format to try first; when it yields nothing the
    other is tried, so a missing or wrong content type still parses.
    """
    data = _as_bytes(body)
    if data is None:
        return []
    ctype = content_type.lower() if isinstance(content_type, str) else ""
    decoders = (
        (_sse_replies, _json_replies) if _SSE_TYPE in ctype else (_json_replies, _sse_replies)
    )
    for decode in decoders:
        if replies := decode(data):
            return replies
    return []


class McpStreamDecoder:
    """Incremental parser of an SSE response body: a reply comes out as soon as its event ends."""

    def __init__(self) -> None:
        self._sse = SSESplitter()

    def feed(self, data: bytes) -> list[McpReply]:
        chunk = _as_bytes(data)
        if chunk is None:
            return []
        return _event_replies(self._sse.feed(chunk))

    def close(self) -> list[McpReply]:
        return _event_replies(self._sse.close())


def tool_specs(result: Any) -> tuple[ToolSpec, ...]:
    """The tools of a tools/list result; annotations are kept as the server gave them."""
    tools = result.get("tools") if isinstance(result, dict) else None
    if not isinstance(tools, list):
        return ()
    return tuple(spec for t in tools if (spec := _tool_spec(t)) is not None)


def call_of(request: McpRequest) -> tuple[str, Any] | None:
    """(tool name, arguments) of a tools/call request; missing arguments mean {}."""
    if not isinstance(request, McpRequest) or request.method != "tools/call":
        return None
    params = request.params
    if not isinstance(params, dict):
        return None
    name = params.get("name")
    arguments = params.get("arguments")
    if arguments is None:
        # Servers treat absent arguments as none; {} keeps canonical matching exact.
        arguments = {}
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return name, arguments


def call_result(result: Any) -> tuple[Any, bool]:
    """(value, is_error) of a tools/call result.

    The value is what the agent will hand the model: the text parts joined
    with "\\n" (parsed JSON when the text is JSON); else structuredContent
    (servers wrap a plain string as {"result": text}, so it comes second);
    else the non-text parts (image, audio, resource) as a list; None when
    there is nothing.
    """
    if not isinstance(result, dict):
        return None, False
    is_error = result.get("isError") is True
    content = result.get("content")
    structured = result.get("structuredContent")
    if structured is not None and not _has_text(content):
        return structured, is_error
    return _content_value(content), is_error


def _has_text(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    )


def _is_call(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and isinstance(message.get("method"), str)
    )


def _valid_id(value: Any) -> bool:
    # MCP ids are strings or integers; bool is an int subclass but never an id.
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    )


def _messages(body: Any) -> list[Any]:
    return [body] if isinstance(body, dict) else as_list(body)


def _request(message: Any) -> McpRequest | None:
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    msg_id = message.get("id")
    if not _valid_id(msg_id):
        return None
    return McpRequest(msg_id, message["method"], message.get("params"))


def _reply(message: Any) -> McpReply | None:
    # A message with a method is a server request or notification, not a reply.
    if not isinstance(message, dict) or "method" in message:
        return None
    if ("result" not in message and "error" not in message) or not _valid_id(message.get("id")):
        return None
    return McpReply(message.get("id"), message.get("result"), message.get("error"))


def _replies_of(data: Any) -> list[McpReply]:
    return [r for m in _messages(data) if (r := _reply(m)) is not None]


def _json_replies(data: bytes) -> list[McpReply]:
    return _replies_of(loads_or_none(data))


def _sse_replies(data: bytes) -> list[McpReply]:
    decoder = McpStreamDecoder()
    return decoder.feed(data) + decoder.close()


def _event_replies(events: list[SSEEvent]) -> list[McpReply]:
    # Like the SDK client: only "message" events carry JSON-RPC; empty data is a
    # resumability priming event.
    out: list[McpReply] = []
    for event in events:
        if event.event == "message" and event.data:
            out += _replies_of(loads_or_none(event.data))
    return out


def _as_bytes(data: Any) -> bytes | None:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "replace")
    return None


def _tool_spec(tool: Any) -> ToolSpec | None:
    if not isinstance(tool, dict):
        return None
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        return None
    schema = tool.get("inputSchema")
    annotations = tool.get("annotations")
    return ToolSpec(
        name=name,
        description=as_str(tool.get("description")),
        parameters=schema if isinstance(schema, dict) else None,
        annotations=annotations if isinstance(annotations, dict) else None,
    )


def _content_value(content: Any) -> Any:
    parts = [p for p in as_list(content) if isinstance(p, dict)]
    texts = [p["text"] for p in parts if p.get("type") == "text" and isinstance(p.get("text"), str)]
    if texts:
        return json_or_text("\n".join(texts))
    return [p for p in parts if p.get("type") != "text"] or None


def envelope(params: Any) -> dict[str, Any]:
    """The protocol envelope of a request's params._meta (2026-07-28 and later): the
    keys under io.modelcontextprotocol/, without per-request ones (progress tokens)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return {}
    return {k: v for k, v in meta.items() if isinstance(k, str) and k.startswith(ENVELOPE_PREFIX)}


def encode_header_value(value: str) -> str:
    """A value as an MCP header carries it: as is when it is plain visible ASCII without
    surrounding spaces, else =?base64?...?= of its UTF-8 bytes (SEP-2243)."""
    plain = (
        _HEADER_SAFE.match(value) is not None
        and value.strip() == value
        and not (value.startswith("=?base64?") and value.endswith("?="))
    )
    if plain:
        return value
    return "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def routing_headers(method: str, params: Any, schema: Any = None) -> dict[str, str]:
    """The headers a 2026-07-28 client derives from a request's body: Mcp-Method, Mcp-Name
    (the tool, prompt or resource it names) and, for tools/call, one Mcp-Param-{Name} per
    argument the tool's input schema marks with x-mcp-header."""
    out = {METHOD_HEADER: method}
    key = _NAME_PARAM.get(method)
    value = params.get(key) if key is not None and isinstance(params, dict) else None
    if isinstance(value, str):
        out[NAME_HEADER] = encode_header_value(value)
    if method == "tools/call" and isinstance(params, dict):
        arguments = params.get("arguments")
        if isinstance(arguments, Mapping):
            out.update(_param_headers(schema, arguments))
    return out


def _param_headers(schema: Any, arguments: Any, depth: int = 0) -> dict[str, str]:
    # x-mcp-header may mark a property at any depth of the `properties` chain
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not isinstance(arguments, Mapping) or depth > 8:
        return {}
    out: dict[str, str] = {}
    for arg, spec in props.items():
        value = arguments.get(arg)
        if value is None or not isinstance(spec, dict):
            continue
        header = spec.get("x-mcp-header")
        if isinstance(header, str) and header:
            text = ("true" if value else "false") if isinstance(value, bool) else value
            if isinstance(text, int | float | str):
                out[PARAM_HEADER_PREFIX + header.lower()] = encode_header_value(str(text))
        else:
            out.update(_param_headers(spec, value, depth + 1))
    return out


def request_body(request_id: str | int, method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def notification_body(method: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method})


def complete(result: Any) -> bool:
    """Whether a result is final: 2026-07-28 servers may answer input_required instead."""
    return not isinstance(result, dict) or result.get("resultType", "complete") == "complete"
