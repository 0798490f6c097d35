"""A scripted OpenAI-compatible Chat Completions server: the demo's model.

It knows a few task types. From each request it works out the task (the first user
message, matched against the task templates) and the step (how many tool-call turns the
conversation already holds), and answers with the next scripted turn: tool calls whose
arguments are taken from the tool results in the conversation (the cheapest flight's id
from a search becomes get_flight's argument), or the final answer, written from those
results. So what it asks for depends on what the tools really returned.

Answers stream like a real model's: a think time before the first token, then the tool
calls over several chunks (each call closes before the stream ends), then `[DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from prefire.proxy.demo.tools import AIRPORTS

TEMPLATES: dict[str, str] = {
    "trip": "Find the cheapest flight from {origin} to {destination} on {date}, "
    "and tell me the weather in {city} that day.",
    "cancel": "Customer {user_id} wants to cancel their most recent order. "
    "Cancel it and email them a confirmation with the refund amount.",
    "book": "Book the cheapest flight from {origin} to {destination} on {date} "
    "for customer {user_id}, then email them the booking confirmation.",
    "status": "What is the status of the two most recent orders of customer {user_id}?",
    "research": "Compare the cheapest flights from {origin} to {destination} on {date} and "
    "the two days after, with the weather in {city} on each of those days.",
}
# Task kinds per workload: "mixed" is what a support agent sees; "reads" is tool-heavy,
# every call side-effect free.
WORKLOADS: dict[str, tuple[str, ...]] = {
    "mixed": ("trip", "cancel", "book", "status", "research"),
    "reads": ("trip", "status", "research"),
}
# The final answer of a task whose tool results lacked what the script needs.
GAVE_UP = "I could not finish this task"
_FIRST_TOKEN_SHARE = 0.5  # of the think time, spent before the first chunk

Call = tuple[str, dict[str, Any]]  # tool name, arguments
Turn = list[Call] | str  # tool calls to make, or the final answer
Seen = dict[str, list[Any]]  # tool name -> its results so far, oldest first


def make_tasks(
    n: int, seed: int, user_ids: Sequence[str], workload: str = "mixed"
) -> list[dict[str, str]]:
    """`n` tasks cycling through the workload's task types. Each has its own customer and
    travel date, so no task's writes change what another task reads, whatever order they
    run in."""
    rng = random.Random(f"{seed}|tasks")
    users = rng.sample(list(user_ids), n)
    days = rng.sample(range(60), n)  # July and August, with two days to spare
    kinds = list(WORKLOADS[workload])
    tasks = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        origin, destination = rng.sample(sorted(AIRPORTS), 2)
        params = {
            "origin": origin,
            "destination": destination,
            "city": AIRPORTS[destination],
            "date": f"2025-{7 + days[i] // 31:02d}-{days[i] % 31 + 1:02d}",
            "user_id": users[i],
        }
        tasks.append({"id": f"t{i + 1}-{kind}", "prompt": TEMPLATES[kind].format(**params)})
    return tasks


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    # split() alternates literal text and placeholder names
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        + r"\Z"
    )


def _trip(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        route = {"origin": p["origin"], "destination": p["destination"], "date": p["date"]}
        return [("search_flights", route), ("get_weather", {"city": p["city"], "date": p["date"]})]
    if step == 1:
        cheapest = seen["search_flights"][-1]["flights"][0]
        return [("get_flight", {"flight_id": cheapest["flight_id"]})]
    f, w = seen["get_flight"][-1], seen["get_weather"][-1]
    return (
        f"The cheapest is {f['flight_id']}, departing {f['depart']} for "
        f"${f['price_usd']:.2f} ({f['fare']} fare: {f['fare_rules']}; {f['seats_left']} "
        f"seats left). {w['city']} on {w['date']}: {w['sky']}, {w['low_c']}-{w['high_c']} °C, "
        f"{w['precip_chance']}% chance of rain."
    )


def _cancel(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        who = {"user_id": p["user_id"]}
        return [("get_user", who), ("list_orders", who)]
    if step == 1:
        newest = seen["list_orders"][-1]["orders"][0]
        return [("get_order", {"order_id": newest["order_id"]})]
    order = seen["get_order"][0]
    if step == 2:
        if order["status"] != "processing":
            return (
                f"Order {order['order_id']} is already {order['status']}; it cannot be cancelled."
            )
        return [("cancel_order", {"order_id": order["order_id"], "reason": "customer request"})]
    user, done = seen["get_user"][-1], seen["cancel_order"][-1]
    if step == 3:
        email = {
            "to": user["email"],
            "subject": f"Order {done['order_id']} cancelled",
            "body": f"Hi {user['name'].split()[0]}, your order {done['order_id']} is cancelled "
            f"and ${done['refund_usd']:.2f} will be refunded to your card.",
        }
        return [("get_order", {"order_id": done["order_id"]}), ("send_email", email)]
    now, sent = seen["get_order"][-1], seen["send_email"][-1]
    return (
        f"Order {now['order_id']} is now {now['status']}; ${done['refund_usd']:.2f} will be "
        f"refunded. Confirmation {sent['message_id']} sent to {sent['to']}."
    )


def _book(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        route = {"origin": p["origin"], "destination": p["destination"], "date": p["date"]}
        return [("search_flights", route), ("get_user", {"user_id": p["user_id"]})]
    if step == 1:
        cheapest = seen["search_flights"][-1]["flights"][0]
        return [("get_flight", {"flight_id": cheapest["flight_id"]})]
    flight, user = seen["get_flight"][-1], seen["get_user"][-1]
    if step == 2:
        if flight["seats_left"] < 1:
            return f"{flight['flight_id']} is sold out; nothing was booked."
        return [("book_flight", {"flight_id": flight["flight_id"], "passenger": user["name"]})]
    booking = seen["book_flight"][-1]
    if step == 3:
        email = {
            "to": user["email"],
            "subject": f"Your booking {booking['booking_ref']}",
            "body": f"Hi {user['name'].split()[0]}, you are booked on {flight['flight_id']} "
            f"from {flight['origin']} to {flight['destination']} on {flight['date']}, "
            f"departing {flight['depart']}. Reference {booking['booking_ref']}, "
            f"${booking['price_usd']:.2f}.",
        }
        return [("send_email", email)]
    return (
        f"Booked {booking['passenger']} on {booking['flight_id']} (reference "
        f"{booking['booking_ref']}, ${booking['price_usd']:.2f}) and emailed {user['email']}."
    )


def _research(p: dict[str, str], step: int, seen: Seen) -> Turn:
    first = datetime.date.fromisoformat(p["date"])
    dates = [(first + datetime.timedelta(days=k)).isoformat() for k in range(3)]
    if step == 0:
        return [
            ("search_flights", {"origin": p["origin"], "destination": p["destination"], "date": d})
            for d in dates
        ]
    if step == 1:
        cheapest = [r["flights"][0]["flight_id"] for r in seen["search_flights"][-3:]]
        return [("get_flight", {"flight_id": f}) for f in cheapest]
    if step == 2:
        return [("get_weather", {"city": p["city"], "date": d}) for d in dates]
    days = zip(seen["get_flight"][-3:], seen["get_weather"][-3:], strict=True)
    return (
        "; ".join(
            f"{w['date']}: {f['flight_id']} ${f['price_usd']:.2f}, {w['sky']}" for f, w in days
        )
        + "."
    )


def _status(p: dict[str, str], step: int, seen: Seen) -> Turn:
    if step == 0:
        return [("list_orders", {"user_id": p["user_id"]})]
    if step == 1:
        latest = seen["list_orders"][-1]["orders"][:2]
        return [("get_order", {"order_id": o["order_id"]}) for o in latest]
    lines = [
        f"{o['order_id']} (placed {o['placed']}): {o['status']}"
        + (f", tracking {o['shipping']['tracking']}" if o["shipping"]["tracking"] else "")
        for o in seen["get_order"][-2:]
    ]
    return "; ".join(lines) + "."


_SCRIPTS: dict[str, Callable[[dict[str, str], int, Seen], Turn]] = {
    "trip": _trip,
    "cancel": _cancel,
    "book": _book,
    "status": _status,
    "research": _research,
}
_PATTERNS = {kind: _pattern(t) for kind, t in TEMPLATES.items()}


def next_turn(prompt: str, step: int, seen: Seen) -> Turn:
    """The scripted model's answer to a conversation with this task at this step."""
    for kind, pattern in _PATTERNS.items():
        match = pattern.match(prompt)
        if match:
            try:
                return _SCRIPTS[kind](match.groupdict(), step, seen)
            except (KeyError, IndexError, TypeError):
                # A tool failed or answered unexpectedly: a model would give up, not crash.
                return f"{GAVE_UP}: a tool result lacked what I needed."
    return "I can help with flights, weather and customer orders."


def read_conversation(messages: list[dict[str, Any]]) -> tuple[str, int, Seen]:
    """The task (first user message), the step (tool-call turns so far) and the tool
    results so far, by tool name, parsed as JSON where they are JSON."""
    prompt = next(
        (m["content"] for m in messages if m.get("role") == "user" and "content" in m), ""
    )
    names: dict[str, str] = {}
    step = 0
    seen: Seen = {}
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            step += 1
            names.update((c["id"], c["function"]["name"]) for c in m["tool_calls"])
        elif m.get("role") == "tool":
            content = m.get("content")
            try:
                result = json.loads(content)
            except (TypeError, ValueError):
                result = content  # an error message, say
            seen.setdefault(names.get(m.get("tool_call_id", ""), ""), []).append(result)
    return str(prompt), step, seen


def _pieces(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _deltas(turn: Turn) -> tuple[list[dict[str, Any]], str]:
    """The streamed deltas of a turn, as a model emits them, and its finish reason."""
    if isinstance(turn, str):
        return [{"role": "assistant", "content": ""}] + [
            {"content": piece} for piece in _pieces(turn, 6)
        ], "stop"
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
    for index, (name, arguments) in enumerate(turn):
        opening = {"index": index, "id": "call_" + secrets.token_hex(12), "type": "function"}
        opening["function"] = {"name": name, "arguments": ""}
        deltas.append({"tool_calls": [opening]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _pieces(json.dumps(arguments), 3)
        ]
    return deltas, "tool_calls"


class ScriptedLLM:
    """The aiohttp app. Think time per turn is drawn from `think_s` by a generator seeded
    with the seed, task and step, so both runs of the demo wait the same."""

    def __init__(self, seed: int, think_s: tuple[float, float] = (1.0, 1.5)) -> None:
        self.seed = seed
        self.think_s = think_s
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    def think_time(self, prompt: str, step: int) -> float:
        return random.Random(f"{self.seed}|{prompt}|{step}").uniform(*self.think_s)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            error = {"message": "this scripted model only streams", "type": "invalid_request"}
            return web.json_response({"error": error}, status=400)
        prompt, step, seen = read_conversation(body.get("messages") or [])
        deltas, finish = _deltas(next_turn(prompt, step, seen))
        think = self.think_time(prompt, step)
        head = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "demo"),
        }
        chunks = [
            {**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        gap = think * (1 - _FIRST_TOKEN_SHARE) / (len(chunks) - 1)

        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        await asyncio.sleep(think * _FIRST_TOKEN_SHARE)
        # SDKs stop reading at [DONE] and may close before the end of the body
        with contextlib.suppress(ConnectionResetError):
            for i, chunk in enumerate(chunks):
                if i:
                    await asyncio.sleep(gap)
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        return resp
