"""Tests for the OpenAI Chat Completions codec (payload shapes copied from the real API)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from prefire.patterns.events import ToolSpec
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
from prefire.wire.providers.openai_chat import CODEC
from tests.streams import (
    assert_cuts_invariant,
    assert_split_invariant,
    decoding,
    drafts,
    random_cuts,
    split_at,
)

REQ = ParsedRequest(api="openai_chat", stream=True)
CHUNK_ID = "chatcmpl-AbC123"


# --- helpers -------------------------------------------------------------------------------


def sse(*chunks: Any, done: bool = True, eol: str = "\n") -> bytes:
    """A chat completions stream: one `data:` event per chunk, then `data: [DONE]`."""
    lines = [f"data: {orjson.dumps(c).decode()}{eol}{eol}" for c in chunks]
    if done:
        lines.append(f"data: [DONE]{eol}{eol}")
    return "".join(lines).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": CHUNK_ID,
        "object": "chat.completion.chunk",
        "created": 1727000000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_7568d46099",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    """One entry of a message's `tool_calls`."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def call_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **tool_call(call_id, name, "")}]}


def call_args(index: int, piece: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


USAGE_CHUNK = {
    "id": CHUNK_ID,
    "object": "chat.completion.chunk",
    "created": 1727000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [],
    "usage": {"prompt_tokens": 82, "completion_tokens": 49, "total_tokens": 131},
}


run = decoding(lambda: CODEC.stream_decoder(REQ))


# A recorded-shape stream: gpt-4o calling two tools in parallel, with usage chunk.
PARALLEL = sse(
    chunk({"role": "assistant", "content": None, "refusal": None}),
    chunk(call_start(0, "call_Weather01", "get_weather")),
    chunk(call_args(0, '{"lo')),
    chunk(call_args(0, 'cation": "Par')),
    chunk(call_args(0, 'is, France"}')),
    chunk(call_start(1, "call_Time02", "get_time")),
    chunk(call_args(1, '{"timezone": ')),
    chunk(call_args(1, '"Europe/Paris"}')),
    chunk({}, finish="tool_calls"),
    USAGE_CHUNK,
)
PARALLEL_OUT = [
    CallDraft("call_Weather01", "get_weather", {"location": "Paris, France"}, ""),
    CallDraft("call_Time02", "get_time", {"timezone": "Europe/Paris"}, ""),
    ResponseDone(CHUNK_ID, "tool_calls", ""),
]


# --- matches -------------------------------------------------------------------------------

CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/openai/v1/chat/completions",
        "/chat/completions",
        "/api/v1/chat/completions/",
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        "/proxy/groq/openai/v1/chat/completions",
    ],
)
def test_matches_any_prefix(path: str) -> None:
    assert CODEC.matches("POST", path, CHAT_BODY)
    assert CODEC.matches("post", path, CHAT_BODY)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/chat/completions", CHAT_BODY),
        ("POST", "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
        ("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi"}),
        ("POST", "/v1/messages", {"model": "claude", "max_tokens": 10, "messages": []}),
        (
            "POST",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        ),
        ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "prompt": "hi"}),
        ("POST", "/v1/chat/completions", {"messages": "hi"}),
        ("POST", "/v1/chat/completions", [CHAT_BODY]),
        ("POST", "/v1/chat/completions", None),
        ("POST", "/v1/chat/completions/extra", CHAT_BODY),
        ("POST", None, CHAT_BODY),
        (None, "/v1/chat/completions", CHAT_BODY),
    ],
)
def test_matches_rejects_other_requests(method: Any, path: Any, body: Any) -> None:
    assert not CODEC.matches(method, path, body)


def test_api_name() -> None:
    assert CODEC.api == "openai_chat"


# --- parse_request -------------------------------------------------------------------------

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"location": {"type": "string"}},
    "required": ["location"],
}

HISTORY_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "stream": True,
    "stream_options": {"include_usage": True},
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER_PARAMS,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
        {"type": "custom", "custom": {"name": "apply_patch", "description": "free text"}},
        {"type": "function", "function": {"description": "no name"}},
        "garbage",
    ],
    "functions": [{"name": "legacy_lookup", "parameters": {"type": "object"}}],
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "And the time."},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                tool_call("call_Weather01", "get_weather", '{"location":"Paris"}'),
                tool_call("call_Time02", "get_time", "{not json"),
            ],
        },
        {"role": "tool", "tool_call_id": "call_Weather01", "content": '{"temp_c": 18}'},
        {
            "role": "tool",
            "tool_call_id": "call_Time02",
            "content": [{"type": "text", "text": "14:05"}, {"type": "text", "text": "CEST"}],
        },
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "legacy_lookup", "arguments": "{}"},
        },
        {"role": "function", "name": "legacy_lookup", "content": "[1, 2]"},
        {"role": "assistant", "content": "It is 18 C and 14:05."},
        {"role": "user", "content": "Thanks"},
    ],
}


def test_parse_request_history() -> None:
    parsed = CODEC.parse_request(HISTORY_BODY, "/v1/chat/completions")
    assert parsed.api == "openai_chat"
    assert parsed.model == "gpt-4o"
    assert parsed.stream is True
    assert parsed.turns == 10
    assert parsed.previous_response_id == ""
    assert parsed.tools == (
        ToolSpec("get_weather", "Current weather for a city", WEATHER_PARAMS),
        ToolSpec("get_time"),
        ToolSpec("legacy_lookup", "", {"type": "object"}),
    )
    assert parsed.items == (
        Item(SYSTEM, text="You are terse."),
        Item(SYSTEM, text="Use tools."),
        Item(USER, text="Weather in Paris?\nAnd the time."),
        Item(ASSISTANT, text="Checking both."),
        Item(
            TOOL_CALL,
            call_id="call_Weather01",
            name="get_weather",
            arguments={"location": "Paris"},
            raw_arguments='{"location":"Paris"}',
        ),
        Item(TOOL_CALL, call_id="call_Time02", name="get_time", raw_arguments="{not json"),
        Item(TOOL_RESULT, call_id="call_Weather01", content={"temp_c": 18}),
        Item(TOOL_RESULT, call_id="call_Time02", content="14:05\nCEST"),
        Item(TOOL_CALL, name="legacy_lookup", arguments={}, raw_arguments="{}"),
        Item(TOOL_RESULT, name="legacy_lookup", content=[1, 2]),
        Item(ASSISTANT, text="It is 18 C and 14:05."),
        Item(USER, text="Thanks"),
    )


def test_parse_request_arguments_sent_as_object() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    tool_call("c1", "f", {"a": 1}),
                    {"id": "c2", "function": {"name": "g", "arguments": {"big": 2**70}}},
                ],
            }
        ]
    }
    items = CODEC.parse_request(body, "/v1/chat/completions").items
    assert items == (
        Item(TOOL_CALL, call_id="c1", name="f", arguments={"a": 1}, raw_arguments='{"a":1}'),
        Item(TOOL_CALL, call_id="c2", name="g"),
    )


def test_parse_request_empty_assistant_message_keeps_its_turn() -> None:
    body = {"messages": [{"role": "assistant", "content": None}]}
    assert CODEC.parse_request(body, "/").items == (Item(ASSISTANT),)


@pytest.mark.parametrize("stream", [False, "true", 1, None])
def test_stream_flag_must_be_true(stream: Any) -> None:
    body = {"model": "m", "messages": [], "stream": stream}
    assert CODEC.parse_request(body, "/v1/chat/completions").stream is False


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "messages",
        {},
        {"messages": None, "tools": "x", "functions": 3, "model": 5},
        {"messages": [None, 1, "x", [], {"role": 7}, {"role": "user", "content": 5}]},
        {"messages": [{"role": "assistant", "tool_calls": [None, {"function": "x"}, {"id": 3}]}]},
        {"messages": [{"role": "tool", "tool_call_id": 5, "content": {"a": 1}}]},
        {"messages": [{"role": "user", "content": [None, {"type": "text", "text": 5}]}]},
    ],
)
def test_parse_request_never_raises(body: Any) -> None:
    parsed = CODEC.parse_request(body, "/v1/chat/completions")
    assert parsed.api == "openai_chat"


def test_parse_request_turns_count_every_message() -> None:
    body = {"messages": [{"role": "user", "content": "a"}, None, {"role": "weird"}]}
    parsed = CODEC.parse_request(body, "/v1/chat/completions")
    assert parsed.turns == 3
    assert parsed.items == (Item(USER, text="a"),)


# --- parse_response ------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    }


def test_parse_response_tool_calls() -> None:
    body = completion(
        {
            "content": None,
            "tool_calls": [
                tool_call("call_Weather01", "get_weather", '{"location":"Paris"}'),
                tool_call("call_Time02", "get_time", "{oops"),
            ],
        },
        "tool_calls",
    )
    assert CODEC.parse_response(body, REQ) == [
        CallDraft("call_Weather01", "get_weather", {"location": "Paris"}, '{"location":"Paris"}'),
        CallDraft("call_Time02", "get_time", None, "{oops"),
        ResponseDone("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "tool_calls", ""),
    ]


def test_parse_response_text() -> None:
    body = completion({"content": "Hello there."}, "stop")
    assert CODEC.parse_response(body, REQ) == [
        ResponseDone("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "stop", "Hello there.")
    ]


def test_parse_response_legacy_function_call() -> None:
    body = completion(
        {"content": None, "function_call": {"name": "lookup", "arguments": '{"q": "x"}'}},
        "function_call",
    )
    assert CODEC.parse_response(body, REQ)[0] == CallDraft("", "lookup", {"q": "x"}, '{"q": "x"}')


@pytest.mark.parametrize("arguments", ["", " \n", "{}"])
def test_parse_response_empty_arguments(arguments: str) -> None:
    call = tool_call("c", "ping", arguments)
    body = completion({"content": None, "tool_calls": [call]}, "tool_calls")
    assert CODEC.parse_response(body, REQ)[0] == CallDraft("c", "ping", {}, arguments)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, []),
        ([], []),
        ("oops", []),
        ({}, [ResponseDone()]),
        ({"id": "x", "choices": []}, [ResponseDone("x")]),
        ({"id": 5, "choices": [None, 3]}, [ResponseDone()]),
        (
            {"choices": [{"message": {"tool_calls": [None, {"function": {"name": 3}}]}}]},
            [ResponseDone()],
        ),
        ({"error": {"message": "Rate limit", "type": "requests"}}, [ResponseDone()]),
    ],
)
def test_parse_response_bad_bodies(body: Any, expected: list[Any]) -> None:
    assert CODEC.parse_response(body, REQ) == expected


@pytest.mark.parametrize("raw", ["", " ", "\n\t "])
def test_blank_arguments_mean_no_arguments(raw: str) -> None:
    # Agent SDKs read "" as {}; servers send it for tools without parameters.
    call = tool_call("c", "ping", raw)
    history = {"messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]}
    assert CODEC.parse_request(history, "/v1/chat/completions").items == (
        Item(TOOL_CALL, call_id="c", name="ping", arguments={}, raw_arguments=raw),
    )
    body = completion({"content": None, "tool_calls": [call]}, "tool_calls")
    stream = sse(
        chunk(call_start(0, "c", "ping")), chunk(call_args(0, raw)), chunk({}, finish="tool_calls")
    )
    expected = [CallDraft("c", "ping", {}, raw)]
    assert drafts(CODEC.parse_response(body, REQ)) == expected
    assert drafts(run([stream])) == expected


# --- stream decoding -----------------------------------------------------------------------


def test_stream_parallel_calls() -> None:
    out = assert_split_invariant(PARALLEL, run)
    assert [(o.call_id, o.name, o.arguments) for o in drafts(out)] == [
        (d.call_id, d.name, d.arguments) for d in drafts(PARALLEL_OUT)
    ]
    assert out[0].raw_arguments == '{"location": "Paris, France"}'
    assert out[1].raw_arguments == '{"timezone": "Europe/Paris"}'
    assert out[-1] == PARALLEL_OUT[-1]


def test_stream_emits_each_call_as_soon_as_it_is_complete() -> None:
    events = [e + b"\n\n" for e in PARALLEL.split(b"\n\n") if e]
    decoder = CODEC.stream_decoder(REQ)
    per_event = [decoder.feed(e) for e in events]
    # events: role, start0, 3x args0, start1, 2x args1, finish, usage, [DONE]
    assert per_event[:4] == [[], [], [], []]
    # the last piece closes the arguments' JSON object: the call is complete there,
    # before the next call starts
    assert [d.call_id for d in per_event[4]] == ["call_Weather01"]
    assert per_event[5:7] == [[], []]
    assert [d.call_id for d in per_event[7]] == ["call_Time02"]  # before finish_reason
    assert per_event[8:10] == [[], []]
    assert per_event[10] == [ResponseDone(CHUNK_ID, "tool_calls", "")]
    assert decoder.close() == []


def test_stream_text_only() -> None:
    stream = sse(
        chunk({"role": "assistant", "content": "", "refusal": None}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo ✓"}),
        chunk({}, finish="stop"),
    )
    assert assert_split_invariant(stream, run) == [ResponseDone(CHUNK_ID, "stop", "Hello ✓")]


def test_stream_text_then_call() -> None:
    stream = sse(
        chunk({"role": "assistant", "content": "Let me check."}),
        chunk(call_start(0, "call_1", "search")),
        chunk(call_args(0, '{"q":"x"}')),
        chunk({}, finish="tool_calls"),
    )
    assert assert_split_invariant(stream, run) == [
        CallDraft("call_1", "search", {"q": "x"}, '{"q":"x"}'),
        ResponseDone(CHUNK_ID, "tool_calls", "Let me check."),
    ]


def test_stream_all_calls_in_one_chunk() -> None:
    # Some servers (vLLM, Gemini's OpenAI endpoint) send whole calls in a single delta.
    delta = {
        "tool_calls": [
            {"index": 0, **tool_call("a", "f", "{}")},
            {"index": 1, **tool_call("b", "g", "[1]")},
        ]
    }
    stream = sse(chunk(delta), chunk({}, finish="tool_calls"))
    assert assert_split_invariant(stream, run) == [
        CallDraft("a", "f", {}, "{}"),
        CallDraft("b", "g", [1], "[1]"),
        ResponseDone(CHUNK_ID, "tool_calls", ""),
    ]


def test_stream_calls_without_index_or_all_at_index_zero() -> None:
    def whole(call_id: str, name: str, args: str, index: int | None) -> dict[str, Any]:
        tc: dict[str, Any] = {"id": call_id, "function": {"name": name, "arguments": args}}
        if index is not None:
            tc["index"] = index
        return {"tool_calls": [tc]}

    stream = sse(
        chunk(whole("a", "f", '{"x":', 0)),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk(whole("b", "g", "{}", 0)),
        chunk(whole("c", "h", '{"y"', None)),
        chunk({"tool_calls": [{"function": {"arguments": ":2}"}}]}),
        chunk({}, finish="tool_calls"),
    )
    assert drafts(assert_split_invariant(stream, run)) == [
        CallDraft("a", "f", {"x": 1}, '{"x":1}'),
        CallDraft("b", "g", {}, "{}"),
        CallDraft("c", "h", {"y": 2}, '{"y":2}'),
    ]


def test_stream_repeated_id_and_name_do_not_split_or_double() -> None:
    stream = sse(
        chunk(call_start(0, "call_1", "search")),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "function": {"name": "search", "arguments": '{"q"'},
                    }
                ]
            }
        ),
        chunk(
            {"tool_calls": [{"index": 0, "id": "", "function": {"name": "", "arguments": ':"a"}'}}]}
        ),
        chunk({}, finish="tool_calls"),
    )
    assert drafts(assert_split_invariant(stream, run)) == [
        CallDraft("call_1", "search", {"q": "a"}, '{"q":"a"}')
    ]


def test_stream_late_piece_of_emitted_call_is_ignored() -> None:
    stream = sse(
        chunk(call_start(0, "a", "f")),
        chunk(call_args(0, "{}")),
        chunk(call_start(1, "b", "g")),
        chunk(call_args(0, "garbage")),
        chunk(call_args(1, "{}")),
        chunk({}, finish="tool_calls"),
    )
    assert drafts(assert_split_invariant(stream, run)) == [
        CallDraft("a", "f", {}, "{}"),
        CallDraft("b", "g", {}, "{}"),
    ]


def test_stream_legacy_function_call() -> None:
    stream = sse(
        chunk(
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "lookup", "arguments": ""},
            }
        ),
        chunk({"function_call": {"arguments": '{"q":'}}),
        chunk({"function_call": {"arguments": '"x"}'}}),
        chunk({}, finish="function_call"),
    )
    assert assert_split_invariant(stream, run) == [
        CallDraft("", "lookup", {"q": "x"}, '{"q":"x"}'),
        ResponseDone(CHUNK_ID, "function_call", ""),
    ]


def test_stream_only_choice_zero_is_tracked() -> None:
    stream = sse(
        chunk({"role": "assistant", "content": ""}, index=1),
        chunk(call_start(0, "a", "f")),
        chunk(call_start(0, "z", "other"), index=1),
        chunk(call_args(0, '{"k":1}')),
        chunk({"content": "alternative"}, index=1),
        chunk({}, finish="tool_calls"),
        chunk({}, finish="stop", index=1),
    )
    assert assert_split_invariant(stream, run) == [
        CallDraft("a", "f", {"k": 1}, '{"k":1}'),
        ResponseDone(CHUNK_ID, "tool_calls", ""),
    ]


def test_stream_without_done_marker_finishes_at_close() -> None:
    stream = sse(chunk(call_start(0, "a", "f")), chunk(call_args(0, '{"x": ')), done=False)
    decoder = CODEC.stream_decoder(REQ)
    assert decoder.feed(stream) == []
    # arguments never completed: the call is closed (unparsed) at the end
    assert decoder.close() == [
        CallDraft("a", "f", None, '{"x": '),
        ResponseDone(CHUNK_ID, "", ""),
    ]
    assert decoder.close() == []


def test_call_is_complete_when_its_arguments_parse() -> None:
    decoder = CODEC.stream_decoder(REQ)
    assert (
        decoder.feed(
            sse(chunk(call_start(0, "a", "f")), chunk(call_args(0, '{"q": "}')), done=False)
        )
        == []
    )
    assert decoder.feed(sse(chunk(call_args(0, 'x"}')), done=False)) == [
        CallDraft("a", "f", {"q": "}x"}, '{"q": "}x"}')
    ]
    # a late piece of the emitted call changes nothing
    assert decoder.feed(sse(chunk(call_args(0, " ")), done=False)) == []


def test_stream_cut_mid_event_drops_the_partial_event() -> None:
    stream = sse(chunk(call_start(0, "a", "f")), chunk(call_args(0, "{}")), done=False)
    # The call's first delta carried arguments "": no arguments.
    assert run([stream[:-5]]) == [CallDraft("a", "f", {}, ""), ResponseDone(CHUNK_ID, "", "")]


def test_stream_events_after_done_are_ignored() -> None:
    stream = PARALLEL + sse(chunk(call_start(0, "late", "f")), chunk({}, finish="stop"))
    assert run([stream]) == run([PARALLEL])


def test_stream_crlf_line_endings() -> None:
    stream = sse(
        chunk(call_start(0, "a", "f")),
        chunk(call_args(0, '{"x": 1}')),
        chunk({}, finish="tool_calls"),
        eol="\r\n",
    )
    assert assert_split_invariant(stream, run) == [
        CallDraft("a", "f", {"x": 1}, '{"x": 1}'),
        ResponseDone(CHUNK_ID, "tool_calls", ""),
    ]


def test_stream_invalid_json_arguments() -> None:
    stream = sse(
        chunk(call_start(0, "a", "f")),
        chunk(call_args(0, '{"x": tru')),
        chunk({}, finish="tool_calls"),
    )
    assert drafts(assert_split_invariant(stream, run)) == [CallDraft("a", "f", None, '{"x": tru')]


@pytest.mark.parametrize("pieces", [[], [""], [" ", "\n"], ["{", "}"]])
def test_stream_empty_arguments(pieces: list[str]) -> None:
    stream = sse(
        chunk(call_start(0, "a", "ping")),
        *(chunk(call_args(0, p)) for p in pieces),
        chunk({}, finish="tool_calls"),
    )
    assert drafts(assert_split_invariant(stream, run)) == [
        CallDraft("a", "ping", {}, "".join(pieces))
    ]


def test_stream_huge_arguments() -> None:
    blob = "x" * 1_000_000
    raw = orjson.dumps({"content": blob}).decode()
    pieces = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    stream = sse(
        chunk(call_start(0, "big", "write_file")),
        *(chunk(call_args(0, p)) for p in pieces),
        chunk({}, finish="tool_calls"),
    )
    expected = [
        CallDraft("big", "write_file", {"content": blob}, raw),
        ResponseDone(CHUNK_ID, "tool_calls", ""),
    ]
    cuts = (1, len(stream) // 3, len(stream) // 2, len(stream) - 1)
    assert assert_cuts_invariant(stream, run, cuts, 997) == expected


def test_stream_garbage_and_unknown_events() -> None:
    stream = (
        b": keep-alive comment\n\n"
        b"event: ping\ndata: {}\n\n"
        b"data: not json at all\n\n"
        b"data: [1, 2, 3]\n\n"
        b"data: \xff\xfe\x00garbage\n\n"
        + sse(chunk(call_start(0, "a", "f")), done=False)
        + b'data: {"choices": "nope"}\n\n'
        b'data: {"choices": [{"index": 0, "delta": "nope"}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {"tool_calls": "x", "content": 5}}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {"tool_calls": [null, 3, {"index": "0"}]}}]}\n\n'
        b'data: {"error": {"message": "upstream hiccup"}}\n\n'
        b"\x00\x01\x02\n\n" + sse(chunk(call_args(0, "{}")), chunk({}, finish="tool_calls"))
    )
    out = assert_split_invariant(stream, run)
    assert out == [CallDraft("a", "f", {}, "{}"), ResponseDone(CHUNK_ID, "tool_calls", "")]


def test_stream_invalid_utf8_inside_arguments() -> None:
    stream = (
        sse(chunk(call_start(0, "a", "f")), done=False)
        + b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
        + b'{"arguments":"{\\"k\\": \\"\xff\\"}"}}]}}]}\n\n'
        + sse(chunk({}, finish="tool_calls"))
    )
    out = assert_split_invariant(stream, run)
    # The chunk with invalid UTF-8 decodes with a replacement character and stays valid JSON.
    assert out[0] == CallDraft("a", "f", {"k": "\ufffd"}, '{"k": "\ufffd"}')


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xff" * 100, b"data: [DONE]\n\n"])
def test_stream_degenerate_bodies(data: bytes) -> None:
    assert run([data]) == [ResponseDone()]


@settings(max_examples=200, deadline=None)
@given(random_cuts(PARALLEL))
def test_stream_any_chunking(cuts: list[int]) -> None:
    assert run(split_at(PARALLEL, cuts)) == run([PARALLEL])
