"""Bad input, fuzzed: no exception escapes a codec, the SSE splitter or the observer.

A few hundred cases per target here (a few seconds); bench/reliability.py runs the same
properties with thousands of cases each and reports how many ran.
"""

from __future__ import annotations

import os

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefire.wire.providers import LLM_CODECS
from prefire.wire.providers.base import ParsedRequest
from tests import fuzzing as fz

# PREFIRE_FUZZ_EXAMPLES raises every property's case count (bench/reliability.py sets it).
EXAMPLES = int(os.environ.get("PREFIRE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

codecs = st.sampled_from(LLM_CODECS)
samples = st.sampled_from(fz.LLM_SAMPLES)


def _loads(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data


@FUZZ
@given(
    codecs,
    st.sampled_from(fz.PATHS),
    st.one_of(
        fz.json_values, samples.flatmap(lambda s: fz.reshaped(s[2])), fz.request_bodies.map(_loads)
    ),
    st.one_of(
        fz.json_values, samples.flatmap(lambda s: fz.reshaped(s[3])), fz.response_bodies.map(_loads)
    ),
    fz.streams.flatmap(fz.chunked),
)
def test_llm_codecs_never_raise(codec, path, request, response, chunks) -> None:
    fz.check_llm_codec(codec, path, request, response, chunks)


@FUZZ
@given(samples, st.data())
def test_llm_stream_decoders_do_not_depend_on_chunking(sample, data) -> None:
    _, path, request, _, stream = sample
    stream = data.draw(fz.mutated(stream) | st.just(stream))
    codec = next(c for c in LLM_CODECS if c.matches("POST", path, request))
    parsed = codec.parse_request(request, path)
    assert isinstance(parsed, ParsedRequest)
    fz.check_llm_split_invariance(codec, parsed, stream, data.draw(fz.chunked(stream)))


@FUZZ
@given(
    st.one_of(
        st.sampled_from([s[0] for s in fz.MCP_SAMPLES]).flatmap(fz.reshaped),
        fz.json_values,
        fz.request_bodies.map(_loads),
    ),
    fz.response_bodies,
    st.sampled_from(fz.CONTENT_TYPES),
    fz.streams.flatmap(fz.chunked),
)
def test_mcp_never_raises(request, body, content_type, chunks) -> None:
    fz.check_mcp(request, body, content_type, chunks)


@FUZZ
@given(fz.streams.flatmap(lambda s: st.tuples(st.just(s), fz.chunked(s))))
def test_sse_splitter_never_raises_and_ignores_chunking(case) -> None:
    data, chunks = case
    fz.check_sse(data, chunks)


@FUZZ
@given(
    st.sampled_from(fz.PATHS),
    fz.request_bodies,
    st.sampled_from([200, 200, 201, 400, 429, 500]),
    st.sampled_from(fz.CONTENT_TYPES),
    fz.response_bodies.flatmap(fz.chunked) | fz.streams.flatmap(fz.chunked),
    st.booleans(),
)
def test_observer_never_raises(path, request, status, content_type, chunks, streamed) -> None:
    events = fz.check_observer(path, request, status, content_type, chunks, streamed)
    fz.check_model(events)


def test_deep_and_enormous_bodies_are_read_without_raising() -> None:
    # past orjson's nesting limits (254 to write, 1024 to read) and past a megabyte
    for depth in (200, 255, 256, 600, 1023, 1024, 1025, 5000):
        body = fz.nested(depth)
        for path in fz.PATHS[:5]:
            fz.check_observer(path, body, 200, "application/json", [body], False)
        sse = b"data: " + body + b"\n\n"
        fz.check_sse(sse, [sse])
    deep_args = '{"q": ' + fz.nested(300).decode() + "}"
    request = orjson.loads(fz.REQUEST_BODIES[0])
    request["messages"][2]["tool_calls"][0]["function"]["arguments"] = deep_args
    request["messages"][3]["content"] = deep_args
    events = fz.check_observer(
        "/v1/chat/completions", orjson.dumps(request), 200, "", [fz.STREAMS[0]], True
    )
    assert any(e.kind == "tool_call" for e in events)
    events = fz.check_observer(
        "/v1/chat/completions", fz.ENORMOUS[0], 200, "", [fz.STREAMS[0]], True
    )
    assert any(e.kind == "tool_call" and len(e.raw_arguments) > 10**6 for e in events)
