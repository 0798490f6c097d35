"""The Observer, sans-I/O as h11: each input returns the events it produced, in order, and
it calls back into nothing. A tool call appears in the events of the very chunk that
closes it (the moment an eager start may begin), not before, and once."""

from __future__ import annotations

import json

from prefire.patterns.events import LLMRequest, ToolCall, ToolExchange, UserMessage
from prefire.wire.observer import Observer
from tests.upstreams import TIME_ARGS, WEATHER_ARGS, openai_chat_stream

URL = "https://api.openai.com/v1/chat/completions"
PATH = "/v1/chat/completions"
HEADERS = [("authorization", "Bearer sk-a"), ("content-type", "application/json")]


def chat(stream: bool = True) -> bytes:
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "weather?"}]}
    return json.dumps(body).encode()


def test_a_request_returns_its_events_and_opens_its_exchange() -> None:
    obs = Observer()
    events = obs.request("x1", "POST", URL, PATH, HEADERS, chat(), 1.0)
    assert [type(e) for e in events] == [UserMessage, LLMRequest]
    ex = obs.exchange("x1")
    assert ex is not None and ex.codec is not None and ex.wants_stream
    # not an exchange prefire follows: no events, no exchange, nothing to stream
    assert obs.request("x2", "GET", URL, PATH, HEADERS, b"", 1.0) == []
    assert obs.exchange("x2") is None and obs.stream("x2", 200) is False


def test_each_call_comes_out_of_the_chunk_that_closes_it() -> None:
    obs = Observer()
    obs.request("x1", "POST", URL, PATH, HEADERS, chat(), 1.0)
    assert obs.stream("x1", 200) is True
    per_chunk = [obs.chunk("x1", c, 2.0 + n / 10) for n, c in enumerate(openai_chat_stream())]
    calls = [(n, e) for n, events in enumerate(per_chunk) for e in events]
    assert all(isinstance(e, ToolCall) for _, e in calls)
    # a call closes in the chunk that completes its arguments' JSON: get_weather's second
    # fragment (chunk 3), get_time's single delta (chunk 4); the finish chunk adds none
    assert [(n, e.name, e.arguments) for n, e in calls] == [
        (3, "get_weather", WEATHER_ARGS),
        (4, "get_time", TIME_ARGS),
    ]
    assert obs.response("x1", 200, "text/event-stream", None, 3.0) == []  # nothing twice
    assert obs.exchange("x1") is None


def test_an_error_status_is_not_observed() -> None:
    obs = Observer()
    obs.request("x1", "POST", URL, PATH, HEADERS, chat(), 1.0)
    assert obs.stream("x1", 500) is False
    assert obs.response("x1", 500, "text/event-stream", b"".join(openai_chat_stream()), 2.0) == []


def test_an_mcp_tools_call_and_its_answer_make_one_exchange_event() -> None:
    obs = Observer()
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call"}
    call["params"] = {"name": "get_weather", "arguments": WEATHER_ARGS}
    headers = [("mcp-session-id", "s1"), ("authorization", "Bearer t")]
    url = "http://tools/mcp"
    assert obs.request("m1", "POST", url, "/mcp", headers, json.dumps(call).encode(), 1.0) == []
    reply = {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "11C"}]}}
    events = obs.response("m1", 200, "application/json", json.dumps(reply).encode(), 1.5)
    assert len(events) == 1 and isinstance(events[0], ToolExchange)
    assert (events[0].name, events[0].arguments, events[0].duration_s) == (
        "get_weather",
        WEATHER_ARGS,
        0.5,
    )
