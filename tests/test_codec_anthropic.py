"""Anthropic Messages codec: requests, whole responses and SSE streams."""

from __future__ import annotations

import os
import random
from typing import Any

import orjson
import pytest

from prefire.patterns.events import ToolSpec, UserMessage
from prefire.wire.providers import llm_codec_for
from prefire.wire.providers.anthropic import CODEC
from prefire.wire.providers.base import (
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
from prefire.wire.sessions import Sessions
from tests.streams import assert_cuts_invariant, assert_split_invariant, decoding, pieces

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}

REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 4096,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are a travel assistant."},
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
    ],
    "tools": [
        {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA},
        {
            "type": "custom",
            "name": "get_time",
            "input_schema": {"type": "object", "properties": {}},
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    ],
    "messages": [
        {"role": "user", "content": "Weather and time in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities.", "signature": "EqQBCkYIBxgCKkA"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01B",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": '{"temp_c": 18, "sky": "clear"}',
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01B",
                    "content": [
                        {"type": "text", "text": '{"temp_c":'},
                        {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
                        {"type": "text", "text": "24}"},
                    ],
                },
                {"type": "text", "text": "Also the time, please."},
                {"type": "text", "text": "In Paris."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_01",
                    "name": "web_search",
                    "input": {"query": "paris time"},
                },
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": []},
                {"type": "tool_use", "id": "toolu_01C", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01C",
                    "content": "clock unavailable",
                    "is_error": True,
                },
            ],
        },
    ],
}


def test_parse_request() -> None:
    parsed = CODEC.parse_request(REQUEST, "/v1/messages?beta=true")
    assert parsed.api == "anthropic"
    assert parsed.model == "claude-sonnet-4-5-20250929"
    assert parsed.stream is True
    assert parsed.turns == 5
    assert parsed.tools == (
        ToolSpec("get_weather", "Current weather", WEATHER_SCHEMA),
        ToolSpec("get_time", "", {"type": "object", "properties": {}}),
    )
    assert parsed.items == (
        Item(SYSTEM, text="You are a travel assistant.\nBe brief."),
        Item(USER, text="Weather and time in Paris and Rome?"),
        Item(ASSISTANT, text="Let me check."),
        Item(
            TOOL_CALL,
            call_id="toolu_01A09q90qw90lq917835lq9",
            name="get_weather",
            arguments={"city": "Paris"},
            raw_arguments='{"city":"Paris"}',
        ),
        Item(
            TOOL_CALL,
            call_id="toolu_01B",
            name="get_weather",
            arguments={"city": "Rome"},
            raw_arguments='{"city":"Rome"}',
        ),
        Item(
            TOOL_RESULT,
            call_id="toolu_01A09q90qw90lq917835lq9",
            content={"temp_c": 18, "sky": "clear"},
        ),
        Item(TOOL_RESULT, call_id="toolu_01B", content={"temp_c": 24}),
        Item(USER, text="Also the time, please.\nIn Paris."),
        Item(TOOL_CALL, call_id="toolu_01C", name="get_time", arguments={}, raw_arguments="{}"),
        Item(TOOL_RESULT, call_id="toolu_01C", content="clock unavailable", is_error=True),
    )


def test_parse_request_plain_system_and_defaults() -> None:
    body = {"model": "claude-haiku-4-5", "system": "Be terse.", "messages": []}
    parsed = CODEC.parse_request(body, "/v1/messages")
    assert parsed == ParsedRequest(
        api="anthropic", model="claude-haiku-4-5", items=(Item(SYSTEM, text="Be terse."),)
    )


def test_system_entries_inside_messages_are_system_text() -> None:
    # Claude Code 2.1.332 sends `role: "system"` entries among the messages.
    body = {
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Find the billing doc"}]},
            {"role": "system", "content": "The date changed to 2026-12-05."},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "billing"}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            {"role": "system", "content": [{"type": "text", "text": "Plan mode is off."}]},
        ],
    }
    parsed = CODEC.parse_request(body, "/v1/messages")
    assert [(i.role, i.text) for i in parsed.items] == [
        (SYSTEM, "You are Claude Code."),
        (USER, "Find the billing doc"),
        (SYSTEM, "The date changed to 2026-12-05."),
        (TOOL_CALL, ""),
        (TOOL_RESULT, ""),
        (SYSTEM, "Plan mode is off."),
    ]
    _, events = Sessions().request_events("scope", parsed, 1.0)
    said = [(e.role, e.text) for e in events if isinstance(e, UserMessage)]
    assert [text for role, text in said if role == "user"] == ["Find the billing doc"]
    assert ("system", "The date changed to 2026-12-05.") in said


def test_parse_request_tool_use_without_input_and_result_without_content() -> None:
    body = {
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ls"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    }
    items = CODEC.parse_request(body, "/v1/messages").items
    assert items == (
        Item(TOOL_CALL, call_id="t1", name="ls", arguments={}, raw_arguments="{}"),
        Item(TOOL_RESULT, call_id="t1", content=""),
    )


def test_parse_request_big_int_input_falls_back_to_stdlib_json() -> None:
    big = 10**30  # the stdlib parser keeps it; orjson cannot dump it
    body = {
        "messages": [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {"x": big}}],
            }
        ]
    }
    (item,) = CODEC.parse_request(body, "/v1/messages").items
    assert item.arguments == {"x": big}
    assert item.raw_arguments == f'{{"x":{big}}}'


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "messages",
        {"messages": "hi"},
        {"messages": [None, 3, "x", {"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [None, {"type": "tool_use"}, {"type": 3}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
        {"messages": [], "system": [None, {"type": "text", "text": 5}], "tools": "x"},
        {"messages": [], "tools": [None, {"name": 3}, {"description": "no name"}]},
    ],
)
def test_parse_request_bad_input_never_raises(body: Any) -> None:
    parsed = CODEC.parse_request(body, "/v1/messages")
    assert parsed.api == "anthropic"
    assert parsed.items == ()
    assert parsed.tools == ()


RESPONSE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Two lookups.", "signature": "sig"},
        {"type": "text", "text": "Checking both cities."},
        {
            "type": "tool_use",
            "id": "toolu_01P",
            "name": "get_weather",
            "input": {"city": "Paris", "units": "metric"},
        },
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        {"type": "tool_use", "id": "toolu_01R", "name": "get_weather", "input": {"city": "Rome"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 91},
}


def test_parse_response() -> None:
    out = CODEC.parse_response(RESPONSE, ParsedRequest(api="anthropic"))
    assert out == [
        CallDraft(
            "toolu_01P",
            "get_weather",
            {"city": "Paris", "units": "metric"},
            '{"city":"Paris","units":"metric"}',
        ),
        CallDraft("toolu_01R", "get_weather", {"city": "Rome"}, '{"city":"Rome"}'),
        ResponseDone("msg_01XFDUDYJgAACzvnptvVoYEL", "tool_use", "Checking both cities."),
    ]


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        [RESPONSE],
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"id": "msg", "content": "not a list"},
    ],
)
def test_parse_response_bad_bodies(body: Any) -> None:
    assert CODEC.parse_response(body, ParsedRequest(api="anthropic")) == []


def test_parse_response_odd_blocks() -> None:
    body = {"id": 5, "content": [None, {"type": "tool_use", "id": "t"}, {"type": "text"}]}
    assert CODEC.parse_response(body, ParsedRequest(api="anthropic")) == [ResponseDone()]


# --- streams ---------------------------------------------------------------


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    """An SSE body as Anthropic sends it: `event:` then `data:` then a blank line."""
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


MESSAGE_START = ev(
    "message_start",
    message={
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 472, "output_tokens": 2},
    },
)
PING = ("ping", {"type": "ping"})


def tool_start(index: int, call_id: str, name: str) -> tuple[str, dict[str, Any]]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return ev("content_block_start", index=index, content_block=block)


def json_delta(index: int, partial: str) -> tuple[str, dict[str, Any]]:
    return ev(
        "content_block_delta",
        index=index,
        delta={"type": "input_json_delta", "partial_json": partial},
    )


def text_delta(index: int, text: str) -> tuple[str, dict[str, Any]]:
    return ev("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def stop(index: int) -> tuple[str, dict[str, Any]]:
    return ev("content_block_stop", index=index)


def message_end(stop_reason: str = "tool_use") -> tuple[tuple[str, dict[str, Any]], ...]:
    return (
        ev(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": 89},
        ),
        ev("message_stop"),
    )


STREAM_EVENTS = (
    MESSAGE_START,
    ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    PING,
    text_delta(0, "Okay, let me check "),
    text_delta(0, "the weather in Paris — ünïcode 🌤."),
    stop(0),
    tool_start(1, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
    json_delta(1, ""),
    json_delta(1, '{"location": "Pa'),
    json_delta(1, 'ris, France", "note": "a \\"quoted\\" {brace}'),
    json_delta(1, '"}'),
    stop(1),
    tool_start(2, "toolu_02", "get_time"),
    json_delta(2, '{"tz": "Europe/Paris"}'),
    stop(2),
    *message_end(),
)
STREAM = sse(*STREAM_EVENTS)

EXPECTED = [
    CallDraft(
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "get_weather",
        {"location": "Paris, France", "note": 'a "quoted" {brace}'},
        '{"location": "Paris, France", "note": "a \\"quoted\\" {brace}"}',
    ),
    CallDraft("toolu_02", "get_time", {"tz": "Europe/Paris"}, '{"tz": "Europe/Paris"}'),
    ResponseDone(
        "msg_014p7gG3wDgGV9EUtLvnow3U",
        "tool_use",
        "Okay, let me check the weather in Paris — ünïcode 🌤.",
    ),
]


run = decoding(lambda: CODEC.stream_decoder(ParsedRequest(api="anthropic")))


def test_stream() -> None:
    assert run([STREAM]) == EXPECTED


def test_stream_any_chunk_boundaries() -> None:
    assert_split_invariant(STREAM, run)


def test_stream_crlf_line_endings_any_boundaries() -> None:
    data = STREAM.replace(b"\n", b"\r\n")
    assert run([data]) == EXPECTED
    assert_split_invariant(data, run)


def test_call_is_emitted_at_its_content_block_stop() -> None:
    decoder = CODEC.stream_decoder(ParsedRequest(api="anthropic"))
    first_stop = STREAM_EVENTS.index(stop(1)) + 1
    assert decoder.feed(sse(*STREAM_EVENTS[: first_stop - 1])) == []
    assert decoder.feed(sse(STREAM_EVENTS[first_stop - 1])) == [EXPECTED[0]]
    assert decoder.feed(sse(*STREAM_EVENTS[first_stop:-1])) == [EXPECTED[1]]
    assert decoder.feed(sse(STREAM_EVENTS[-1])) == [EXPECTED[2]]
    assert decoder.close() == []


def test_stream_thinking_and_server_tools_are_not_calls() -> None:
    data = sse(
        MESSAGE_START,
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Hmm"}),
        ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "Eq"}),
        stop(0),
        ev(
            "content_block_start",
            index=1,
            content_block={"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"},
        ),
        json_delta(1, '{"query": "weather paris"}'),
        stop(1),
        ev(
            "content_block_start",
            index=2,
            content_block={
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [],
            },
        ),
        stop(2),
        ev("content_block_start", index=3, content_block={"type": "text", "text": "Sunny"}),
        ev(
            "content_block_delta",
            index=3,
            delta={"type": "citations_delta", "citation": {"type": "web_search_result_location"}},
        ),
        text_delta(3, ", 21°C."),
        stop(3),
        *message_end("end_turn"),
    )
    assert run([data]) == [ResponseDone("msg_014p7gG3wDgGV9EUtLvnow3U", "end_turn", "Sunny, 21°C.")]


@pytest.mark.parametrize(
    ("deltas", "arguments", "raw"),
    [
        ([], {}, "{}"),
        ([""], {}, "{}"),
        (["{}"], {}, "{}"),
        (["", "{", "}"], {}, "{}"),
        (['{"city": "Par'], None, '{"city": "Par'),
        (['{"a": 1}', "trailing"], None, '{"a": 1}trailing'),
        (["[1, 2]"], [1, 2], "[1, 2]"),
    ],
)
def test_stream_arguments_edge_cases(deltas: list[str], arguments: Any, raw: str) -> None:
    data = sse(
        MESSAGE_START,
        tool_start(0, "toolu_x", "lookup"),
        *(json_delta(0, d) for d in deltas),
        stop(0),
        *message_end(),
    )
    out = run([data])
    assert out[0] == CallDraft("toolu_x", "lookup", arguments, raw)
    assert isinstance(out[1], ResponseDone)


def test_stream_start_input_used_when_no_deltas() -> None:
    # Some gateways put the whole input in content_block_start and send no deltas.
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {"k": [1, 2]}}
    data = sse(ev("content_block_start", index=0, content_block=block), stop(0))
    assert run([data]) == [CallDraft("t", "f", {"k": [1, 2]}, '{"k":[1,2]}')]


def test_stream_huge_arguments() -> None:
    blob = "x" * (1 << 20)
    raw = orjson.dumps({"path": "/tmp/big", "content": blob}).decode()
    pieces = [raw[i : i + 4000] for i in range(0, len(raw), 4000)]
    data = sse(
        MESSAGE_START,
        tool_start(0, "toolu_big", "write_file"),
        *(json_delta(0, p) for p in pieces),
        stop(0),
        *message_end(),
    )
    expected = [
        CallDraft("toolu_big", "write_file", {"path": "/tmp/big", "content": blob}, raw),
        ResponseDone("msg_014p7gG3wDgGV9EUtLvnow3U", "tool_use", ""),
    ]
    cuts = [200_000 + size for size in (1, 7, 4096, 65537)]
    assert assert_cuts_invariant(data, run, cuts, 65536) == expected


def test_stream_unknown_events_and_bad_data_are_ignored() -> None:
    data = sse(
        MESSAGE_START,
        ("future_event", {"type": "future_event", "index": 0}),
        ev("content_block_start", index=0, content_block={"type": "mystery_block"}),
        ev("content_block_delta", index=0, delta={"type": "mystery_delta", "x": 1}),
        stop(0),
        ev("content_block_start", index=[1], content_block={"type": "tool_use", "name": "f"}),
        ev("content_block_start", index=1, content_block="tool_use"),
        ev("content_block_start", index=2, content_block={"type": "tool_use", "id": "no-name"}),
        json_delta(7, '{"orphan": true}'),
        ev("content_block_delta", index=1, delta="nope"),
        stop(9),
        ev("content_block_stop", index={"a": 1}),
        ev("message_delta", delta={"stop_reason": 5}),
        ev("message_delta", delta=None),
        tool_start(3, "toolu_ok", "f"),
        json_delta(3, '{"ok": true}'),
        stop(3),
        stop(3),  # a repeated stop does not repeat the call
    )
    data += b"event: content_block_delta\ndata: {not json\n\n"
    data += b"data: [1, 2, 3]\n\n"
    data += b": a comment line\n\n"
    data += sse(*message_end())
    assert run([data]) == [
        CallDraft("toolu_ok", "f", {"ok": True}, '{"ok": true}'),
        ResponseDone("msg_014p7gG3wDgGV9EUtLvnow3U", "tool_use", ""),
    ]


def test_stream_event_name_used_when_data_has_no_type() -> None:
    data = (
        b'event: content_block_start\ndata: {"index": 0, "content_block": {"type": "tool_use",'
        b' "id": "t", "name": "f", "input": {}}}\n\n'
        b'event: content_block_delta\ndata: {"index": 0, "delta": {"type": "input_json_delta",'
        b' "partial_json": "{\\"a\\": 1}"}}\n\n'
        b'event: content_block_stop\ndata: {"index": 0}\n\n'
        b"event: message_stop\ndata: {}\n\n"
    )
    assert run([data]) == [CallDraft("t", "f", {"a": 1}, '{"a": 1}'), ResponseDone()]


def test_stream_error_event_ends_without_response_done() -> None:
    data = sse(
        MESSAGE_START,
        tool_start(0, "toolu_done", "f"),
        json_delta(0, '{"n": 1}'),
        stop(0),
        tool_start(1, "toolu_open", "f"),
        json_delta(1, '{"n": 2'),
        ev("error", error={"type": "overloaded_error", "message": "Overloaded"}),
        json_delta(1, "}"),
        stop(1),
        *message_end(),
    )
    assert run([data]) == [CallDraft("toolu_done", "f", {"n": 1}, '{"n": 1}')]
    assert_split_invariant(data, run)


def test_truncated_stream_has_no_response_done_and_drops_open_calls() -> None:
    data = sse(
        MESSAGE_START,
        tool_start(0, "toolu_done", "f"),
        json_delta(0, "{}"),
        stop(0),
        tool_start(1, "toolu_open", "f"),
        json_delta(1, '{"n": 2}'),
    )
    assert run([data + b"event: content_block_stop\ndata: {"]) == [
        CallDraft("toolu_done", "f", {}, "{}")
    ]


def test_nothing_after_message_stop() -> None:
    data = STREAM + sse(tool_start(5, "late", "f"), stop(5), ev("message_stop"))
    assert run([data]) == EXPECTED


def test_garbage_bytes_never_raise() -> None:
    rng = random.Random(7)
    blobs = [
        os.urandom(4096),
        bytes(rng.randrange(256) for _ in range(4096)),
        b"\xff\xfe\xfd\n\n" * 50,
        b"event: content_block_delta\ndata: \xc3\x28\n\n",
        b"data: " + b"{" * 5000 + b"\n\n",
        STREAM[::2],
        STREAM[:-1] + b"\x00" * 20,
    ]
    for blob in blobs:
        for size in (1, 3, 64, len(blob)):
            run(pieces(blob, size))
    decoder = CODEC.stream_decoder(ParsedRequest(api="anthropic"))
    assert decoder.feed("text, not bytes") == []  # type: ignore[arg-type]
    assert decoder.feed(None) == []  # type: ignore[arg-type]


def test_invalid_utf8_inside_arguments_is_replaced() -> None:
    data = sse(MESSAGE_START, tool_start(0, "t", "f"))
    data += b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
    data += b'"delta": {"type": "input_json_delta", "partial_json": "{\\"a\\": \\"\xff\\"}"}}\n\n'
    data += sse(stop(0))
    assert run([data]) == [CallDraft("t", "f", {"a": "\ufffd"}, '{"a": "\ufffd"}')]


# --- matches -----------------------------------------------------------------

ANTHROPIC_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": []}
VERTEX_MODELS = "/v1/projects/p/locations/us-east5/publishers/anthropic/models"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages",
        "/v1/messages?beta=true",
        "/anthropic/v1/messages",
        "/api/anthropic/v1/messages/",
        "/messages",
        f"{VERTEX_MODELS}/claude-sonnet-4-5:streamRawPredict",
        f"{VERTEX_MODELS}/claude-sonnet-4-5@20250929:rawPredict",
        f"/vertex{VERTEX_MODELS}/claude-3-5-haiku@20241022:streamRawPredict?alt=sse",
    ],
)
def test_matches_paths(path: str) -> None:
    assert CODEC.matches("POST", path, ANTHROPIC_BODY)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/messages", ANTHROPIC_BODY),
        ("POST", "/v1/messages/count_tokens", ANTHROPIC_BODY),
        ("POST", "/v1/messages/batches", {"requests": []}),
        ("POST", "/v1/messages/batches", {"messages": []}),
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []}),
        ("POST", "/openai/v1/chat/completions", ANTHROPIC_BODY),
        ("POST", "/v1/responses", {"model": "gpt-5", "input": "hi"}),
        ("POST", "/v1/threads/thread_abc/messages", {"role": "user", "content": "hi"}),
        ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []}),
        ("POST", "/mcp", {"jsonrpc": "2.0", "method": "tools/call", "id": 1}),
        ("POST", f"{VERTEX_MODELS}/count-tokens:rawPredict", ANTHROPIC_BODY),
        ("POST", f"{VERTEX_MODELS}/mistral-large:rawPredict", ANTHROPIC_BODY),
        ("POST", f"{VERTEX_MODELS}/claude-sonnet-4-5:predict", ANTHROPIC_BODY),
        ("POST", f"{VERTEX_MODELS}/claude-sonnet-4-5", ANTHROPIC_BODY),
        ("POST", f"{VERTEX_MODELS}/claude-sonnet-4-5:rawPredict", {"instances": []}),
        ("GET", f"{VERTEX_MODELS}/claude-sonnet-4-5:rawPredict", ANTHROPIC_BODY),
        ("POST", "/v1/messages", {"messages": "not a list"}),
        ("POST", "/v1/messages", [ANTHROPIC_BODY]),
        ("POST", "/v1/messages", None),
        ("POST", None, ANTHROPIC_BODY),
    ],
)
def test_does_not_match(method: str, path: Any, body: Any) -> None:
    assert not CODEC.matches(method, path, body)


# On Vertex AI the model is in the path and the body carries anthropic_version instead.
VERTEX_BODY = {
    "anthropic_version": "vertex-2023-10-16",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
}


@pytest.mark.parametrize(
    ("action", "body_stream", "stream"),
    [
        ("rawPredict", None, False),
        ("streamRawPredict", None, True),
        ("streamRawPredict", True, True),
        ("rawPredict", True, True),
    ],
)
def test_vertex_ai(action: str, body_stream: bool | None, stream: bool) -> None:
    path = f"{VERTEX_MODELS}/claude-sonnet-4-5@20250929:{action}"
    body = VERTEX_BODY if body_stream is None else {**VERTEX_BODY, "stream": body_stream}
    assert llm_codec_for("POST", path, body) is CODEC  # and no other codec before it
    parsed = CODEC.parse_request(body, path)
    assert parsed.model == "claude-sonnet-4-5@20250929"
    assert parsed.stream is stream
    assert parsed.items == (Item(USER, text="Weather in Paris?"),)


def test_vertex_ai_body_model_wins() -> None:
    path = f"{VERTEX_MODELS}/claude-sonnet-4-5:rawPredict"
    assert CODEC.parse_request({**VERTEX_BODY, "model": "m"}, path).model == "m"


def test_codec_shape() -> None:
    assert CODEC.api == "anthropic"
    decoder = CODEC.stream_decoder(ParsedRequest(api="anthropic"))
    assert decoder.feed(b"") == [] and decoder.close() == []


def test_message_thread_continue_joins_the_conversation_of_its_reply() -> None:
    """The beta message threads (anthropic 2.x's tool runner uses them): a request that
    continues a thread sends only its new messages, no system prompt and no tools; it
    belongs to the conversation of the reply it names, and to no other."""
    first = {
        "model": "m",
        "max_tokens": 9,
        "thread": {"type": "create"},
        "system": "Be brief.",
        "tools": [{"name": "get_doc", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Find the billing doc"}],
    }
    parsed = CODEC.parse_request(first, "/v1/messages")
    assert parsed.previous_response_id == ""
    sessions = Sessions()
    session, _ = sessions.request_events("scope", parsed, 1.0)
    sessions.response_done(session, "msg_1")
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{}"}
    later = {
        "model": "m",
        "max_tokens": 9,
        "thread": {"type": "continue", "previous_message_id": "msg_1"},
        "messages": [{"role": "user", "content": [result]}],
    }
    parsed = CODEC.parse_request(later, "/v1/messages")
    assert parsed.previous_response_id == "msg_1"
    assert parsed.items == (Item(TOOL_RESULT, call_id="toolu_1", content={}),)
    assert sessions.request_events("scope", parsed, 2.0)[0] == session
    # another scope never continues it; an unknown reply id starts a conversation of its own
    assert sessions.request_events("other", parsed, 2.0)[0].conversation != session.conversation
    unknown = {**later, "thread": {"type": "continue", "previous_message_id": "msg_9"}}
    parsed = CODEC.parse_request(unknown, "/v1/messages")
    assert sessions.request_events("scope", parsed, 3.0)[0] != session
    # a thread that is created (or none) continues nothing
    assert (
        CODEC.parse_request({**later, "thread": {"type": "create"}}, "/").previous_response_id == ""
    )
