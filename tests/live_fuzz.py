"""Fuzzed exchanges through a live proxy: the agent must get, byte for byte, what it gets
talking to the upstream directly. Used by tests/test_fuzz_live.py (a few hundred cases)
and bench/reliability.py (thousands)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from tests.fuzzing import CASES, LiveCase

_NO_BODY = (204, 304)


class FuzzUpstream:
    """Answers each request with the response of the case named by its x-case header,
    framed as the case says, and records the request body it got."""

    def __init__(self, cases: list[LiveCase]) -> None:
        self.cases = cases
        self.received: dict[str, list[bytes]] = {}
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.answer)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        tag = request.headers["x-case"]
        case = self.cases[int(tag.partition("-")[0])]
        self.received.setdefault(tag, []).append(await request.read())
        resp = web.StreamResponse(status=case.status, headers=case.response_headers)
        body = b"".join(case.response_chunks)
        if case.status in _NO_BODY:
            await resp.prepare(request)
            await resp.write_eof()
            return resp
        if case.fixed_length:
            resp.content_length = len(body)
        await resp.prepare(request)
        for chunk in case.response_chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp


@dataclass
class Tally:
    cases: int = 0
    mismatched: list[str] = field(default_factory=list)
    request_changed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes_compared: int = 0


async def _exchange(client: httpx.AsyncClient, base: str, case: LiveCase, tag: str) -> Any:
    headers = [*case.request_headers, ("x-case", tag)]
    try:
        async with client.stream(
            case.method, base + case.path, content=case.request_body, headers=headers
        ) as resp:
            body = b"".join([c async for c in resp.aiter_raw()])
            kept = [(k.lower(), v) for k, v in resp.headers.multi_items() if k.lower() != "date"]
            return resp.status_code, sorted(kept), body
    except httpx.HTTPError as exc:
        return type(exc).__name__


async def run(proxy_url: str, base: str, up: FuzzUpstream, cases: list[LiveCase]) -> Tally:
    """Each case directly, then through the proxy; compares what the agent gets."""
    tally = Tally()
    async with (
        httpx.AsyncClient(trust_env=False, timeout=30) as direct,
        httpx.AsyncClient(proxy=proxy_url, trust_env=False, timeout=30) as via,
    ):
        for i, case in enumerate(cases):
            CASES["live"] += 1
            tally.cases += 1
            d = await _exchange(direct, base, case, f"{i}-direct")
            p = await _exchange(via, base, case, f"{i}-proxy")
            if isinstance(p, str) and not isinstance(d, str):
                tally.errors.append(f"case {i}: {p} through the proxy only")
            elif p != d:
                tally.mismatched.append(f"case {i}: {case.path} {case.status}")
            else:
                tally.bytes_compared += len(p[2]) if not isinstance(p, str) else 0
            sent = up.received.get(f"{i}-direct"), up.received.get(f"{i}-proxy")
            if sent[0] != sent[1]:
                tally.request_changed.append(f"case {i}")
    return tally
