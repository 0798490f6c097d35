"""A scripted model behind three wire formats: OpenAI Chat Completions, OpenAI Responses and
Anthropic Messages, streaming and not. It stands in for the LLM provider of a real agent.

Each request is read into the same few facts whatever its format: the user's words, the
tool-call turns so far and what each tool returned (parsed out of however the client shows
a result to the model: JSON text, content blocks, a timing line before the JSON...). A
`Script` turns those facts into the next turn, tool calls or a final answer, so what the
model asks for depends on what the tools really returned.

Tool names are the client's: a script names a tool by its server's name (`search_docs`) and
the reply uses the name the client offered for it (`mcp__docs__search_docs`, or
`search_docs` inside a Responses namespace `mcp__docs`), matched by suffix.

Replies stream like a real model's: a think time before the first token (seeded by the
prompt and step, so two runs of one workload wait the same), then the turn in pieces, each
tool call closing before the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

Call = tuple[str, dict[str, Any]]  # tool name (the server's), arguments
Turn = list[Call] | str  # tool calls to make, or the final answer
Seen = dict[str, list[Any]]  # tool name (the server's) -> its results so far, oldest first
_FIRST_TOKEN_SHARE = 0.5  # of the think time, spent before the first piece
_KEPT_RESPONSES = 1024  # Responses kept for `previous_response_id`
_SEPARATORS = re.compile(r"__|\.")  # mcp__server__tool, server.tool
# Claude Code's tool that loads deferred tools' schemas (ENABLE_TOOL_SEARCH; the native
# build's default): the deferred tools are only named in the prompt's text until a
# ToolSearch call selects them, and such calls are no step of a script.
TOOL_LOADER = "ToolSearch"
_PREFIXED = re.compile(r"\b[\w-]+__[\w-]+\b")  # a prefixed tool name in the prompt's text


class Script(Protocol):
    def prompt(self, texts: Sequence[str]) -> str | None:
        """The task this script knows among the user's texts, or None."""

    def turn(self, prompt: str, step: int, seen: Seen) -> Turn:
        """The next turn of the task `prompt` after `step` tool-call turns."""


@dataclass
class TemplateScript:
    """Tasks recognised by prompt templates (`{name}` placeholders); each kind of task has a
    function from (placeholders, step, seen) to the next turn."""

    templates: dict[str, str]
    scripts: dict[str, Callable[[dict[str, str], int, Seen], Turn]]
    gave_up: str  # the final answer when a tool result lacked what the script needs
    unknown: str  # the answer to a prompt no template matches
    _patterns: dict[str, re.Pattern[str]] = field(init=False)

    def __post_init__(self) -> None:
        self._patterns = {kind: _pattern(t) for kind, t in self.templates.items()}

    def prompt(self, texts: Sequence[str]) -> str | None:
        return next((t for t in texts if self._match(t)), None)

    def _match(self, text: str) -> tuple[str, dict[str, str]] | None:
        for kind, pattern in self._patterns.items():
            match = pattern.match(text.strip())
            if match:
                return kind, match.groupdict()
        return None

    def turn(self, prompt: str, step: int, seen: Seen) -> Turn:
        found = self._match(prompt)
        if found is None:
            return self.unknown
        kind, params = found
        try:
            return self.scripts[kind](params, step, seen)
        except (KeyError, IndexError, TypeError):
            # A tool failed or answered unexpectedly: a model would give up, not crash.
            return f"{self.gave_up}: a tool result lacked what I needed."


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    # split() alternates literal text and placeholder names
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        + r"\Z"
    )


def structured(value: Any) -> Any:
    """The JSON a tool returned, out of what the client shows the model: JSON text, content
    blocks ({"type": "text", "text": ...}), JSON inside a JSON string, or JSON after a line
    of text (Codex's "Wall time: ...\\nOutput:\\n{...}"). Anything else as it is."""
    if isinstance(value, str):
        text = value.strip()
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
            return structured(parsed) if isinstance(parsed, dict | list) else value
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start > 0:
            with contextlib.suppress(ValueError):
                parsed, _ = json.JSONDecoder().raw_decode(text[start:])
                return structured(parsed)
        return value
    if isinstance(value, list):
        parts = [structured(v) for v in value]
        if len(parts) == 1:
            return parts[0]
        # Codex 0.171 shows a result as text parts "Wall time: ...\nOutput:" and the JSON
        found = [p for p in parts if not isinstance(p, str)]
        return found[0] if len(found) == 1 else parts
    if isinstance(value, dict):
        if isinstance(value.get("text"), str) and str(value.get("type", "text")).endswith("text"):
            return structured(value["text"])
        if len(value) == 1:
            (inner,) = value.values()
            if isinstance(inner, str):
                parsed = structured(inner)
                if isinstance(parsed, dict | list):
                    return parsed
    return value


def server_name(client_name: str) -> str:
    """A tool's name on its server, from the name a client shows the model."""
    return _SEPARATORS.split(client_name)[-1]


@dataclass
class Conversation:
    """What a request says, whatever its wire format."""

    texts: list[str] = field(default_factory=list)  # the user's texts, before any tool call
    step: int = 0  # tool-call turns so far
    # offered tools: server name -> (client's name, Responses namespace or None)
    tools: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    loader: bool = False  # TOOL_LOADER is offered
    deferred: dict[str, str] = field(default_factory=dict)  # server name -> client's name
    _names: dict[str, str] = field(default_factory=dict)  # call id -> server's tool name
    _results: dict[str, Any] = field(default_factory=dict)  # call id -> what it returned

    def user_text(self, text: Any) -> None:
        if self.step == 0 and isinstance(text, str) and text.strip():
            self.texts.append(text)

    def tool_turn(self, calls: Iterable[tuple[str, str]]) -> None:
        """One assistant turn's tool calls: (call id, client's tool name)."""
        calls = [(cid, name) for cid, name in calls if name != TOOL_LOADER]
        if calls:
            self.step += 1
            self._names.update((cid, server_name(name)) for cid, name in calls)

    def result(self, call_id: str, content: Any) -> None:
        self._results[call_id] = structured(content)

    @property
    def seen(self) -> Seen:
        """Results in the order the model made the calls: a client may send a turn's
        results in the order they finished (Claude Code does), which is timing, not
        content, and must not change the answer."""
        seen: Seen = {}
        for call_id, tool in self._names.items():
            if call_id in self._results:
                seen.setdefault(tool, []).append(self._results[call_id])
        return seen

    def offer(self, name: str, namespace: str | None = None) -> None:
        if name == TOOL_LOADER:
            self.loader = True
        else:
            self.tools.setdefault(server_name(name), (name, namespace))

    def mentions(self, text: Any) -> None:
        """Text the model reads that may name deferred tools."""
        for name in _PREFIXED.findall(text) if isinstance(text, str) else []:
            self.deferred.setdefault(server_name(name), name)

    def client_name(self, tool: str) -> tuple[str, str | None]:
        return self.tools.get(tool, (tool, None))


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


# -- reading requests -------------------------------------------------------------------------


def read_chat(body: dict[str, Any]) -> Conversation:
    conv = Conversation()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            conv.offer(str(tool["function"].get("name", "")))
    for m in body.get("messages") or []:
        role = m.get("role")
        if role == "user":
            for text in _texts(m.get("content")):
                conv.user_text(text)
        elif role == "assistant" and m.get("tool_calls"):
            conv.tool_turn((c["id"], c["function"]["name"]) for c in m["tool_calls"])
        elif role == "tool":
            conv.result(str(m.get("tool_call_id", "")), m.get("content"))
    return conv


def read_responses(items: list[dict[str, Any]], tools: list[Any]) -> Conversation:
    """`items`: the whole input, earlier responses' items included."""
    conv = Conversation()
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function":
            conv.offer(str(tool.get("name", "")))
        elif tool.get("type") == "namespace":  # Codex's MCP tools
            for inner in tool.get("tools") or []:
                conv.offer(str(inner.get("name", "")), str(tool.get("name", "")))
    calls: list[tuple[str, str]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            calls.append((str(item.get("call_id", "")), str(item.get("name", ""))))
            continue
        if calls:  # consecutive function_call items are one turn
            conv.tool_turn(calls)
            calls = []
        if kind == "message" and item.get("role") == "user":
            for text in _texts(item.get("content")):
                conv.user_text(text)
        elif kind == "function_call_output":
            conv.result(str(item.get("call_id", "")), item.get("output"))
    if calls:
        conv.tool_turn(calls)
    return conv


def read_anthropic(body: dict[str, Any]) -> Conversation:
    conv = Conversation()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and "name" in tool:
            conv.offer(str(tool["name"]))
    for text in _texts(body.get("system")):
        conv.mentions(text)
    for m in body.get("messages") or []:
        content = m.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if conv.loader:
            for text in _texts(blocks):
                conv.mentions(text)
        if m.get("role") == "assistant":
            uses = [(b["id"], b["name"]) for b in blocks if b.get("type") == "tool_use"]
            if uses:
                conv.tool_turn(uses)
        elif m.get("role") == "user":
            for b in blocks:
                if b.get("type") == "text":
                    conv.user_text(b.get("text"))
                elif b.get("type") == "tool_result":
                    conv.result(str(b.get("tool_use_id", "")), b.get("content"))
    return conv


# -- the server -------------------------------------------------------------------------------


def pieces(text: str, n: int) -> list[str]:
    """`text` in about `n` pieces, as a model streams it."""
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass(frozen=True)
class Reply:
    """A scripted turn, in the client's tool names."""

    text: str | None
    calls: list[tuple[str, str | None, dict[str, Any]]]  # name, namespace, arguments
    think_s: float


class ScriptedLLM:
    """The aiohttp app: POST /v1/chat/completions, /v1/responses, /v1/messages.

    `requests` counts the requests served by their shape (API, streamed or not, and for
    Responses whether they chain with previous_response_id), and `replies` keeps every
    reply as (prompt, step, turn), for tests that check what the model was asked."""

    def __init__(
        self, script: Script, seed: int, think_s: tuple[float, float] = (1.0, 1.5)
    ) -> None:
        self.script = script
        self.seed = seed
        self.think_s = think_s
        self.requests: Counter[str] = Counter()
        self.replies: list[tuple[str | None, int, Turn]] = []
        self._responses: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/responses", self.responses)
        self.app.router.add_post("/v1/messages", self.messages)

    def _count(self, api: str, body: dict[str, Any]) -> None:
        shape = [api, "streamed" if body.get("stream") else "whole"]
        if body.get("previous_response_id"):
            shape.append("previous_response_id")
        self.requests[" ".join(shape)] += 1

    def think_time(self, prompt: str, step: int) -> float:
        return random.Random(f"{self.seed}|{prompt}|{step}").uniform(*self.think_s)

    def reply(self, conv: Conversation, fallback: str) -> Reply:
        prompt = self.script.prompt(conv.texts)
        turn: Turn = fallback if prompt is None else self.script.turn(prompt, conv.step, conv.seen)
        if not isinstance(turn, str) and not conv.tools and not conv.loader:
            turn = fallback  # a side request offering no tools (a title, a summary) gets text
        self.replies.append((prompt, conv.step, turn))
        think = self.think_time(prompt or "", conv.step)
        if isinstance(turn, str):
            return Reply(turn, [], think)
        missing = [name for name, _ in turn if name not in conv.tools]
        if missing and conv.loader:  # load the deferred tools first, as a model would
            names = dict.fromkeys(conv.deferred.get(name, name) for name in missing)
            return Reply(None, [(TOOL_LOADER, None, {"query": "select:" + ",".join(names)})], think)
        calls = [(*conv.client_name(name), args) for name, args in turn]
        return Reply(None, calls, think)

    # -- Chat Completions ---------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._count("chat", body)
        reply = self.reply(read_chat(body), "OK.")
        head = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
        }
        calls: list[dict[str, Any]] = [
            {
                "id": "call_" + secrets.token_hex(12),
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for name, _, args in reply.calls
        ]
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            await asyncio.sleep(reply.think_s)
            message = {"role": "assistant", "content": reply.text, "tool_calls": calls or None}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            return web.json_response(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None if calls else ""}]
        if reply.text is not None:
            deltas += [{"content": p} for p in pieces(reply.text, 6)]
        for index, call in enumerate(calls):
            opening = {"index": index, "id": call["id"], "type": "function"}
            opening["function"] = {"name": call["function"]["name"], "arguments": ""}
            deltas.append({"tool_calls": [opening]})
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": p}}]}
                for p in pieces(call["function"]["arguments"], 3)
            ]
        head["object"] = "chat.completion.chunk"
        chunks = [
            {**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        frames = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
        return await _stream(request, reply.think_s, [*frames, b"data: [DONE]\n\n"])

    # -- Responses ------------------------------------------------------------------------------

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._count("responses", body)
        given = body.get("input") or []
        if isinstance(given, str):
            given = [{"type": "message", "role": "user", "content": given}]
        previous = self._responses.get(str(body.get("previous_response_id") or ""), [])
        items = [*previous, *given]
        reply = self.reply(read_responses(items, body.get("tools") or []), "OK.")
        rid = "resp_" + secrets.token_hex(12)
        output = _responses_output(reply)
        self._responses[rid] = [*items, *output]
        while len(self._responses) > _KEPT_RESPONSES:
            self._responses.popitem(last=False)
        done = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "scripted"),
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True),
            "usage": {
                "input_tokens": 1,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 2,
            },
        }
        if not body.get("stream"):
            await asyncio.sleep(reply.think_s)
            return web.json_response(done)
        return await _stream(request, reply.think_s, _responses_events(done))

    # -- Anthropic Messages -----------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._count("messages", body)
        reply = self.reply(read_anthropic(body), "OK.")
        content: list[dict[str, Any]] = []
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        content += [
            {"type": "tool_use", "id": "toolu_" + secrets.token_hex(12), "name": n, "input": a}
            for n, _, a in reply.calls
        ]
        message = {
            "id": "msg_" + secrets.token_hex(12),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "scripted"),
            "content": content,
            "stop_reason": "tool_use" if reply.calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        if not body.get("stream"):
            await asyncio.sleep(reply.think_s)
            return web.json_response(message)
        return await _stream(request, reply.think_s, _anthropic_events(message))


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _responses_output(reply: Reply) -> list[dict[str, Any]]:
    """The Responses API output items of a scripted reply: its text, then its calls."""
    output: list[dict[str, Any]] = []
    if reply.text is not None:
        part = {"type": "output_text", "text": reply.text, "annotations": []}
        output.append(
            {
                "type": "message",
                "id": "msg_" + secrets.token_hex(12),
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
        )
    for name, namespace, args in reply.calls:
        call = {
            "type": "function_call",
            "id": "fc_" + secrets.token_hex(12),
            "call_id": "call_" + secrets.token_hex(12),
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }
        if namespace is not None:
            call["namespace"] = namespace
        output.append(call)
    return output


def _responses_events(done: dict[str, Any]) -> list[bytes]:
    events: list[dict[str, Any]] = []
    opening = {**done, "status": "in_progress", "output": []}
    events += [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(done["output"]):
        where = {"output_index": index, "item_id": item["id"]}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            events.append(
                {"type": "response.content_part.added", **where, "content_index": 0, "part": empty}
            )
            events += [
                {"type": "response.output_text.delta", **where, "content_index": 0, "delta": p}
                for p in pieces(text, 6)
            ]
            events.append(
                {"type": "response.output_text.done", **where, "content_index": 0, "text": text}
            )
            events.append(
                {
                    "type": "response.content_part.done",
                    **where,
                    "content_index": 0,
                    "part": item["content"][0],
                }
            )
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                }
            )
            events += [
                {"type": "response.function_call_arguments.delta", **where, "delta": p}
                for p in pieces(item["arguments"], 3)
            ]
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": done})
    return [_sse(e["type"], {**e, "sequence_number": n}) for n, e in enumerate(events)]


def _anthropic_events(message: dict[str, Any]) -> list[bytes]:
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "usage": message["usage"]},
        }
    ]
    for index, block in enumerate(message["content"]):
        start: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"], 6)]
        else:
            start = {**block, "input": {}}
            args = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(args, 3)]
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": 1},
        }
    )
    events.append({"type": "message_stop"})
    return [_sse(e["type"], e) for e in events]


async def _stream(request: web.Request, think_s: float, frames: list[bytes]) -> web.StreamResponse:
    """Half the think time before the first frame, the rest spread between the frames."""
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    await asyncio.sleep(think_s * _FIRST_TOKEN_SHARE)
    gap = think_s * (1 - _FIRST_TOKEN_SHARE) / max(1, len(frames) - 1)
    # SDKs stop reading at the last event they need and may close before the end of the body
    with contextlib.suppress(ConnectionResetError):
        for i, frame in enumerate(frames):
            if i:
                await asyncio.sleep(gap)
            await resp.write(frame)
        await resp.write_eof()
    return resp
