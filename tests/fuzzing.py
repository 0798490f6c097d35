"""Fuzzing the codecs, the SSE splitter and the observer: strategies and the checks they feed.

Shared by the fast property tests (tests/test_fuzz_codecs.py, a few hundred cases per
target) and by the long run in bench/reliability.py (thousands per target, counted). A
check raises only when a codec lets an exception escape or breaks an invariant; every
case it runs is counted in CASES, by target.

Inputs are realistic wire samples of every supported format (tests/upstreams.py, the
MCP SDK's own bytes) and what can be made of them: byte-level mutations (flips, cuts,
insertions of CR/LF, quotes, braces and invalid UTF-8), JSON-level mutations (a
subtree replaced by a value of another type), random chunkings, bodies that claim one
encoding and carry another, deeply nested JSON and enormous arguments.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import brotli
import orjson
import zstandard
from hypothesis import strategies as st

from prefire.patterns import snapshot
from prefire.patterns.canonical import canonical
from prefire.patterns.model import PatternModel
from prefire.wire.observer import Observer
from prefire.wire.providers import mcp
from prefire.wire.providers.base import CallDraft, LLMCodec, ParsedRequest, ResponseDone
from prefire.wire.providers.sse import SSESplitter
from tests.streams import split_at
from tests.upstreams import (
    WEATHER_ARGS,
    anthropic_stream,
    gemini_json,
    openai_chat_json,
    openai_chat_stream,
    responses_stream,
)

CASES: Counter[str] = Counter()

# -- wire samples ----------------------------------------------------------------------------

TOOLS_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
HISTORY_OPENAI = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
]
RESPONSES_OUTPUT = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "output": [
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_r1",
            "name": "get_weather",
            "arguments": json.dumps(WEATHER_ARGS),
            "status": "completed",
        },
        {"type": "message", "content": [{"type": "output_text", "text": "ok"}]},
    ],
}
ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": WEATHER_ARGS},
    ],
    "stop_reason": "tool_use",
}


def dumps(value: Any) -> bytes:
    """JSON bytes of any value: big integers, NaN and lone surrogates included."""
    return json.dumps(value).encode()


def _sse(events: list[Any]) -> bytes:
    return b"".join(b"data: " + dumps(e) + b"\n\n" for e in events)


GEMINI_CHUNKS = [gemini_json(), {**gemini_json(), "candidates": [{"finishReason": "STOP"}]}]

# (label, path, request body, whole response body, streamed response bytes)
LLM_SAMPLES: list[tuple[str, str, dict[str, Any], Any, bytes]] = [
    (
        "openai_chat",
        "/v1/chat/completions",
        {"model": "m", "stream": True, "messages": HISTORY_OPENAI, "tools": TOOLS_OPENAI},
        openai_chat_json(),
        b"".join(openai_chat_stream()),
    ),
    (
        "openai_responses",
        "/v1/responses",
        {
            "model": "m",
            "stream": True,
            "instructions": "be brief",
            "previous_response_id": "resp_0",
            "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "function_call_output", "call_id": "call_r0", "output": "{}"},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {}}],
        },
        RESPONSES_OUTPUT,
        b"".join(responses_stream()),
    ),
    (
        "anthropic",
        "/v1/messages",
        {
            "model": "claude",
            "max_tokens": 100,
            "stream": True,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": ANTHROPIC_MESSAGE["content"]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}
                    ],
                },
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        },
        ANTHROPIC_MESSAGE,
        b"".join(anthropic_stream()),
    ),
    (
        "gemini_sse",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather"}}]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}],
                },
            ],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {}}]}],
        },
        gemini_json(),
        _sse(GEMINI_CHUNKS),
    ),
    (
        "gemini_array",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        {"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}]},
        GEMINI_CHUNKS,
        b"[" + b",\r\n".join(orjson.dumps(c) for c in GEMINI_CHUNKS) + b"]",
    ),
]

MCP_CALL = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "get_weather", "arguments": {"city": "Paris"}},
}
MCP_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_CALL_REPLY = {
    "jsonrpc": "2.0",
    "id": 7,
    "result": {
        "content": [{"type": "text", "text": '{"city": "Paris", "temp_c": 21}'}],
        "structuredContent": {"city": "Paris", "temp_c": 21},
        "isError": False,
    },
}
MCP_LIST_REPLY = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "tools": [
            {
                "name": "get_weather",
                "inputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": True},
            }
        ]
    },
}
MCP_SAMPLES: list[tuple[Any, bytes, bytes]] = [
    # (request body, JSON reply body, SSE reply body; sse-starlette separates lines with CRLF)
    (
        MCP_CALL,
        orjson.dumps(MCP_CALL_REPLY),
        b"event: message\r\ndata: " + orjson.dumps(MCP_CALL_REPLY) + b"\r\n\r\n",
    ),
    (
        MCP_LIST,
        orjson.dumps(MCP_LIST_REPLY),
        b"event: message\ndata: " + orjson.dumps(MCP_LIST_REPLY) + b"\n\n",
    ),
    ([MCP_LIST, MCP_CALL], orjson.dumps([MCP_LIST_REPLY, MCP_CALL_REPLY]), b""),
]

STREAMS: list[bytes] = [s[4] for s in LLM_SAMPLES] + [s[2] for s in MCP_SAMPLES if s[2]]
WHOLE_BODIES: list[bytes] = [orjson.dumps(s[3]) for s in LLM_SAMPLES] + [s[1] for s in MCP_SAMPLES]
REQUEST_BODIES: list[bytes] = [orjson.dumps(s[2]) for s in LLM_SAMPLES] + [
    orjson.dumps(s[0]) for s in MCP_SAMPLES
]
PATHS = [s[1] for s in LLM_SAMPLES] + [
    "/mcp",
    "/v1/chat/completions/",
    "/publishers/anthropic/models/claude-x:streamRawPredict",
    "/v1beta/models/m:generateContent",
    "",
    "/responses?x=1",
    "\udcff/messages",
]
CONTENT_TYPES = [
    "application/json",
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "application/x-ndjson",
    "text/html",
    "",
    "TEXT/EVENT-STREAM",
]

# -- strategies ------------------------------------------------------------------------------

_TOKENS = [
    b"\r", b"\n", b"\r\n", b"\n\n", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"\\",
    b"{", b"}", b"[", b"]", b":", b",", b"data: ", b"event: ", b"id: ", b": ping\n", b"[DONE]",
    b"null", b"1e999", b"-0", b"18446744073709551616", b'"\\ud800"', b"\xef\xbb\xbf",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8", categories=["Cs", "Co", "Zs"]), max_size=4),
    st.sampled_from(["get_weather", "tool_use", "function_call", "text", "message", "[DONE]"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "id",
                    "name",
                    "index",
                    "arguments",
                    "content",
                    "role",
                    "delta",
                    "choices",
                    "tool_calls",
                    "function",
                    "input",
                    "text",
                    "parts",
                    "result",
                    "jsonrpc",
                    "method",
                    "params",
                    "candidates",
                    "output",
                    "item",
                    "x",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


def nested(depth: int, leaf: Any = 1) -> bytes:
    """JSON bytes of `depth` alternately nested objects and lists."""
    head = b"".join(b'{"a":[' if i % 2 == 0 else b"" for i in range(depth))
    tail = b"".join(b"]}" if i % 2 == 0 else b"" for i in range(depth))
    return head + orjson.dumps(leaf) + tail


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after a few random byte-level edits."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "token", "dup", "truncate"]))
        at = draw(st.integers(0, len(buf)))
        if op == "flip" and at < len(buf):
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "token":
            buf[at:at] = draw(st.sampled_from(_TOKENS))
        elif op == "dup":
            end = min(len(buf), at + draw(st.integers(1, 64)))
            buf[at:at] = buf[at:end]
        elif op == "truncate":
            del buf[at:]
    return bytes(buf)


@st.composite
def reshaped(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one random subtree replaced by a random JSON value (type confusion)."""
    paths: list[tuple[Any, ...]] = []

    def walk(v: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(v, dict):
            for k, c in v.items():
                walk(c, (*path, k))
        elif isinstance(v, list):
            for i, c in enumerate(v):
                walk(c, (*path, i))

    walk(value, ())
    target = draw(st.sampled_from(paths))
    replacement = draw(json_values)
    if not target:
        return replacement
    copy = orjson.loads(orjson.dumps(value))
    node = copy
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = replacement
    return copy


def _sized(data: bytes) -> st.SearchStrategy[bytes]:
    return st.just(data) | mutated(data)


# A body: a sample as it is, mutated, random bytes, deep nesting, or enormous.
ENORMOUS_ARGS = json.dumps({"city": "Paris", "blob": "x" * 1_200_000})


def _enormous_chat() -> bytes:
    body = json.loads(REQUEST_BODIES[0])
    body["messages"][2]["tool_calls"][0]["function"]["arguments"] = ENORMOUS_ARGS
    return orjson.dumps(body)


ENORMOUS = [_enormous_chat()]
request_bodies = st.one_of(
    st.sampled_from(REQUEST_BODIES).flatmap(_sized),
    st.builds(dumps, json_values),
    st.binary(max_size=64),
    st.integers(240, 1400).map(nested),
    st.sampled_from(ENORMOUS),
)
response_bodies = st.one_of(
    st.sampled_from(WHOLE_BODIES + STREAMS).flatmap(_sized),
    st.builds(dumps, json_values),
    st.binary(max_size=64),
    st.integers(240, 1400).map(nested),
)
streams = st.one_of(
    st.sampled_from(STREAMS).flatmap(_sized),
    st.sampled_from(WHOLE_BODIES).flatmap(_sized),
    st.builds(lambda v: _sse([v]), json_values),
    st.binary(max_size=96),
    st.integers(240, 1400).map(lambda d: b"data: " + nested(d) + b"\n\n"),
)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=10))
    return split_at(data, cuts)


def wrong_encoding(data: bytes, claimed: str) -> bytes:
    """A body that says `claimed` and carries something else (or a broken copy of it)."""
    if claimed == "gzip":
        return data  # says gzip, is plain
    if claimed == "identity":
        return gzip.compress(data)  # says nothing, is gzip
    if claimed == "deflate":
        return zlib.compress(data)[:-3]  # truncated
    return data[: len(data) // 2]


# -- checks ----------------------------------------------------------------------------------


def check_llm_codec(
    codec: LLMCodec, path: str, request: Any, response: Any, chunks: list[bytes]
) -> None:
    """A codec given any request, whole response and stream never raises, and returns
    its documented types."""
    CASES[f"codec.{codec.api}"] += 1
    assert isinstance(codec.matches("POST", path, request), bool)
    parsed = codec.parse_request(request, path)
    assert isinstance(parsed, ParsedRequest)
    for out in codec.parse_response(response, parsed):
        assert isinstance(out, CallDraft | ResponseDone)
    decoder = codec.stream_decoder(parsed)
    outs = [o for chunk in chunks for o in decoder.feed(chunk)] + decoder.close()
    assert all(isinstance(o, CallDraft | ResponseDone) for o in outs)


def check_llm_split_invariance(
    codec: LLMCodec, parsed: ParsedRequest, data: bytes, chunks: list[bytes]
) -> None:
    """Where the network cuts a stream does not change what the decoder finds."""
    CASES[f"split.{codec.api}"] += 1
    whole = codec.stream_decoder(parsed)
    expected = whole.feed(data) + whole.close()
    split = codec.stream_decoder(parsed)
    got = [o for c in chunks for o in split.feed(c)] + split.close()
    assert got == expected


def check_mcp(request: Any, body: bytes, content_type: str, chunks: list[bytes]) -> None:
    CASES["codec.mcp"] += 1
    assert isinstance(mcp.matches("POST", "/mcp", request), bool)
    for msg in mcp.parse_request(request):
        mcp.call_of(msg)
    replies = mcp.parse_response(body, content_type)
    for reply in replies:
        mcp.tool_specs(reply.result)
        mcp.call_result(reply.result)
    decoder = mcp.McpStreamDecoder()
    streamed = [r for c in chunks for r in decoder.feed(c)] + decoder.close()
    whole = mcp.McpStreamDecoder()
    assert streamed == whole.feed(b"".join(chunks)) + whole.close()


def check_sse(data: bytes, chunks: list[bytes]) -> None:
    CASES["sse"] += 1
    whole = SSESplitter()
    expected = whole.feed(data) + whole.close()
    split = SSESplitter()
    assert [e for c in chunks for e in split.feed(c)] + split.close() == expected


def check_observer(
    path: str,
    request: bytes,
    status: int,
    content_type: str,
    chunks: list[bytes],
    streamed: bool,
    headers: list[tuple[str, str]] | None = None,
) -> list[Any]:
    """The observer (codec choice, sessions, events) given any exchange never raises."""
    CASES["observer"] += 1
    events: list[Any] = []
    obs = Observer()
    hdrs = headers or [("authorization", "Bearer sk-fuzz"), ("content-type", "application/json")]
    # twice: the second request continues the first one's conversation
    for n in range(2):
        xid = f"x{n}"
        events += obs.request(xid, "POST", "http://h" + path, path, hdrs, request, 1.0 + n, "c")
        if obs.exchange(xid) is None:
            continue
        if streamed:
            if obs.stream(xid, status):
                for c in chunks:
                    events += obs.chunk(xid, c, 2.0 + n)
            events += obs.response(xid, status, content_type, None, 3.0 + n)
        else:
            events += obs.response(xid, status, content_type, b"".join(chunks), 3.0 + n)
    for event in events:
        # what the listeners rely on: calls and results have a canonical form
        canonical(getattr(event, "arguments", None))
        canonical(getattr(event, "content", None))
    return events


def check_model(events: list[Any]) -> None:
    """The pattern model takes any events the observer makes (a report, not a proxy fix:
    its exceptions are caught by the addon, but would cost the rest of a stream)."""
    CASES["model"] += 1
    model = PatternModel()
    for event in events:
        model.observe(event)
        model.predict(event.session)
    snapshot.load(snapshot.dump(model))


# -- live cases: whole exchanges for the proxy under test --------------------------------------


@dataclass
class LiveCase:
    """One request and the response the upstream gives it, with how it frames it."""

    method: str
    path: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int
    response_headers: list[tuple[str, str]]
    response_chunks: list[bytes]
    fixed_length: bool  # Content-Length, else chunked


def _rng_mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(0, len(buf))
        op = rng.choice(["flip", "delete", "insert", "token", "dup", "truncate"])
        if op == "flip" and at < len(buf):
            buf[at] ^= 1 << rng.randint(0, 7)
        elif op == "delete":
            del buf[at : at + rng.randint(1, 16)]
        elif op == "insert":
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == "token":
            buf[at:at] = rng.choice(_TOKENS)
        elif op == "dup":
            buf[at:at] = buf[at : at + rng.randint(1, 64)]
        elif op == "truncate":
            del buf[at:]
    return bytes(buf)


def _encode(rng: random.Random, body: bytes) -> tuple[str, bytes]:
    """(Content-Encoding, bytes): honest most of the time, sometimes a lie."""
    enc = rng.choice(["", "", "", "gzip", "br", "zstd", "deflate", "lie-gzip", "lie-plain"])
    if enc == "gzip":
        return enc, gzip.compress(body)
    if enc == "br":
        return enc, brotli.compress(body, quality=4)
    if enc == "zstd":
        return enc, zstandard.ZstdCompressor().compress(body)
    if enc == "deflate":
        return enc, zlib.compress(body)
    if enc == "lie-gzip":
        return "gzip", body
    if enc == "lie-plain":
        return "", gzip.compress(body)
    return "", body


def live_cases(n: int, seed: int) -> list[LiveCase]:
    """`n` random exchanges of every supported format, good and broken."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:
            request = rng.choice(REQUEST_BODIES)
            request = _rng_mutate(rng, request) if rng.random() < 0.4 else request
        elif kind < 0.75:
            request = rng.randbytes(rng.randint(0, 64))
        elif kind < 0.85:
            request = nested(rng.randint(200, 1100))
        elif kind < 0.87:
            request = ENORMOUS[0]
        else:
            request = dumps({"messages": [{"role": rng.choice(["user", 5, None])}], "x": kind})
        response = rng.choice(STREAMS + WHOLE_BODIES)
        if rng.random() < 0.4:
            response = _rng_mutate(rng, response)
        if rng.random() < 0.05:
            response = nested(rng.randint(200, 1100))
        encoding, wire = _encode(rng, response)
        headers = [("Content-Type", rng.choice(CONTENT_TYPES) or "application/octet-stream")]
        if encoding:
            headers.append(("Content-Encoding", encoding))
        cuts = sorted(rng.randint(0, len(wire)) for _ in range(rng.randint(0, 8)))
        req_headers = [("Content-Type", rng.choice(["application/json", "text/plain", ""]))]
        req_headers += [("Authorization", f"Bearer sk-fuzz-{rng.randint(0, 3)}")]
        if rng.random() < 0.2:
            req_headers.append(("Mcp-Session-Id", f"s{rng.randint(0, 3)}"))
        path = rng.choice(PATHS[:-1]) or "/"
        if rng.random() < 0.2:
            path += ("&" if "?" in path else "?") + "key=sk-fuzz-q"
        cases.append(
            LiveCase(
                method="POST" if rng.random() < 0.9 else "GET",
                path=path,
                request_headers=[(k, v) for k, v in req_headers if v],
                request_body=request,
                status=rng.choice([200] * 6 + [201, 204, 400, 429, 500, 503]),
                response_headers=headers,
                response_chunks=[c for c in split_at(wire, cuts) if c] or [b""],
                fixed_length=rng.random() < 0.4,
            )
        )
    return cases
