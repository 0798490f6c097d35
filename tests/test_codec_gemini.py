"""Gemini codec: requests, whole responses, SSE and JSON-array streams, call ids."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pytest

from prefire.patterns.events import ToolSpec
from prefire.wire.providers.base import (
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
from prefire.wire.providers.gemini import CODEC
from tests.streams import (
    assert_cuts_invariant,
    assert_split_invariant,
    drafts,
    feed_all,
    pieces,
)

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM_SSE = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
STREAM_ARRAY = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"

WEATHER_SCHEMA = {
    "type": "OBJECT",
    "properties": {"city": {"type": "STRING", "description": "City name"}},
    "required": ["city"],
}
TIME_SCHEMA = {"type": "object", "properties": {"tz": {"type": "string"}}}
SIGNATURE = "CiQB0e2Kb7Jm4bS0sI6g5aTqN3wqo2m3w6Z2tKk1QF5dCw=="

REQUEST: dict[str, Any] = {
    "systemInstruction": {
        "parts": [{"text": "You are a travel assistant."}, {"text": "Be brief."}]
    },
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": WEATHER_SCHEMA,
                },
                {"name": "get_time", "parametersJsonSchema": TIME_SCHEMA},
            ]
        },
        {"googleSearch": {}},
    ],
    "generationConfig": {"temperature": 0.2, "thinkingConfig": {"includeThoughts": True}},
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome,"}, {"text": "and time?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Planning the lookups.", "thought": True},
                {"text": "Let me check."},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_time",
                        "response": {"result": "14:05"},
                    }
                },
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"output": {"temp_c": 18}},
                    }
                },
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"error": "station offline"},
                    }
                },
            ],
        },
        {
            "role": "model",
            "parts": [
                {"functionCall": {"id": "call-abc", "name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "call-abc",
                        "name": "get_time",
                        "response": {"result": "14:06"},
                    }
                },
                {"text": "Thanks!"},
            ],
        },
    ],
}

EXPECTED_ITEMS = (
    Item(SYSTEM, text="You are a travel assistant.\nBe brief."),
    Item(USER, text="Weather in Paris and Rome,\nand time?"),
    Item(ASSISTANT, text="Let me check."),
    Item(
        TOOL_CALL,
        call_id="gemini-1-fc0",
        name="get_weather",
        arguments={"city": "Paris"},
        raw_arguments='{"city":"Paris"}',
    ),
    Item(
        TOOL_CALL,
        call_id="gemini-1-fc1",
        name="get_weather",
        arguments={"city": "Rome"},
        raw_arguments='{"city":"Rome"}',
    ),
    Item(
        TOOL_CALL,
        call_id="gemini-1-fc2",
        name="get_time",
        arguments={"tz": "Europe/Paris"},
        raw_arguments='{"tz":"Europe/Paris"}',
    ),
    Item(TOOL_RESULT, call_id="gemini-1-fc2", name="get_time", content={"result": "14:05"}),
    Item(
        TOOL_RESULT, call_id="gemini-1-fc0", name="get_weather", content={"output": {"temp_c": 18}}
    ),
    Item(
        TOOL_RESULT,
        call_id="gemini-1-fc1",
        name="get_weather",
        content={"error": "station offline"},
        is_error=True,
    ),
    Item(TOOL_CALL, call_id="call-abc", name="get_time", arguments={}, raw_arguments="{}"),
    Item(TOOL_RESULT, call_id="call-abc", name="get_time", content={"result": "14:06"}),
    Item(USER, text="Thanks!"),
)


def test_parse_request() -> None:
    parsed = CODEC.parse_request(REQUEST, GENERATE)
    assert parsed.api == "gemini"
    assert parsed.model == "gemini-2.5-flash"
    assert parsed.stream is False
    assert parsed.turns == 5
    assert parsed.tools == (
        ToolSpec("get_weather", "Current weather", WEATHER_SCHEMA),
        ToolSpec("get_time", "", TIME_SCHEMA),
    )
    assert parsed.items == EXPECTED_ITEMS


@pytest.mark.parametrize("path", [STREAM_SSE, STREAM_ARRAY])
def test_parse_request_stream_paths(path: str) -> None:
    parsed = CODEC.parse_request(REQUEST, path)
    assert parsed.stream is True
    assert parsed.model == "gemini-2.5-flash"


def test_parse_request_vertex_path() -> None:
    path = (
        "/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    parsed = CODEC.parse_request({"contents": []}, path)
    assert (parsed.model, parsed.stream, parsed.turns) == ("gemini-2.5-pro", True, 0)


def test_parse_request_snake_case_fields() -> None:
    # The REST API accepts proto field names too; the docs' curl samples use them.
    body = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "tools": [
            {
                "function_declarations": [
                    {"name": "get_time", "parameters_json_schema": TIME_SCHEMA},
                ]
            }
        ],
        "contents": [
            {"role": "user", "parts": [{"text": "time?"}]},
            {"role": "model", "parts": [{"function_call": {"name": "get_time", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"function_response": {"name": "get_time", "response": {"r": 1}}}],
            },
        ],
    }
    parsed = CODEC.parse_request(body, GENERATE)
    assert parsed.tools == (ToolSpec("get_time", "", TIME_SCHEMA),)
    assert parsed.items == (
        Item(SYSTEM, text="Be brief."),
        Item(USER, text="time?"),
        Item(TOOL_CALL, call_id="gemini-1-fc0", name="get_time", arguments={}, raw_arguments="{}"),
        Item(TOOL_RESULT, call_id="gemini-1-fc0", name="get_time", content={"r": 1}),
    )


def call(name: str, args: Any = None, **extra: Any) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": {} if args is None else args, **extra}}


def answer(name: str, response: Any = None, **extra: Any) -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": response or {"ok": 1}, **extra}}


def result_ids(contents: list[dict[str, Any]]) -> list[str]:
    items = CODEC.parse_request({"contents": contents}, GENERATE).items
    return [i.call_id for i in items if i.role == TOOL_RESULT]


def test_results_match_the_latest_model_turn_only() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [call("f"), call("g")]},
        {"role": "user", "parts": [answer("g")]},  # f is never answered
        {"role": "model", "parts": [call("f")]},
        {"role": "user", "parts": [answer("f"), answer("f"), answer("h")]},
    ]
    assert result_ids(contents) == ["gemini-1-fc1", "gemini-3-fc0", "", ""]


def test_model_turn_spread_over_several_contents() -> None:
    # Some clients store each streamed chunk as its own model content.
    contents = [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"text": "Checking"}]},
        {"role": "model", "parts": [call("f", {"n": 1})]},
        {"role": "model", "parts": [call("f", {"n": 2})]},
        {"role": "user", "parts": [answer("f"), answer("f")]},
    ]
    assert result_ids(contents) == ["gemini-1-fc0", "gemini-1-fc1"]


def test_result_ids_mix_explicit_and_missing() -> None:
    contents = [
        {"role": "model", "parts": [call("f", id="a"), call("f", id="b"), call("f")]},
        {"role": "user", "parts": [answer("f", id="b"), answer("f"), answer("f"), answer("f")]},
    ]
    assert result_ids(contents) == ["b", "a", "gemini-0-fc2", ""]


def test_parse_request_args_shapes() -> None:
    contents = [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "no_args"}},
                {"functionCall": {"name": "text_args", "args": '{"a": 1}'}},
                {"functionCall": {"name": "bad_text_args", "args": '{"a": '}},
                {"functionCall": {"name": "big", "args": {"n": 10**30}}},
                {"functionCall": {"args": {"nameless": True}}},
            ],
        }
    ]
    calls = [i for i in CODEC.parse_request({"contents": contents}, GENERATE).items]
    assert [(i.name, i.arguments, i.raw_arguments) for i in calls] == [
        ("no_args", {}, "{}"),
        ("text_args", {"a": 1}, '{"a": 1}'),
        ("bad_text_args", None, '{"a": '),
        ("big", {"n": 10**30}, f'{{"n":{10**30}}}'),
    ]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "contents",
        {"contents": {"role": "user"}},
        {"contents": [None, 1, {"role": "user", "parts": "hi"}, {"parts": [None, 5, {}]}]},
        {"contents": [], "systemInstruction": {"parts": "x"}, "tools": {"a": 1}},
        {"contents": [], "tools": [None, {"functionDeclarations": [None, {"name": 1}]}]},
        {"contents": [{"role": "model", "parts": [{"functionCall": "f"}, {"functionCall": {}}]}]},
        {"contents": [{"role": "user", "parts": [{"functionResponse": [1]}]}]},
    ],
)
def test_parse_request_bad_input_never_raises(body: Any) -> None:
    parsed = CODEC.parse_request(body, GENERATE)
    assert parsed.api == "gemini"
    assert parsed.items == ()
    assert parsed.tools == ()


# --- whole responses -----------------------------------------------------------

USAGE = {"promptTokenCount": 75, "candidatesTokenCount": 16, "totalTokenCount": 141}


def response(parts: list[Any], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "n3vGaK7kNOKVxN8P8ZzR0Qg",
        **extra,
    }


REQUEST_TURN_3 = ParsedRequest(api="gemini", turns=3)


def test_parse_response() -> None:
    body = response(
        [
            {"text": "Thinking about cities", "thought": True},
            {"text": "Checking "},
            {"text": "both."},
            {**call("get_weather", {"city": "Paris"}), "thoughtSignature": SIGNATURE},
            call("get_weather", {"city": "Rome"}, id="fc-7"),
        ]
    )
    assert CODEC.parse_response(body, REQUEST_TURN_3) == [
        CallDraft("gemini-3-fc0", "get_weather", {"city": "Paris"}, '{"city":"Paris"}'),
        CallDraft("fc-7", "get_weather", {"city": "Rome"}, '{"city":"Rome"}'),
        ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "STOP", "Checking both."),
    ]


def test_parse_response_without_finish_reason_still_ends() -> None:
    body = response([{"text": "hi"}], finish=None)
    assert CODEC.parse_response(body, REQUEST_TURN_3) == [
        ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "", "hi")
    ]


def test_parse_response_blocked_prompt() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "r1"}
    assert CODEC.parse_response(body, REQUEST_TURN_3) == [ResponseDone("r1", "", "")]


def test_parse_response_buffered_json_array() -> None:
    chunks = [
        response([{"text": "Let me "}], finish=None),
        response([call("f", {"a": 1})], finish=None),
        response([call("g")], finish="STOP"),
    ]
    assert CODEC.parse_response(chunks, REQUEST_TURN_3) == [
        CallDraft("gemini-3-fc0", "f", {"a": 1}, '{"a":1}'),
        CallDraft("gemini-3-fc1", "g", {}, "{}"),
        ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "STOP", "Let me "),
    ]


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        42,
        [],
        [None, "x"],
        {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
    ],
)
def test_parse_response_bad_bodies(body: Any) -> None:
    assert CODEC.parse_response(body, REQUEST_TURN_3) == []


def test_parse_response_odd_candidates() -> None:
    body = {
        "candidates": [
            None,
            {"index": 1, "content": {"parts": [call("other_candidate")]}},
            {"content": {"parts": [None, {"text": 5}, call("f")]}, "finishReason": 7},
        ]
    }
    assert CODEC.parse_response(body, REQUEST_TURN_3) == [
        CallDraft("gemini-3-fc0", "f", {}, "{}"),
        ResponseDone(),
    ]


# --- streams -------------------------------------------------------------------

CHUNKS = [
    response([{"text": "**Planning** {lookups}", "thought": True}], finish=None),
    response([{"text": 'I\'ll check "both" cities \\ {now} — ünïcode 🌤 '}], finish=None),
    response(
        [
            {
                **call("get_weather", {"city": "Paris", "path": "C:\\"}),
                "thoughtSignature": SIGNATURE,
            },
            call("get_weather", {"city": "Rome", "note": '"}{'}),
        ],
        finish=None,
    ),
    response([call("get_time", {}, id="fc-time")], finish="STOP"),
]

EXPECTED_OUTPUTS = [
    CallDraft(
        "gemini-3-fc0",
        "get_weather",
        {"city": "Paris", "path": "C:\\"},
        '{"city":"Paris","path":"C:\\\\"}',
    ),
    CallDraft(
        "gemini-3-fc1",
        "get_weather",
        {"city": "Rome", "note": '"}{'},
        '{"city":"Rome","note":"\\"}{"}',
    ),
    CallDraft("fc-time", "get_time", {}, "{}"),
    ResponseDone(
        "n3vGaK7kNOKVxN8P8ZzR0Qg", "STOP", 'I\'ll check "both" cities \\ {now} — ünïcode 🌤 '
    ),
]


def sse_body(chunks: list[Any]) -> bytes:
    """What ?alt=sse sends: compact JSON per `data:` line, CRLF line ends."""
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


def array_body(chunks: list[Any]) -> bytes:
    """What streamGenerateContent sends without alt=sse: a pretty JSON array, bit by bit."""
    return (
        b"[" + b"\n,\r\n".join(orjson.dumps(c, option=orjson.OPT_INDENT_2) for c in chunks) + b"]"
    )


def run(chunks: Iterable[bytes], turns: int = 3) -> list[Output]:
    return feed_all(
        CODEC.stream_decoder(ParsedRequest(api="gemini", stream=True, turns=turns)), chunks
    )


BODIES = pytest.mark.parametrize("body_of", [sse_body, array_body], ids=["sse", "array"])


@BODIES
def test_stream(body_of: Callable[[list[Any]], bytes]) -> None:
    assert run([body_of(CHUNKS)]) == EXPECTED_OUTPUTS


@BODIES
def test_stream_any_chunk_boundaries(body_of: Callable[[list[Any]], bytes]) -> None:
    assert_split_invariant(body_of(CHUNKS), run)


def test_array_stream_with_leading_whitespace_any_boundaries() -> None:
    data = b" \r\n\t" + array_body(CHUNKS) + b"\n"
    assert run([data]) == EXPECTED_OUTPUTS
    assert_split_invariant(data, run)


@BODIES
def test_calls_are_emitted_as_soon_as_their_chunk_is_complete(
    body_of: Callable[[list[Any]], bytes],
) -> None:
    decoder = CODEC.stream_decoder(ParsedRequest(api="gemini", turns=3))
    head = body_of(CHUNKS[:3])
    if body_of is array_body:
        head = head[:-1]  # the array is still open: no "]" yet
    assert decoder.feed(head) == EXPECTED_OUTPUTS[:2]
    assert decoder.feed(body_of(CHUNKS)[len(head) :]) == EXPECTED_OUTPUTS[2:]
    assert decoder.close() == []


@BODIES
def test_stream_without_finish_reason_ends_at_close(body_of: Callable[[list[Any]], bytes]) -> None:
    chunks = [response([{"text": "Hel"}], finish=None), response([{"text": "lo"}], finish=None)]
    decoder = CODEC.stream_decoder(ParsedRequest(api="gemini", turns=1))
    assert decoder.feed(body_of(chunks)) == []
    assert decoder.close() == [ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "", "Hello")]
    assert decoder.close() == []


@BODIES
def test_response_done_only_once(body_of: Callable[[list[Any]], bytes]) -> None:
    chunks = [
        response([call("f")], finish="STOP"),
        response([call("late")], finish="STOP"),
        {"usageMetadata": USAGE},
    ]
    assert run([body_of(chunks)], turns=1) == [
        CallDraft("gemini-1-fc0", "f", {}, "{}"),
        ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "STOP", ""),
    ]


@BODIES
def test_stream_error_chunk_ends_without_response_done(
    body_of: Callable[[list[Any]], bytes],
) -> None:
    chunks = [
        response([call("f")], finish=None),
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
        response([call("g")], finish="STOP"),
    ]
    assert run([body_of(chunks)], turns=1) == [CallDraft("gemini-1-fc0", "f", {}, "{}")]


# A response whose calls carry no ids, text parts around them, and one call with an id.
ROUND_TRIP_CHUNKS = [
    response([{"text": "Two cities.", "thought": True}, {"text": "Let me "}], finish=None),
    response([{"text": "check "}, call("get_weather", {"city": "Paris"})], finish=None),
    response(
        [
            {"text": "and "},
            {"text": "also "},
            {**call("get_weather", {"city": "Rome"}), "thoughtSignature": SIGNATURE},
            call("get_time", id="fc-time"),
            call("get_time", {"tz": "UTC"}),
        ],
        finish="STOP",
    ),
]


def model_parts(chunks: list[dict[str, Any]]) -> list[list[Any]]:
    return [c["candidates"][0]["content"]["parts"] for c in chunks]


def keep_parts(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A client that keeps the parts as received, in one model content."""
    return [{"role": "model", "parts": [p for parts in model_parts(chunks) for p in parts]}]


def merge_texts(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A client that merges adjacent plain text parts, shifting the parts' positions."""
    merged: list[dict[str, Any]] = []
    for part in (p for parts in model_parts(chunks) for p in parts):
        if merged and set(part) == set(merged[-1]) == {"text"}:
            merged[-1] = {"text": merged[-1]["text"] + part["text"]}
        else:
            merged.append(part)
    return [{"role": "model", "parts": merged}]


def content_per_chunk(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A client that stores each streamed chunk as a model content of its own."""
    return [{"role": "model", "parts": parts} for parts in model_parts(chunks)]


@pytest.mark.parametrize("history_of", [keep_parts, merge_texts, content_per_chunk])
@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "whole"])
def test_round_trip_ids_match_next_request(
    history_of: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], streamed: bool
) -> None:
    """The ids a response's calls get are the ids the next request gives the same calls."""
    first = {"contents": [{"role": "user", "parts": [{"text": "Paris and Rome?"}]}]}
    request = CODEC.parse_request(first, STREAM_SSE)
    if streamed:
        chunks = ROUND_TRIP_CHUNKS
        out = feed_all(CODEC.stream_decoder(request), [sse_body(chunks)])
    else:
        chunks = [response([p for parts in model_parts(ROUND_TRIP_CHUNKS) for p in parts])]
        out = CODEC.parse_response(chunks[0], request)
    answers = [
        answer("get_time", {"t": "14:05"}, id="fc-time"),
        answer("get_time", {"t": "12:05"}),
        answer("get_weather", {"temp": 18}),
        answer("get_weather", {"temp": 24}),
    ]
    second = {
        "contents": [*first["contents"], *history_of(chunks), {"role": "user", "parts": answers}]
    }
    items = CODEC.parse_request(second, STREAM_SSE).items
    calls = [i for i in items if i.role == TOOL_CALL]
    results = {i.call_id: i.content for i in items if i.role == TOOL_RESULT}
    assert [d.call_id for d in drafts(out)] == [c.call_id for c in calls]
    assert [d.call_id for d in drafts(out)] == [
        "gemini-1-fc0",
        "gemini-1-fc1",
        "fc-time",
        "gemini-1-fc3",
    ]
    assert [d.arguments for d in drafts(out)] == [c.arguments for c in calls]
    assert results == {
        "gemini-1-fc0": {"temp": 18},
        "gemini-1-fc1": {"temp": 24},
        "fc-time": {"t": "14:05"},
        "gemini-1-fc3": {"t": "12:05"},
    }


@BODIES
def test_stream_huge_arguments(body_of: Callable[[list[Any]], bytes]) -> None:
    blob = 'x{"}\\' * (1 << 18)  # ~1 MB of characters that matter to a JSON scanner
    chunks = [response([call("write_file", {"path": "/tmp/big", "content": blob})])]
    data = body_of(chunks)
    expected = [
        CallDraft(
            "gemini-3-fc0",
            "write_file",
            {"path": "/tmp/big", "content": blob},
            orjson.dumps({"path": "/tmp/big", "content": blob}).decode(),
        ),
        ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "STOP", ""),
    ]
    assert assert_cuts_invariant(data, run, (1, 2, 500_000, len(data) - 2), 4096) == expected


def test_array_stream_skips_unparseable_objects() -> None:
    data = (
        b'[{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}]}'
        b',\n{"bad": tru}'  # invalid JSON: skipped, and brace counting stays in step
        b',\n"stray string {"'
        b',\n{"candidates": [{"content": {"parts": [{"text": "\xff"}]}, "finishReason": "STOP"}]}]'
    )
    assert run([data], turns=1) == [
        CallDraft("gemini-1-fc0", "f", {}, "{}"),
        ResponseDone("", "STOP", "\ufffd"),
    ]
    assert_split_invariant(data, lambda chunks: run(chunks, turns=1))


def test_sse_stream_skips_unparseable_events() -> None:
    data = (
        b"data: {not json\r\n\r\n"
        b": keep-alive\r\n\r\n"
        b"event: unknown\r\ndata: [1, 2]\r\n\r\n" + sse_body([response([call("f")])])
    )
    assert run([data], turns=1) == [
        CallDraft("gemini-1-fc0", "f", {}, "{}"),
        ResponseDone("n3vGaK7kNOKVxN8P8ZzR0Qg", "STOP", ""),
    ]


def test_garbage_bytes_never_raise() -> None:
    rng = random.Random(11)
    blobs = [
        os.urandom(4096),
        b"[" + os.urandom(4096),
        b"[" + bytes(rng.choice(b'{}"\\[], ') for _ in range(4096)),
        b"data: " + bytes(rng.choice(b'{}"\\\r\n') for _ in range(4096)),
        b"[" + b"{" * 5000 + b"}" * 5000 + b"]",
        array_body(CHUNKS)[::2],
        sse_body(CHUNKS)[::3],
        b"   ",
        b"",
    ]
    for blob in blobs:
        for size in (1, 5, 256, max(len(blob), 1)):
            run(pieces(blob, size))
    decoder = CODEC.stream_decoder(ParsedRequest(api="gemini"))
    assert decoder.feed("not bytes") == []  # type: ignore[arg-type]
    assert decoder.feed(None) == []  # type: ignore[arg-type]
    assert decoder.close() == []


# --- matches -------------------------------------------------------------------

GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
VERTEX_CLAUDE = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5"


@pytest.mark.parametrize(
    "path",
    [
        GENERATE,
        STREAM_SSE,
        STREAM_ARRAY,
        "/v1/models/gemini-2.0-flash:generateContent?key=AIza",
        "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
        "/v1beta/tunedModels/my-model-123:generateContent",
    ],
)
def test_matches_paths(path: str) -> None:
    assert CODEC.matches("POST", path, GEMINI_BODY)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", GENERATE, GEMINI_BODY),
        ("POST", "/v1beta/models/gemini-2.5-flash:countTokens", GEMINI_BODY),
        ("POST", "/v1beta/models/text-embedding-004:embedContent", {"content": {"parts": []}}),
        ("POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", {"batch": {}}),
        ("POST", "/v1beta/openai/chat/completions", {"model": "gemini-2.5-flash", "messages": []}),
        ("POST", "/v1/messages", {"model": "claude-sonnet-4-5", "messages": []}),
        ("POST", "/v1/responses", {"model": "gpt-5", "input": "hi"}),
        ("POST", GENERATE, {"messages": []}),
        # Claude on Vertex AI: same host and path scheme, Anthropic's codec.
        ("POST", f"{VERTEX_CLAUDE}:streamRawPredict", GEMINI_BODY),
        ("POST", f"{VERTEX_CLAUDE}:rawPredict", {"messages": [], "max_tokens": 10}),
        ("POST", GENERATE, {"contents": "hi"}),
        ("POST", GENERATE, [GEMINI_BODY]),
        ("POST", GENERATE, None),
        ("POST", None, GEMINI_BODY),
    ],
)
def test_does_not_match(method: str, path: Any, body: Any) -> None:
    assert not CODEC.matches(method, path, body)


def test_codec_shape() -> None:
    assert CODEC.api == "gemini"
    assert CODEC.parse_request(GEMINI_BODY, "?alt=sse").model == ""
