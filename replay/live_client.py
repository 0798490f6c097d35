"""Live playback's client: sends the recorded requests through the proxy under test as the
plan orders them (`plan.py`), and keeps what each request got (`StepResult`); one pass's
outcome (`PassResult`) is what `live_compare.py` builds the report from."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl
from mitmproxy.net import encoding
from multidict import CIMultiDict

from prefire.replay.plan import Plan, Step
from prefire.replay.playback import PassState
from prefire.replay.recorded import HOP_HEADERS

_SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


@dataclass(slots=True)
class StepResult:
    t_sent: float = 0.0
    t_headers: float | None = None
    t_end: float = 0.0
    status: int | None = None
    body: bytes = b""  # decoded
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, raw bytes)
    error: str | None = None


@dataclass(slots=True)
class PassResult:
    """What one pass played: each step's result, the playback's view, which live session
    each step fell in, and prefire's own counters (in total and per live session)."""

    name: str
    t0: float
    results: dict[int, StepResult]
    state: PassState
    live_sessions: dict[int, Any]
    accounting: dict[str, Any]
    session_counters: dict[Any, dict[str, Any]]
    wall_s: float = 0.0


class Client:
    """Sends the recorded requests through the proxy as the plan orders them."""

    def __init__(self, plan: Plan, state: PassState, proxy_url: str, speed: float) -> None:
        self.plan = plan
        self.state = state
        self.proxy_url = proxy_url
        self.speed = speed
        self.results: dict[int, StepResult] = {}
        self.t0 = 0.0
        self._sent: dict[int, asyncio.Event] = {}
        self._done: dict[int, asyncio.Event] = {}

    async def run(self) -> float:
        loop = asyncio.get_running_loop()
        self._sent = {s.index: asyncio.Event() for s in self.plan.steps}
        self._done = {s.index: asyncio.Event() for s in self.plan.steps}
        connector = aiohttp.TCPConnector(ssl=False, limit=0)
        async with aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        ) as http:
            self.t0 = loop.time()
            last_end = self.t0
            for segment in self.plan.segments:
                start = loop.time()
                fg = [self.plan.steps[i] for i in segment if not self.plan.steps[i].background]
                bg = [self.plan.steps[i] for i in segment if self.plan.steps[i].background]
                background = [asyncio.create_task(self._step(http, s, start)) for s in bg]
                await asyncio.gather(*(self._step(http, s, start) for s in fg))
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                ends = [self.results[s.index].t_end for s in fg if s.index in self.results]
                last_end = max([last_end, *ends])
        return last_end - self.t0

    async def _step(self, http: aiohttp.ClientSession, step: Step, start: float) -> None:
        loop = asyncio.get_running_loop()
        if step.after is not None:
            await self._sent[step.after].wait()
        for d in step.deps:
            await self._done[d].wait()
        ends = [self.results[d].t_end for d in step.deps]
        anchor = max(ends) if ends else start
        delay = anchor + step.pause_s / self.speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        rec = step.rec
        result = self.results[step.index] = StepResult(t_sent=loop.time())
        self.state.will_send(step.index)
        self._sent[step.index].set()
        headers = CIMultiDict((k, v) for k, v in rec.headers if k.lower() not in HOP_HEADERS)
        raw: list[bytes] = []
        # generous, but a request nobody answers must not hold the pass up for ever
        limit = None if step.background else 30 + 4 * rec.duration_s / self.speed
        try:
            async with http.request(
                rec.method,
                yarl.URL(rec.url, encoded=True),
                headers=headers,
                data=rec.body or None,
                proxy=self.proxy_url,
                skip_auto_headers=_SKIP_AUTO,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=limit, sock_connect=30),
            ) as resp:
                result.t_headers = loop.time()
                result.status = resp.status
                async for piece in resp.content.iter_any():
                    result.arrivals.append((loop.time(), len(piece)))
                    raw.append(piece)
                content_encoding = resp.headers.get("content-encoding", "identity")
        except asyncio.CancelledError:
            if not step.background:
                raise
            content_encoding = "identity"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            result.error = repr(exc)
            content_encoding = "identity"
        finally:
            result.t_end = loop.time()
            self.state.was_answered(step.index)
            self._done[step.index].set()
        body = b"".join(raw)
        try:
            decoded = encoding.decode(body, content_encoding)
            result.body = decoded if isinstance(decoded, bytes) else body
        except ValueError:
            result.body = body
