"""Tests for the OpenAI Responses API codec (payload shapes copied from the real API)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from prefire.patterns.embedded import embedded_json
from prefire.patterns.events import ToolSpec
from prefire.proxy.providers.base import (
    ASSISTANT,
    SYSTEM,
    TOOL_CALL,
    TOOL_RESULT,
    USER,
    CallDraft,
    Item,
    ParsedRequest,
    ResponseDone,
)
from prefire.proxy.providers.openai_responses import CODEC
from tests.streams import (
    assert_cuts_invariant,
    assert_split_invariant,
    decoding,
    drafts,
    random_cuts,
    split_at,
)

REQ = ParsedRequest(api="openai_responses", stream=True)
RESP_ID = "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"


# --- helpers -------------------------------------------------------------------------------


def sse(*events: dict[str, Any], eol: str = "\n") -> bytes:
    """A Responses stream: each event as `event: <type>` plus its JSON `data:` line."""
    out = []
    for seq, event in enumerate(events):
        data = orjson.dumps({**event, "sequence_number": seq}).decode()
        out.append(f"event: {event['type']}{eol}data: {data}{eol}{eol}")
    return "".join(out).encode()


def response(status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": RESP_ID,
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": "gpt-4.1-2025-04-14",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "usage": None,
    }


def created() -> list[dict[str, Any]]:
    return [
        {"type": "response.created", "response": response("in_progress", [])},
        {"type": "response.in_progress", "response": response("in_progress", [])},
    ]


def fc_item(n: int, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": f"fc_{n:04d}",
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": f"call_{n:04d}",
        "name": name,
    }


def fc_events(n: int, index: int, name: str, pieces: list[str]) -> list[dict[str, Any]]:
    """The event sequence the API streams for one function call."""
    full = "".join(pieces)
    item_id = f"fc_{n:04d}"
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": fc_item(n, name, "", "in_progress"),
        },
        *(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": item_id,
                "output_index": index,
                "delta": p,
            }
            for p in pieces
        ),
        {
            "type": "response.function_call_arguments.done",
            "item_id": item_id,
            "output_index": index,
            "name": name,
            "arguments": full,
        },
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": fc_item(n, name, full, "completed"),
        },
    ]


REASONING = {"id": "rs_0001", "type": "reasoning", "summary": []}


def reasoning_events() -> list[dict[str, Any]]:
    return [
        {"type": "response.output_item.added", "output_index": 0, "item": REASONING},
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING},
    ]


def message_item(text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
    return {
        "id": "msg_0001",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def text_events(index: int, pieces: list[str]) -> list[dict[str, Any]]:
    full = "".join(pieces)
    loc = {"item_id": "msg_0001", "output_index": index, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": message_item("", "in_progress"),
        },
        {"type": "response.content_part.added", **loc, "part": part},
        *(
            {"type": "response.output_text.delta", **loc, "delta": p, "logprobs": []}
            for p in pieces
        ),
        {"type": "response.output_text.done", **loc, "text": full, "logprobs": []},
        {"type": "response.content_part.done", **loc, "part": {**part, "text": full}},
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": message_item(full, "completed"),
        },
    ]


run = decoding(lambda: CODEC.stream_decoder(REQ))


WEATHER_ARGS = '{"location":"Paris, France"}'
TIME_ARGS = '{"timezone":"Europe/Paris"}'
FINAL_OUTPUT = [
    REASONING,
    fc_item(1, "get_weather", WEATHER_ARGS, "completed"),
    fc_item(2, "get_time", TIME_ARGS, "completed"),
]
# A recorded-shape stream: a reasoning model calling two tools in parallel.
PARALLEL_EVENTS = [
    *created(),
    *reasoning_events(),
    *fc_events(1, 1, "get_weather", ['{"loc', 'ation":"Par', 'is, France"}']),
    *fc_events(2, 2, "get_time", ['{"timezone":', '"Europe/Paris"}']),
    {"type": "response.completed", "response": response("completed", FINAL_OUTPUT)},
]
PARALLEL = sse(*PARALLEL_EVENTS)
PARALLEL_OUT = [
    CallDraft("call_0001", "get_weather", {"location": "Paris, France"}, WEATHER_ARGS),
    CallDraft("call_0002", "get_time", {"timezone": "Europe/Paris"}, TIME_ARGS),
    ResponseDone(RESP_ID, "completed", ""),
]


# --- matches -------------------------------------------------------------------------------

BODY = {"model": "gpt-4.1", "input": "hi"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/responses",
        "/openai/v1/responses",
        "/responses",
        "/v1/responses/",
        "/openai/responses?api-version=2025-04-01-preview",
        "/api/openai/v1/responses",
    ],
)
def test_matches_any_prefix(path: str) -> None:
    assert CODEC.matches("POST", path, BODY)
    assert CODEC.matches("POST", path, {"input": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/responses", BODY),
        ("POST", "/v1/responses/resp_123/cancel", {}),
        ("POST", "/v1/responses/input_tokens", BODY),
        ("GET", "/v1/responses/resp_123/input_items", None),
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []}),
        ("POST", "/v1/messages", {"model": "claude", "max_tokens": 10, "messages": []}),
        ("POST", "/v1/responses", {"model": "gpt-4.1", "messages": []}),
        ("POST", "/v1/responses", {"model": "gpt-4.1", "input": {"role": "user"}}),
        ("POST", "/v1/responses", {"prompt": {"id": "pmpt_123"}}),
        ("POST", "/v1/responses", ["input"]),
        ("POST", "/v1/responses", None),
        ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
        ("POST", None, BODY),
        (None, "/v1/responses", BODY),
    ],
)
def test_matches_rejects_other_requests(method: Any, path: Any, body: Any) -> None:
    assert not CODEC.matches(method, path, body)


def test_api_name() -> None:
    assert CODEC.api == "openai_responses"


# --- parse_request -------------------------------------------------------------------------

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"location": {"type": "string"}},
    "required": ["location"],
    "additionalProperties": False,
}

HISTORY_BODY: dict[str, Any] = {
    "model": "gpt-4.1",
    "stream": True,
    "instructions": "You are a concise assistant.",
    "previous_response_id": "resp_prev01",
    "store": True,
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather",
            "parameters": WEATHER_PARAMS,
            "strict": True,
        },
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "function", "name": "get_time"},
        {"type": "function", "description": "nameless"},
        None,
    ],
    "input": [
        {"role": "developer", "content": "Prefer metric units."},
        {"role": "system", "content": [{"type": "input_text", "text": "Be safe."}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather in Paris?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                {"type": "input_text", "text": "Also the time."},
            ],
        },
        {"id": "rs_0001", "type": "reasoning", "summary": [], "encrypted_content": "gAAA"},
        {
            "id": "msg_0001",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        fc_item(1, "get_weather", '{"location":"Paris"}', "completed"),
        fc_item(2, "get_time", "{broken", "completed"),
        {"type": "function_call_output", "call_id": "call_0001", "output": '{"temp_c":18}'},
        {
            "type": "function_call_output",
            "call_id": "call_0002",
            "output": [
                {"type": "input_text", "text": "14:05"},
                {"type": "input_image", "image_url": "https://x/y.png"},
                {"type": "input_text", "text": "CEST"},
            ],
        },
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "item_reference", "id": "msg_0002"},
        {"role": "user", "content": "Thanks"},
        {"role": "tool", "content": "unknown role"},
    ],
}


def test_parse_request_history() -> None:
    parsed = CODEC.parse_request(HISTORY_BODY, "/v1/responses")
    assert parsed.api == "openai_responses"
    assert parsed.model == "gpt-4.1"
    assert parsed.stream is True
    assert parsed.previous_response_id == "resp_prev01"
    assert parsed.turns == 13
    assert parsed.tools == (
        ToolSpec("get_weather", "Current weather", WEATHER_PARAMS),
        ToolSpec("get_time"),
    )
    assert parsed.items == (
        Item(SYSTEM, text="You are a concise assistant."),
        Item(SYSTEM, text="Prefer metric units."),
        Item(SYSTEM, text="Be safe."),
        Item(USER, text="Weather in Paris?\nAlso the time."),
        Item(ASSISTANT, text="Checking."),
        Item(
            TOOL_CALL,
            call_id="call_0001",
            name="get_weather",
            arguments={"location": "Paris"},
            raw_arguments='{"location":"Paris"}',
        ),
        Item(TOOL_CALL, call_id="call_0002", name="get_time", raw_arguments="{broken"),
        Item(TOOL_RESULT, call_id="call_0001", content={"temp_c": 18}),
        Item(TOOL_RESULT, call_id="call_0002", content="14:05\nCEST"),
        Item(USER, text="Thanks"),
    )


def test_parse_request_string_input() -> None:
    body = {"model": "gpt-4.1", "instructions": "Be brief.", "input": "Tell me a joke."}
    parsed = CODEC.parse_request(body, "/v1/responses")
    assert parsed.items == (Item(SYSTEM, text="Be brief."), Item(USER, text="Tell me a joke."))
    assert parsed.turns == 1
    assert parsed.stream is False
    assert parsed.previous_response_id == ""


def test_parse_request_continuation_with_only_tool_outputs() -> None:
    body = {
        "model": "gpt-4.1",
        "previous_response_id": RESP_ID,
        "input": [{"type": "function_call_output", "call_id": "call_0001", "output": "sunny"}],
    }
    parsed = CODEC.parse_request(body, "/v1/responses")
    assert parsed.previous_response_id == RESP_ID
    assert parsed.items == (Item(TOOL_RESULT, call_id="call_0001", content="sunny"),)


def test_parse_request_arguments_sent_as_object() -> None:
    body = {
        "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}}]
    }
    (item,) = CODEC.parse_request(body, "/v1/responses").items
    assert (item.arguments, item.raw_arguments) == ({"a": 1}, '{"a":1}')


@pytest.mark.parametrize("stream", [False, "true", 1, None])
def test_stream_flag_must_be_true(stream: Any) -> None:
    assert CODEC.parse_request({"input": "x", "stream": stream}, "/v1/responses").stream is False


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "input",
        {},
        {"input": None, "tools": "x", "instructions": 5, "previous_response_id": 3, "model": []},
        {"input": [None, 1, "x", [], {"role": 7}, {"type": 5}, {"role": "user", "content": 5}]},
        {"input": [{"type": "function_call", "name": None, "arguments": 5, "call_id": []}]},
        {"input": [{"type": "function_call_output", "output": {"a": 1}}]},
        {"input": [{"role": "user", "content": [None, {"type": "input_text", "text": 5}]}]},
    ],
)
def test_parse_request_never_raises(body: Any) -> None:
    assert CODEC.parse_request(body, "/v1/responses").api == "openai_responses"


# --- parse_response ------------------------------------------------------------------------


def test_parse_response_calls_and_text() -> None:
    body = response(
        "completed",
        [
            REASONING,
            {
                "id": "msg_0001",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Checking ", "annotations": []},
                    {"type": "refusal", "refusal": "no"},
                    {"type": "output_text", "text": "now.", "annotations": []},
                ],
            },
            fc_item(1, "get_weather", WEATHER_ARGS, "completed"),
            fc_item(2, "get_time", "{oops", "completed"),
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ],
    )
    assert CODEC.parse_response(body, REQ) == [
        CallDraft("call_0001", "get_weather", {"location": "Paris, France"}, WEATHER_ARGS),
        CallDraft("call_0002", "get_time", None, "{oops"),
        ResponseDone(RESP_ID, "completed", "Checking now."),
    ]


def test_parse_response_skips_truncated_call() -> None:
    body = response("incomplete", [fc_item(1, "write", '{"text": "abc', "incomplete")])
    assert CODEC.parse_response(body, REQ) == [ResponseDone(RESP_ID, "incomplete", "")]


@pytest.mark.parametrize("arguments", ["", " \n", "{}"])
def test_parse_response_empty_arguments(arguments: str) -> None:
    body = response("completed", [fc_item(1, "ping", arguments, "completed")])
    assert CODEC.parse_response(body, REQ)[0] == CallDraft("call_0001", "ping", {}, arguments)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, []),
        ([], []),
        ("oops", []),
        ({}, [ResponseDone()]),
        ({"id": 5, "status": None, "output": "x"}, [ResponseDone()]),
        ({"id": "r", "output": [None, 3, {"type": "function_call"}]}, [ResponseDone("r")]),
        (
            {"output": [{"type": "message", "content": [None, {"type": "output_text"}]}]},
            [ResponseDone()],
        ),
        ({"error": {"message": "bad", "type": "invalid_request_error"}}, [ResponseDone()]),
    ],
)
def test_parse_response_bad_bodies(body: Any, expected: list[Any]) -> None:
    assert CODEC.parse_response(body, REQ) == expected


@pytest.mark.parametrize("raw", ["", " ", "\n\t "])
def test_blank_arguments_mean_no_arguments(raw: str) -> None:
    # Agent SDKs read "" as {}; the model sends it for tools without parameters.
    history = {"input": [fc_item(1, "ping", raw, "completed")]}
    assert CODEC.parse_request(history, "/v1/responses").items == (
        Item(TOOL_CALL, call_id="call_0001", name="ping", arguments={}, raw_arguments=raw),
    )
    body = response("completed", [fc_item(1, "ping", raw, "completed")])
    # Without arguments_done the call comes from output_item.done's arguments.
    events = [*created(), *fc_events(1, 0, "ping", [raw])]
    expected = [CallDraft("call_0001", "ping", {}, raw)]
    assert drafts(CODEC.parse_response(body, REQ)) == expected
    assert drafts(run([sse(*events)])) == expected
    assert drafts(run([sse(*without(events, "response.function_call_arguments.done"))])) == expected


# --- stream decoding -----------------------------------------------------------------------


def test_stream_parallel_calls() -> None:
    assert assert_split_invariant(PARALLEL, run) == PARALLEL_OUT


def test_stream_emits_each_call_at_arguments_done() -> None:
    decoder = CODEC.stream_decoder(REQ)
    per_event = [(e["type"], decoder.feed(sse(e))) for e in PARALLEL_EVENTS]
    emitted = [(kind, out) for kind, out in per_event if out]
    assert emitted == [
        ("response.function_call_arguments.done", [PARALLEL_OUT[0]]),
        ("response.function_call_arguments.done", [PARALLEL_OUT[1]]),
        ("response.completed", [PARALLEL_OUT[2]]),
    ]
    assert decoder.close() == []


def test_stream_text_response() -> None:
    message = message_item("Hello ✓ world", "completed")
    stream = sse(
        *created(),
        *text_events(0, ["Hel", "lo ✓", " world"]),
        {"type": "response.completed", "response": response("completed", [message])},
    )
    assert assert_split_invariant(stream, run) == [
        ResponseDone(RESP_ID, "completed", "Hello ✓ world")
    ]


def test_stream_text_then_call() -> None:
    stream = sse(
        *created(),
        *text_events(0, ["Let me check."]),
        *fc_events(1, 1, "search", ['{"q":"x"}']),
        {"type": "response.completed", "response": response("completed", [])},
    )
    assert assert_split_invariant(stream, run) == [
        CallDraft("call_0001", "search", {"q": "x"}, '{"q":"x"}'),
        ResponseDone(RESP_ID, "completed", "Let me check."),
    ]


def without(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] != kind]


def test_stream_call_emitted_at_item_done_when_arguments_done_missing() -> None:
    events = without(PARALLEL_EVENTS, "response.function_call_arguments.done")
    assert assert_split_invariant(sse(*events), run) == PARALLEL_OUT


def test_stream_call_without_added_event_gets_its_id_from_item_done() -> None:
    events = without(PARALLEL_EVENTS, "response.output_item.added")
    assert assert_split_invariant(sse(*events), run) == PARALLEL_OUT


def test_stream_only_arguments_done_and_item_done_use_delta_pieces() -> None:
    # `arguments` missing from the done event: the deltas are the arguments.
    events = [
        {k: v for k, v in e.items() if k != "arguments"}
        if e["type"] == "response.function_call_arguments.done"
        else e
        for e in PARALLEL_EVENTS
    ]
    assert run([sse(*events)]) == PARALLEL_OUT


def test_stream_never_emits_a_call_twice() -> None:
    events = [*PARALLEL_EVENTS[:-1], *PARALLEL_EVENTS[4:-1], PARALLEL_EVENTS[-1]]
    assert run([sse(*events)]) == PARALLEL_OUT


@pytest.mark.parametrize("status", ["failed", "incomplete"])
def test_stream_failed_or_incomplete(status: str) -> None:
    truncated = fc_events(2, 1, "write", ['{"text": "ab'])[:2]  # added + one delta
    events = [
        *created(),
        *fc_events(1, 0, "get_time", ["{}"]),
        *truncated,
        {"type": f"response.{status}", "response": response(status, [])},
    ]
    assert assert_split_invariant(sse(*events), run) == [
        CallDraft("call_0001", "get_time", {}, "{}"),
        ResponseDone(RESP_ID, status, ""),
    ]


def test_stream_truncated_item_done_is_not_emitted() -> None:
    events = [
        *created(),
        fc_events(1, 0, "write", [""])[0],
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": fc_item(1, "write", '{"a', "incomplete"),
        },
        {"type": "response.incomplete", "response": response("incomplete", [])},
    ]
    assert run([sse(*events)]) == [ResponseDone(RESP_ID, "incomplete", "")]


def test_stream_cut_off_ends_at_close_without_unfinished_calls() -> None:
    events = [*created(), *fc_events(1, 0, "f", ["{}"]), *fc_events(2, 1, "g", ['{"a":'])[:2]]
    decoder = CODEC.stream_decoder(REQ)
    assert decoder.feed(sse(*events)) == [CallDraft("call_0001", "f", {}, "{}")]
    assert decoder.close() == [ResponseDone(RESP_ID, "", "")]
    assert decoder.close() == []


def test_stream_events_after_completion_are_ignored() -> None:
    stream = PARALLEL + sse(*fc_events(9, 5, "late", ["{}"]))
    assert run([stream]) == PARALLEL_OUT


def test_stream_type_taken_from_sse_event_name_when_data_lacks_it() -> None:
    stream = b"".join(
        f"event: {e['type']}\ndata: ".encode()
        + orjson.dumps({k: v for k, v in e.items() if k != "type"})
        + b"\n\n"
        for e in PARALLEL_EVENTS
    )
    assert run([stream]) == PARALLEL_OUT


def test_stream_crlf_line_endings() -> None:
    assert assert_split_invariant(sse(*PARALLEL_EVENTS, eol="\r\n"), run) == PARALLEL_OUT


def test_stream_invalid_json_arguments() -> None:
    events = [*created(), *fc_events(1, 0, "f", ['{"x": tru'])]
    assert drafts(assert_split_invariant(sse(*events), run)) == [
        CallDraft("call_0001", "f", None, '{"x": tru')
    ]


@pytest.mark.parametrize("pieces", [[], [""], [" ", "\n"], ["{", "}"]])
def test_stream_empty_arguments(pieces: list[str]) -> None:
    events = [*created(), *fc_events(1, 0, "ping", pieces)]
    assert drafts(assert_split_invariant(sse(*events), run)) == [
        CallDraft("call_0001", "ping", {}, "".join(pieces))
    ]


def test_stream_huge_arguments() -> None:
    blob = "y" * 1_000_000
    raw = orjson.dumps({"content": blob}).decode()
    pieces = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    stream = sse(
        *created(),
        *fc_events(1, 0, "write_file", pieces),
        {"type": "response.completed", "response": response("completed", [])},
    )
    expected = [
        CallDraft("call_0001", "write_file", {"content": blob}, raw),
        ResponseDone(RESP_ID, "completed", ""),
    ]
    cuts = (1, len(stream) // 3, len(stream) // 2, len(stream) - 1)
    assert assert_cuts_invariant(stream, run, cuts, 997) == expected


def test_stream_garbage_and_unknown_events() -> None:
    noise = (
        b": keep-alive\n\n"
        b'event: response.something_new\ndata: {"type": "response.something_new"}\n\n'
        b"data: not json\n\n"
        b"data: [1, 2]\n\n"
        b"data: \xff\xfe\x00garbage\n\n"
        b'data: {"type": "response.output_item.added", "item": "x"}\n\n'
        b'data: {"type": "response.output_item.added", "item": {"type": "function_call"}}\n\n'
        b'data: {"type": "response.function_call_arguments.delta", "item_id": 5, "delta": 3}\n\n'
        b'data: {"type": "response.function_call_arguments.done", "output_index": "0"}\n\n'
        b'data: {"type": "response.output_item.done", "item": {"type": "function_call"}}\n\n'
        b'data: {"type": "response.output_text.delta", "delta": null}\n\n'
        b'data: {"type": "error", "code": "server_error", "message": "hiccup"}\n\n'
        b"\x00\x01\x02\n\n"
    )
    events = [sse(e) for e in PARALLEL_EVENTS]
    stream = b"".join(itertools.chain.from_iterable((e, noise) for e in events))
    assert run([stream]) == PARALLEL_OUT
    assert assert_split_invariant(noise + PARALLEL[:2000], run) == run([PARALLEL[:2000]])


def test_stream_invalid_utf8_inside_arguments() -> None:
    events = [*created(), fc_events(1, 0, "f", [""])[0]]
    stream = (
        sse(*events)
        + b'data: {"type":"response.function_call_arguments.delta","item_id":"fc_0001",'
        + b'"output_index":0,"delta":"{\\"k\\": \\"\xff\\"}"}\n\n'
        + b'data: {"type":"response.output_item.done","output_index":0,"item":'
        + b'{"id":"fc_0001","type":"function_call","status":"completed",'
        + b'"arguments":"{\\"k\\": \\"\xff\\"}","call_id":"call_0001","name":"f"}}\n\n'
    )
    out = assert_split_invariant(stream, run)
    assert out[0] == CallDraft("call_0001", "f", {"k": "\ufffd"}, '{"k": "\ufffd"}')


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xff" * 100, b"data: {}\n\n"])
def test_stream_degenerate_bodies(data: bytes) -> None:
    assert run([data]) == [ResponseDone()]


@settings(max_examples=200, deadline=None)
@given(random_cuts(PARALLEL))
def test_stream_any_chunking(cuts: list[int]) -> None:
    assert run(split_at(PARALLEL, cuts)) == PARALLEL_OUT


# --- namespaced tools (Codex offers each MCP server's tools in a namespace) ----------------

DOCS_NS = "mcp__docs"
SEARCH_PARAMS = {"type": "object", "properties": {"query": {"type": "string"}}}


def ns_item(n: int, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {**fc_item(n, name, arguments, status), "namespace": DOCS_NS}


def ns_events(n: int, index: int, name: str, pieces: list[str]) -> list[dict[str, Any]]:
    """fc_events as Codex's upstream streams them for a namespaced tool: the items name
    the namespace; `function_call_arguments.done` names neither."""
    out = []
    for event in fc_events(n, index, name, pieces):
        event = dict(event)
        if "item" in event:
            event["item"] = {**event["item"], "namespace": DOCS_NS}
        if event["type"] == "response.function_call_arguments.done":
            del event["name"]
        out.append(event)
    return out


def test_namespace_tools_are_offered_under_namespace_and_name() -> None:
    body = {
        "input": "find the billing doc",
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object"}},
            {
                "type": "namespace",
                "name": DOCS_NS,
                "description": "Tools of the docs MCP server",
                "tools": [
                    {
                        "type": "function",
                        "name": "search_docs",
                        "description": "Search",
                        "parameters": SEARCH_PARAMS,
                    },
                    {"type": "function", "name": "get_doc"},
                    {"type": "web_search_preview"},
                    {"type": "function"},
                    None,
                ],
            },
            {"type": "namespace", "tools": [{"type": "function", "name": "anonymous"}]},
            {"type": "namespace", "name": "empty", "tools": "x"},
        ],
    }
    assert CODEC.parse_request(body, "/v1/responses").tools == (
        ToolSpec("shell", parameters={"type": "object"}),
        ToolSpec("mcp__docs__search_docs", "Search", SEARCH_PARAMS),
        ToolSpec("mcp__docs__get_doc"),
    )


def test_namespace_calls_in_history_carry_the_same_name() -> None:
    body = {
        "input": [
            {"role": "user", "content": "billing docs"},
            ns_item(1, "search_docs", '{"query":"billing"}', "completed"),
            {"type": "function_call_output", "call_id": "call_0001", "output": "[]"},
            fc_item(2, "shell", '{"cmd":"ls"}', "completed"),
        ]
    }
    items = CODEC.parse_request(body, "/v1/responses").items
    assert [(i.role, i.name) for i in items] == [
        (USER, ""),
        (TOOL_CALL, "mcp__docs__search_docs"),
        (TOOL_RESULT, ""),
        (TOOL_CALL, "shell"),
    ]


def test_namespace_calls_in_a_whole_response() -> None:
    body = response(
        "completed",
        [
            ns_item(1, "search_docs", '{"query":"a"}', "completed"),
            ns_item(2, "search_docs", '{"query":"b"}', "completed"),
            fc_item(3, "shell", "{}", "completed"),
        ],
    )
    assert drafts(CODEC.parse_response(body, REQ)) == [
        CallDraft("call_0001", "mcp__docs__search_docs", {"query": "a"}, '{"query":"a"}'),
        CallDraft("call_0002", "mcp__docs__search_docs", {"query": "b"}, '{"query":"b"}'),
        CallDraft("call_0003", "shell", {}, "{}"),
    ]


NS_STREAM = [
    *created(),
    *ns_events(1, 0, "search_docs", ['{"query":', '"billing"}']),
    *ns_events(2, 1, "get_doc", ['{"doc_id":"d1"}']),
    *ns_events(3, 2, "get_doc", ['{"doc_id":"d2"}']),
    {"type": "response.completed", "response": response("completed", [])},
]
NS_OUT = [
    CallDraft("call_0001", "mcp__docs__search_docs", {"query": "billing"}, '{"query":"billing"}'),
    CallDraft("call_0002", "mcp__docs__get_doc", {"doc_id": "d1"}, '{"doc_id":"d1"}'),
    CallDraft("call_0003", "mcp__docs__get_doc", {"doc_id": "d2"}, '{"doc_id":"d2"}'),
    ResponseDone(RESP_ID, "completed", ""),
]


def test_stream_parallel_and_repeated_namespace_calls() -> None:
    assert assert_split_invariant(sse(*NS_STREAM), run) == NS_OUT


@pytest.mark.parametrize(
    "dropped", ["response.output_item.added", "response.function_call_arguments.done"]
)
def test_stream_namespace_name_from_whichever_event_has_it(dropped: str) -> None:
    assert run([sse(*without(NS_STREAM, dropped))]) == NS_OUT


def test_codex_two_part_output_keeps_its_json_findable() -> None:
    # Codex 0.171 sends an MCP result as two text parts: the timing line, then the JSON.
    hits = '{"hits": [{"id": "doc-1"}]}'
    body = {
        "input": [
            {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": [
                    {"type": "input_text", "text": "Wall time: 0.0123 seconds\nOutput:"},
                    {"type": "input_text", "text": hits},
                ],
            }
        ]
    }
    (item,) = CODEC.parse_request(body, "/v1/responses").items
    assert item.content == "Wall time: 0.0123 seconds\nOutput:\n" + hits
    assert embedded_json(item.content) == {"hits": [{"id": "doc-1"}]}
