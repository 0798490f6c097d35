"""MCP streamable HTTP parsing.

The wire bytes below were captured from the official python SDK (mcp 1.30.0,
FastMCP over streamable HTTP, protocol 2025-06-18), in its SSE mode and in its
json_response mode; sse-starlette separates SSE lines with CRLF.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from prefire.patterns.events import ToolSpec
from prefire.wire.providers.mcp import (
    McpReply,
    McpRequest,
    McpStreamDecoder,
    call_of,
    call_result,
    matches,
    parse_request,
    parse_response,
    tool_specs,
)
from tests.streams import assert_split_invariant, decoding, pieces

JSON = "application/json"
SSE = "text/event-stream"

TOOLS_LIST_REQUEST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
READ_FILE_REQUEST = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {
        "name": "read_file",
        "arguments": {"path": "/etc/hosts"},
        "_meta": {"progressToken": 7},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

TOOLS_LIST_JSON = (
    b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_file","description":"Read a text'
    b' file.","inputSchema":{"properties":{"path":{"title":"Path","type":"string"}},"required":'
    b'["path"],"title":"read_fileArguments","type":"object"},"outputSchema":{"properties":{"res'
    b'ult":{"title":"Result","type":"string"}},"required":["result"],"title":"read_fileOutput",'
    b'"type":"object"},"annotations":{"title":"Read file","readOnlyHint":true,"openWorldHint":f'
    b'alse}},{"name":"get_weather","description":"Weather for a city.","inputSchema":{"properti'
    b'es":{"city":{"title":"City","type":"string"}},"required":["city"],"title":"get_weatherArg'
    b'uments","type":"object"},"annotations":{"destructiveHint":true,"idempotentHint":false}},{'
    b'"name":"boom","description":"","inputSchema":{"properties":{},"title":"boomArguments","ty'
    b'pe":"object"},"outputSchema":{"properties":{"result":{"title":"Result","type":"string"}},'
    b'"required":["result"],"title":"boomOutput","type":"object"}}]}}'
)
TOOLS_LIST_SSE = b"event: message\r\ndata: " + TOOLS_LIST_JSON + b"\r\n\r\n"

# FastMCP reports progress, then returns a str: content text plus structuredContent.
READ_FILE_SSE = (
    b'event: message\r\ndata: {"method":"notifications/progress","params":{"progressToken":7,'
    b'"progress":0.5,"total":1.0,"message":"half"},"jsonrpc":"2.0"}\r\n\r\n'
    b'event: message\r\ndata: {"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","te'
    b'xt":"hello\\nworld"}],"structuredContent":{"result":"hello\\nworld"},"isError":false}}\r\n\r\n'
)
READ_FILE_REPLY = McpReply(
    2,
    {
        "content": [{"type": "text", "text": "hello\nworld"}],
        "structuredContent": {"result": "hello\nworld"},
        "isError": False,
    },
)
# A dict returned without an output schema: pretty-printed JSON text only.
WEATHER_JSON = (
    b'{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"{\\n  \\"city\\": \\"Pa'
    b'ris\\",\\n  \\"temp_c\\": 21.5\\n}"}],"isError":false}}'
)
BOOM_JSON = (
    b'{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"Error executing tool b'
    b'oom: kaboom"}],"isError":true}}'
)
ERROR_JSON = (
    b'{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"Invalid request parameters","da'
    b'ta":""}}'
)
ERROR_SSE = b"event: message\r\ndata: " + ERROR_JSON + b"\r\n\r\n"

# A resumable server (event store) sends a priming event with an id and empty
# data first; sse-starlette sends ": ping" comments while a tool runs.
RESUMABLE_SSE = (
    b"id: 0_1\r\nretry: 1000\r\ndata: \r\n\r\n"
    b": ping - 2025-06-18 10:00:00.000000+00:00\r\n\r\n"
    + READ_FILE_SSE.replace(
        b'event: message\r\ndata: {"jsonrpc', b'id: 0_2\r\nevent: message\r\ndata: {"jsonrpc'
    )
)

STREAMS = {
    "tools_list": TOOLS_LIST_SSE,
    "read_file_progress": READ_FILE_SSE,
    "error": ERROR_SSE,
    "resumable": RESUMABLE_SSE,
    "lf": READ_FILE_SSE.replace(b"\r\n", b"\n"),
    "cr": READ_FILE_SSE.replace(b"\r\n", b"\r"),
}


def _request(method: str, params: Any = None, msg_id: Any = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        body["params"] = params
    return body


_run = decoding(McpStreamDecoder)


# --- matches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/mcp", "/", "/api/v2/mcp/", "/servers/github/mcp?key=1", ""])
def test_matches_any_path(path: str) -> None:
    assert matches("POST", path, READ_FILE_REQUEST)


@pytest.mark.parametrize(
    "body",
    [
        TOOLS_LIST_REQUEST,
        INITIALIZED,
        [TOOLS_LIST_REQUEST, INITIALIZED],
        # The client answering a server request in the same batch as a call.
        [{"jsonrpc": "2.0", "id": "srv-1", "result": {}}, READ_FILE_REQUEST],
    ],
)
def test_matches_calls_notifications_batches(body: Any) -> None:
    assert matches("POST", "/mcp", body)
    assert matches("post", "/mcp", body)


@pytest.mark.parametrize(
    "body",
    [
        # OpenAI chat completions, Responses, Anthropic, Gemini.
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": []},
        {"model": "gpt-4.1", "input": "hi", "tools": [{"type": "function", "name": "f"}]},
        {"model": "claude-sonnet-4", "max_tokens": 10, "messages": []},
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        # JSON-RPC, but not a call.
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        [{"jsonrpc": "2.0", "id": 1, "result": {}}],
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        [],
        [TOOLS_LIST_REQUEST, "garbage"],
        [TOOLS_LIST_REQUEST, {"id": 2, "method": "ping"}],
        None,
        "tools/list",
        b'{"jsonrpc":"2.0"}',
        42,
    ],
)
def test_matches_rejects_other_bodies(body: Any) -> None:
    assert not matches("POST", "/mcp", body)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "", None])
def test_matches_only_post(method: Any) -> None:
    assert not matches(method, "/mcp", TOOLS_LIST_REQUEST)


# --- parse_request / call_of -----------------------------------------------------------------


def test_parse_request_tools_call() -> None:
    [req] = parse_request(READ_FILE_REQUEST)
    assert req == McpRequest(2, "tools/call", READ_FILE_REQUEST["params"])
    assert call_of(req) == ("read_file", {"path": "/etc/hosts"})


def test_parse_request_notification_has_no_id() -> None:
    assert parse_request(INITIALIZED) == [McpRequest(None, "notifications/initialized")]


def test_parse_request_batch_keeps_order_and_skips_replies() -> None:
    batch = [
        _request("tools/call", {"name": "a", "arguments": {"x": 1}}, "req-a"),
        {"jsonrpc": "2.0", "id": "srv-1", "result": {"action": "accept"}},
        INITIALIZED,
        _request("tools/call", {"name": "b"}, 7),
        "garbage",
        None,
    ]
    reqs = parse_request(batch)
    assert [(r.id, r.method) for r in reqs] == [
        ("req-a", "tools/call"),
        (None, "notifications/initialized"),
        (7, "tools/call"),
    ]
    assert [call_of(r) for r in reqs] == [("a", {"x": 1}), None, ("b", {})]


@pytest.mark.parametrize("bad_id", [True, 1.5, {"a": 1}, [1]])
def test_parse_request_skips_invalid_ids(bad_id: Any) -> None:
    assert parse_request(_request("tools/list", msg_id=bad_id)) == []


@pytest.mark.parametrize(
    "body", [None, "", "tools/list", b"\xff\xfe", 3, [], [1, 2], {"jsonrpc": "2.0"}, {"method": 1}]
)
def test_parse_request_garbage(body: Any) -> None:
    assert parse_request(body) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "t", "arguments": {"a": [1, {"b": None}]}}, ("t", {"a": [1, {"b": None}]})),
        ({"name": "t"}, ("t", {})),
        ({"name": "t", "arguments": None}, ("t", {})),
        ({"name": "t", "arguments": {}}, ("t", {})),
        ({"name": "t", "arguments": '{"a": 1}'}, None),
        ({"name": "t", "arguments": [1]}, None),
        ({"name": "", "arguments": {}}, None),
        ({"name": 3, "arguments": {}}, None),
        ({"arguments": {}}, None),
        (["t", {"a": 1}], None),
        ("t", None),
        (None, None),
    ],
)
def test_call_of_params(params: Any, expected: Any) -> None:
    [req] = parse_request(_request("tools/call", params))
    assert req.params == params
    assert call_of(req) == expected


def test_call_of_other_methods_and_objects() -> None:
    [req] = parse_request(_request("tools/list", {"name": "t", "arguments": {}}))
    assert call_of(req) is None
    assert call_of({"method": "tools/call", "params": {"name": "t"}}) is None  # type: ignore[arg-type]
    assert call_of(None) is None  # type: ignore[arg-type]


def test_call_of_huge_arguments() -> None:
    blob = "x" * 1_000_000
    [req] = parse_request(
        orjson.loads(
            orjson.dumps(_request("tools/call", {"name": "w", "arguments": {"blob": blob}}))
        )
    )
    assert call_of(req) == ("w", {"blob": blob})


# --- parse_response: JSON ------------------------------------------------------------------


def test_json_tools_list() -> None:
    [reply] = parse_response(TOOLS_LIST_JSON, JSON)
    assert reply.id == 1 and reply.error is None
    specs = tool_specs(reply.result)
    assert [s.name for s in specs] == ["read_file", "get_weather", "boom"]
    assert specs[0] == ToolSpec(
        name="read_file",
        description="Read a text file.",
        parameters={
            "properties": {"path": {"title": "Path", "type": "string"}},
            "required": ["path"],
            "title": "read_fileArguments",
            "type": "object",
        },
        annotations={"title": "Read file", "readOnlyHint": True, "openWorldHint": False},
    )
    assert specs[1].annotations == {"destructiveHint": True, "idempotentHint": False}
    assert specs[2].description == "" and specs[2].annotations is None


def test_json_tools_call_results() -> None:
    [weather] = parse_response(WEATHER_JSON, "application/json; charset=utf-8")
    assert weather.id == 3
    assert call_result(weather.result) == ({"city": "Paris", "temp_c": 21.5}, False)
    [boom] = parse_response(BOOM_JSON, JSON)
    assert call_result(boom.result) == ("Error executing tool boom: kaboom", True)


def test_json_rpc_error_reply() -> None:
    [reply] = parse_response(ERROR_JSON, JSON)
    assert reply == McpReply(
        5, None, {"code": -32602, "message": "Invalid request parameters", "data": ""}
    )


def test_json_error_without_id_is_kept() -> None:
    body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
    assert parse_response(body, JSON) == [
        McpReply(None, None, {"code": -32700, "message": "Parse error"})
    ]


def test_json_batch_reply_skips_server_messages_and_bad_ids() -> None:
    body = orjson.dumps(
        [
            orjson.loads(WEATHER_JSON),
            {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}},
            {"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}},
            {"jsonrpc": "2.0", "id": True, "result": {}},
            {"jsonrpc": "2.0", "id": 10},
            "garbage",
            orjson.loads(ERROR_JSON),
        ]
    )
    assert [r.id for r in parse_response(body, JSON)] == [3, 5]


@pytest.mark.parametrize(
    "body",
    [b"", b"Accepted", b"\xff\xfe\x00garbage", b"{", b"[]", b"null", b"42", b'"text"', b"{}"],
)
@pytest.mark.parametrize("ctype", [JSON, SSE, "", "text/plain"])
def test_garbage_bodies(body: bytes, ctype: str) -> None:
    assert parse_response(body, ctype) == []


@pytest.mark.parametrize("body", [None, 3, {"id": 1}, [b"x"]])
def test_non_bytes_bodies(body: Any) -> None:
    assert parse_response(body, JSON) == []  # type: ignore[arg-type]


def test_bytes_like_and_str_bodies() -> None:
    expected = parse_response(WEATHER_JSON, JSON)
    assert parse_response(bytearray(WEATHER_JSON), JSON) == expected
    assert parse_response(memoryview(WEATHER_JSON), JSON) == expected
    assert parse_response(WEATHER_JSON.decode(), JSON) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("ctype", ["", "text/plain", SSE, "application/octet-stream", None])
def test_json_body_with_missing_or_wrong_content_type(ctype: Any) -> None:
    assert parse_response(TOOLS_LIST_JSON, ctype) == parse_response(TOOLS_LIST_JSON, JSON)


@pytest.mark.parametrize("ctype", ["", JSON, "text/html", None])
def test_sse_body_with_missing_or_wrong_content_type(ctype: Any) -> None:
    assert parse_response(READ_FILE_SSE, ctype) == [READ_FILE_REPLY]


# --- parse_response / McpStreamDecoder: SSE ------------------------------------------------


def test_sse_progress_then_result() -> None:
    assert parse_response(READ_FILE_SSE, SSE) == [READ_FILE_REPLY]
    assert call_result(READ_FILE_REPLY.result) == ("hello\nworld", False)


def test_sse_error_reply() -> None:
    assert parse_response(ERROR_SSE, "text/event-stream; charset=utf-8") == parse_response(
        ERROR_JSON, JSON
    )


def test_sse_resumable_priming_and_pings() -> None:
    assert parse_response(RESUMABLE_SSE, SSE) == [READ_FILE_REPLY]


def test_sse_reply_comes_out_when_its_event_ends() -> None:
    decoder = McpStreamDecoder()
    head, tail = READ_FILE_SSE[:-2], READ_FILE_SSE[-2:]
    assert decoder.feed(head) == []
    assert decoder.feed(tail) == [READ_FILE_REPLY]
    assert decoder.close() == []


def test_sse_unterminated_final_event_is_dropped() -> None:
    assert _run([READ_FILE_SSE[:-4]]) == []


def test_sse_unknown_events_and_bad_data_are_skipped() -> None:
    stream = (
        b"event: endpoint\ndata: /messages?session_id=1\n\n"
        b'event: custom\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'
        b"event: message\ndata: not json\n\n"
        b"event: message\ndata: [1, 2]\n\n"
        b'event: message\ndata: {"jsonrpc":"2.0","id":1,\ndata: "result":{"ok":true}}\n\n'
        b"data: " + WEATHER_JSON + b"\n\n"
    )
    assert [r.id for r in _run([stream])] == [1, 3]
    assert _run([stream])[0].result == {"ok": True}


def test_sse_batch_in_one_event() -> None:
    # 2025-03-26 allowed batches; an event may carry a batched response.
    stream = b"data: [" + WEATHER_JSON + b"," + BOOM_JSON + b"]\n\n"
    assert [r.id for r in parse_response(stream, SSE)] == [3, 4]


def test_sse_invalid_utf8_is_skipped_not_raised() -> None:
    stream = b"data: \xff\xfe{\n\n" + b"data: " + BOOM_JSON + b"\n\n"
    assert [r.id for r in _run([stream])] == [4]


@pytest.mark.parametrize("chunk", [None, 5, {"a": 1}])
def test_decoder_ignores_non_bytes(chunk: Any) -> None:
    decoder = McpStreamDecoder()
    assert decoder.feed(chunk) == []
    assert decoder.feed(READ_FILE_SSE) == [READ_FILE_REPLY]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_sse_every_split_point_and_byte_by_byte(name: str) -> None:
    assert assert_split_invariant(STREAMS[name], _run)


def test_sse_huge_result() -> None:
    blob = "y" * 1_000_000
    result = {"content": [{"type": "text", "text": blob}], "isError": False}
    event = orjson.dumps({"jsonrpc": "2.0", "id": "big", "result": result})
    stream = b"event: message\r\ndata: " + event + b"\r\n\r\n"
    [reply] = _run(pieces(stream, 16384))
    assert reply.id == "big"
    assert call_result(reply.result) == (blob, False)


# --- tool_specs --------------------------------------------------------------------------------


def test_tool_specs_keeps_annotations_as_given() -> None:
    annotations = {
        "title": "Search",
        "readOnlyHint": True,
        "idempotentHint": True,
        "destructiveHint": False,
        "openWorldHint": True,
        "x-vendor": {"cost": 2},
    }
    result = {
        "tools": [
            {
                "name": "search",
                "title": "Search",
                "inputSchema": {"type": "object"},
                "annotations": annotations,
            },
            {
                "name": "no_schema",
                "description": 5,
                "inputSchema": "object",
                "annotations": ["readOnlyHint"],
            },
            {"description": "nameless"},
            {"name": 3},
            {"name": ""},
            "garbage",
        ],
        "nextCursor": "page-2",
    }
    assert tool_specs(result) == (
        ToolSpec("search", "", {"type": "object"}, annotations),
        ToolSpec("no_schema"),
    )


@pytest.mark.parametrize(
    "result", [None, [], "tools", {"tools": None}, {"tools": {"name": "t"}}, {}]
)
def test_tool_specs_garbage(result: Any) -> None:
    assert tool_specs(result) == ()


# --- call_result -------------------------------------------------------------------------------

IMAGE = {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}
RESOURCE = {
    "type": "resource",
    "resource": {"uri": "file:///a.txt", "mimeType": "text/plain", "text": "A"},
}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            # the text is what the agent shows the model, so it wins
            {"content": [{"type": "text", "text": "{}"}], "structuredContent": {"n": 1}},
            ({}, False),
        ),
        (
            {"content": [IMAGE], "structuredContent": {"n": 1}},
            ({"n": 1}, False),
        ),
        ({"content": [{"type": "text", "text": "[1]"}], "structuredContent": None}, ([1], False)),
        ({"content": [{"type": "text", "text": "plain words"}]}, ("plain words", False)),
        # Parts are joined with "\n" before trying JSON.
        (
            {"content": [{"type": "text", "text": '{"a":'}, {"type": "text", "text": "1}"}]},
            ({"a": 1}, False),
        ),
        (
            {"content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
            ("one\ntwo", False),
        ),
        ({"content": [{"type": "text", "text": "42"}]}, (42, False)),
        ({"content": [{"type": "text", "text": " null\n"}]}, (None, False)),
        ({"content": [{"type": "text", "text": "nul"}]}, ("nul", False)),
        ({"content": [{"type": "text", "text": ""}]}, ("", False)),
        ({"content": [IMAGE, {"type": "text", "text": "caption"}]}, ("caption", False)),
        ({"content": [IMAGE, RESOURCE]}, ([IMAGE, RESOURCE], False)),
        ({"content": [IMAGE, {"type": "text", "text": 5}, "junk"]}, ([IMAGE], False)),
        ({"content": []}, (None, False)),
        ({"content": "text"}, (None, False)),
        ({}, (None, False)),
        ({"content": [{"type": "text", "text": "denied"}], "isError": True}, ("denied", True)),
        ({"content": [{"type": "text", "text": "x"}], "isError": "true"}, ("x", False)),
        ({"structuredContent": {"err": 1}, "isError": True}, ({"err": 1}, True)),
        (None, (None, False)),
        ("text", (None, False)),
        ([{"type": "text", "text": "x"}], (None, False)),
    ],
)
def test_call_result(result: Any, expected: tuple[Any, bool]) -> None:
    assert call_result(result) == expected


def test_call_result_lone_surrogate_text() -> None:
    assert call_result({"content": [{"type": "text", "text": "\ud800"}]}) == ("\ud800", False)
