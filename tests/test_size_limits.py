"""Bodies above --max-body pass through byte for byte, are neither buffered nor learned
from, and the log says why; memory stays flat while a large body flows."""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
from pathlib import Path

import httpx
import orjson
from aiohttp import web

from tests.conftest import RunningProxy, log_lines, start_proxy, stop_proxy
from tests.upstreams import openai_chat_json, serve

LIMIT = 64 << 10
CHAT = "/v1/chat/completions"


def chat_request(history_bytes: int = 0, stream: bool = False) -> dict:
    messages = [{"role": "user", "content": "weather?"}]
    if history_bytes:
        messages.insert(0, {"role": "system", "content": "x" * history_bytes})
    return {"model": "m", "stream": stream, "messages": messages}


def sse_with_late_call(text_bytes: int) -> list[bytes]:
    """A stream whose tool call comes after `text_bytes` of text deltas."""

    def chunk(delta: dict) -> bytes:
        body = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    out = [chunk({"content": "y" * 1000}) for _ in range(text_bytes // 1000)]
    call = {"index": 0, "id": "call_late", "function": {"name": "late_tool", "arguments": "{}"}}
    return [*out, chunk({"tool_calls": [call]}), b"data: [DONE]\n\n"]


@functools.cache
def bomb() -> bytes:
    """A chat completion padded to 40 MB, gzipped to 40 kB (the same bytes every time)."""
    body = json.dumps({**openai_chat_json(), "p": " " * (40 << 20)}).encode()
    return gzip.compress(body, mtime=0)


class BigUpstream:
    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post(CHAT, self.chat)
        self.app.router.add_get("/blob", self.blob)
        self.received: list[bytes] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.read())
        case = request.headers.get("x-case", "json")
        if case == "json":
            return web.json_response(openai_chat_json())
        if case == "big-json":  # content-length above the limit, a tool call inside
            body = openai_chat_json()
            body["padding"] = "z" * (2 * LIMIT)
            return web.json_response(body)
        if case == "bomb":  # 40 kB on the wire, 40 MB decoded
            return web.Response(
                body=bomb(),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        ctype = "text/event-stream" if case == "big-sse" else "application/json"
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        await resp.prepare(request)
        if case == "big-sse":
            for c in sse_with_late_call(4 * LIMIT):
                await resp.write(c)
        else:  # big-chunked: chunked JSON, no content-length, a tool call at the start
            body = json.dumps({**openai_chat_json(), "padding": "z" * (4 * LIMIT)}).encode()
            for i in range(0, len(body), 8192):
                await resp.write(body[i : i + 8192])
        await resp.write_eof()
        return resp

    async def blob(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query["mb"]) << 20
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(request)
        block = b"\xab" * (1 << 20)
        for _ in range(size >> 20):
            await resp.write(block)
        await resp.write_eof()
        return resp


async def fetch(client: httpx.AsyncClient, method: str, url: str, **kw) -> tuple:
    async with client.stream(method, url, **kw) as resp:
        chunks = [c async for c in resp.aiter_raw()]
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() != "date"]
        return resp.status_code, headers, b"".join(chunks), len(chunks)


def peak_rss_mb(proxy: RunningProxy) -> float:
    for line in Path(f"/proc/{proxy.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_large_bodies_pass_through_unlearned_and_the_log_says_why(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    proxy = await start_proxy(tmp_path, "--max-body", "64k", log=log)
    up = BigUpstream()
    cases = [
        ("json", chat_request(history_bytes=2 * LIMIT)),  # the request is too large
        ("big-json", chat_request()),
        ("big-chunked", chat_request()),
        ("big-sse", chat_request(stream=True)),
        ("bomb", chat_request()),
        ("json", chat_request()),  # a small exchange is still learned from
    ]
    try:
        async with (
            serve(up.app) as base,
            httpx.AsyncClient(trust_env=False, timeout=30) as direct,
            httpx.AsyncClient(proxy=proxy.url, trust_env=False, timeout=30) as via,
        ):
            for case, body in cases:
                kw = {"json": body, "headers": {"x-case": case, "Authorization": "Bearer k"}}
                d = await fetch(direct, "POST", base + CHAT, **kw)
                p = await fetch(via, "POST", base + CHAT, **kw)
                assert p[:3] == d[:3], case
                assert up.received[-1] == up.received[-2], case  # the request, unchanged
                if case.startswith("big-"):
                    assert p[3] > 1, case  # forwarded as it came, not buffered into one
    finally:
        assert await stop_proxy(proxy) == 0
    calls = [e for e in proxy.events() if e["kind"] == "tool_call"]
    # only the small exchange's call; the late call of the long stream was past the limit
    assert [c["name"] for c in calls] == ["get_weather"]
    whys = sorted(r["why"] for r in log_lines(log) if r.get("event") == "observe.skipped")
    assert whys == [
        "request_body_above_max_body",
        "response_body_above_max_body",
        "response_body_above_max_body",
        "response_decoded_body_above_max_body",
        "stream_above_max_body",
    ]
    for r in log_lines(log):
        if r.get("event") == "observe.skipped":
            assert r["max_body"] == LIMIT


async def test_memory_stays_flat_while_a_large_body_flows(tmp_path: Path) -> None:
    proxy = await start_proxy(tmp_path, "--max-body", "1m")
    up = BigUpstream()
    try:
        async with (
            serve(up.app) as base,
            httpx.AsyncClient(proxy=proxy.url, trust_env=False, timeout=60) as via,
        ):
            await fetch(via, "GET", base + "/blob?mb=1")
            before = peak_rss_mb(proxy)
            results = await asyncio.gather(
                *(fetch(via, "GET", base + "/blob?mb=48") for _ in range(2))
            )
            after = peak_rss_mb(proxy)
    finally:
        assert await stop_proxy(proxy) == 0
    assert all(len(r[2]) == 48 << 20 and set(r[2]) == {0xAB} for r in results)
    # 96 MB went through; the proxy's peak grew by far less than one body
    assert after - before < 24, (before, after)


def test_max_body_takes_sizes() -> None:
    import argparse

    import pytest

    from prefire.cli.main import _size

    assert [_size(t) for t in ("100", "512k", "8m", "8MiB", "8mb", "1g")] == [
        100, 512 << 10, 8 << 20, 8 << 20, 8 << 20, 1 << 30,
    ]  # fmt: skip
    for bad in ("", "0", "-1", "8x", "m", "1.5m"):
        with pytest.raises(argparse.ArgumentTypeError):
            _size(bad)
