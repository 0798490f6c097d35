"""Where a task's wall time goes, from the model's side: the scripted model records when
each request came and when its answer ended (`timeline`), the agent when each task started
and how long it ran. Per task, the time splits into

    start-up   task start -> its first model request (process start, config, MCP connect,
               tools/list: what no early start can hide)
    model      model requests in flight (think time and streaming; overlapping ones once)
    between    from one answer's end to the next request: running the tools (what prefire
               can shorten) plus the client's own work
    tail       the last answer's end -> the task's end (printing, MCP session close, exit)

A request belongs to the task whose prompt its body carries, made while it ran.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PARTS = ("startup_s", "model_s", "between_s", "tail_s")


@dataclass
class Timeline:
    """aiohttp middleware for the scripted model: (arrived, ended, body) per request."""

    requests: list[tuple[float, float, bytes]] = field(default_factory=list)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        arrived = time.time()
        body = await request.read()
        try:
            return await handler(request)
        finally:
            self.requests.append((arrived, time.time(), body))


def breakdown(
    tasks: list[dict[str, Any]], prompts: dict[str, str], timeline: Timeline
) -> dict | None:
    """Sums over the tasks of a report (each with `id`, `at`, `wall_s`), in seconds, and the
    model requests counted per task; None when some of the pass's requests carry no task's
    prompt (turns chained by `previous_response_id` send only what is new)."""
    ran = [(t["at"], t["at"] + t["wall_s"]) for t in tasks if "at" in t]
    known = [p.encode() for p in prompts.values()]
    if any(
        any(a <= at <= b for a, b in ran) and not any(p in body for p in known)
        for at, _, body in timeline.requests
    ):
        return None
    totals = dict.fromkeys(PARTS, 0.0)
    counted = 0
    for task in tasks:
        if "at" not in task:
            continue
        prompt = prompts[task["id"]].encode()
        start, end = task["at"], task["at"] + task["wall_s"]
        spans = sorted(
            (a, b) for a, b, body in timeline.requests if start <= a <= end and prompt in body
        )
        if not spans:
            continue
        counted += len(spans)
        merged: list[list[float]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        totals["startup_s"] += merged[0][0] - start
        totals["model_s"] += sum(b - a for a, b in merged)
        totals["between_s"] += sum(n[0] - p[1] for p, n in itertools.pairwise(merged))
        totals["tail_s"] += end - merged[-1][1]
    return {k: round(v, 2) for k, v in totals.items()} | {"model_requests": counted}


def after_startup(base: dict | None, spec: dict | None) -> float | None:
    """The reduction of the tasks' time from their first model request on (model, between
    and tail summed): what is left when the clients' start-up, which speculation cannot
    shorten and which varies most with the machine's load, is set aside."""
    if not base or not spec:
        return None
    rest = [sum(p[k] for k in PARTS if k != "startup_s") for p in (base, spec)]
    return round(1 - rest[1] / rest[0], 3) if rest[0] > 0 else None
