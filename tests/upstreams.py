"""Local upstreams for end-to-end tests: aiohttp servers that answer like the LLM APIs.

Each route returns a fixed, realistic response that asks for tool calls, as a
whole JSON body or as an SSE stream sent in several chunks with small gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from tests import openai_wire

WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
TIME_ARGS = {"timezone": "Europe/Paris"}


def _sse(events: list[tuple[str | None, Any]]) -> list[bytes]:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {payload}\n\n".encode())
    return out


def openai_chat_json() -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_w1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)},
            }
        ],
    }
    body = openai_wire.completion(
        message, "tool_calls", completion_id="chatcmpl-1", model="gpt-4o-mini", created=1700000000
    )
    return {**body, "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def openai_chat_stream() -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return openai_wire.chunk(
            delta, finish, chunk_id="chatcmpl-2", model="gpt-4o-mini", created=1700000000
        )

    w = json.dumps(WEATHER_ARGS)
    t = json.dumps(TIME_ARGS)
    calls = [
        chunk({"role": "assistant", "content": None}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": w[:9]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": w[9:]}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": t},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    return [openai_wire.data(c) for c in calls] + [openai_wire.DONE]


def responses_stream() -> list[bytes]:
    args = json.dumps(WEATHER_ARGS)
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_r1",
        "name": "get_weather",
        "arguments": "",
    }
    done_item = {**item, "arguments": args, "status": "completed"}
    resp = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    return _sse(
        [
            (
                "response.created",
                {"type": "response.created", "sequence_number": 0, "response": resp},
            ),
            (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "sequence_number": 1,
                    "output_index": 0,
                    "item": item,
                },
            ),
            (
                "response.function_call_arguments.delta",
                {
                    "type": "response.function_call_arguments.delta",
                    "sequence_number": 2,
                    "item_id": "fc_1",
                    "output_index": 0,
                    "delta": args[:7],
                },
            ),
            (
                "response.function_call_arguments.delta",
                {
                    "type": "response.function_call_arguments.delta",
                    "sequence_number": 3,
                    "item_id": "fc_1",
                    "output_index": 0,
                    "delta": args[7:],
                },
            ),
            (
                "response.function_call_arguments.done",
                {
                    "type": "response.function_call_arguments.done",
                    "sequence_number": 4,
                    "item_id": "fc_1",
                    "output_index": 0,
                    "arguments": args,
                },
            ),
            (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": 5,
                    "output_index": 0,
                    "item": done_item,
                },
            ),
            (
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": 6,
                    "response": {**resp, "status": "completed", "output": [done_item]},
                },
            ),
        ]
    )


def anthropic_stream() -> list[bytes]:
    args = json.dumps(WEATHER_ARGS)
    msg = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    return _sse(
        [
            ("message_start", {"type": "message_start", "message": msg}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Let me check."},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("ping", {"type": "ping"}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {},
                    },
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": args[:5]},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": args[5:]},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 1}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 20},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )


def gemini_json() -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "get_weather", "args": WEATHER_ARGS}}],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "gem-resp-1",
    }


class LLMUpstream:
    """An aiohttp app answering OpenAI Chat, Responses, Anthropic and Gemini requests."""

    def __init__(self, gap_s: float = 0.01) -> None:
        self.gap_s = gap_s
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/responses", self.responses)
        self.app.router.add_post("/v1/messages", self.messages)
        self.app.router.add_post("/v1beta/models/{model_action}", self.gemini)

    async def _stream(self, request: web.Request, chunks: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        # SDKs stop reading at the terminal event and may close before the last chunk
        with contextlib.suppress(ConnectionResetError):
            for c in chunks:
                await resp.write(c)
                await asyncio.sleep(self.gap_s)
            await resp.write_eof()
        return resp

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("chat", body))
        if body.get("stream"):
            return await self._stream(request, openai_chat_stream())
        return web.json_response(openai_chat_json())

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("responses", body))
        return await self._stream(request, responses_stream())

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("anthropic", body))
        return await self._stream(request, anthropic_stream())

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("gemini", body))
        action = request.match_info["model_action"]
        if action.endswith(":streamGenerateContent"):
            return await self._stream(request, _sse([(None, gemini_json())]))
        return web.json_response(gemini_json())


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Run an aiohttp app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    sock = free_socket()
    site = web.SockSite(runner, sock, ssl_context=ssl_context)
    await site.start()
    scheme = "https" if ssl_context else "http"
    host = "localhost" if ssl_context else "127.0.0.1"
    try:
        yield f"{scheme}://{host}:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def gzip_stream(chunks: list[bytes]) -> list[bytes]:
    """Compress SSE chunks as one gzip stream, flushed per chunk like a real server."""
    import zlib

    comp = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    out = [comp.compress(c) + comp.flush(zlib.Z_SYNC_FLUSH) for c in chunks]
    out[-1] += comp.flush()
    return out


class GzipUpstream(LLMUpstream):
    """Same answers under a gateway-style path prefix, gzip-encoded."""

    def __init__(self, gap_s: float = 0.01) -> None:
        super().__init__(gap_s)
        self.app.router.add_post("/gateway/openai/v1/chat/completions", self.gz_chat)

    async def gz_chat(self, request: web.Request) -> web.StreamResponse:
        import gzip

        body = await request.json()
        self.requests.append(("gz_chat", body))
        if not body.get("stream"):
            data = gzip.compress(json.dumps(openai_chat_json()).encode(), mtime=0)
            return web.Response(
                body=data, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}
        )
        await resp.prepare(request)
        for c in gzip_stream(openai_chat_stream()):
            await resp.write(c)
            await asyncio.sleep(self.gap_s)
        await resp.write_eof()
        return resp
