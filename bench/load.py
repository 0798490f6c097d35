"""The load test of bench/proxy_overhead.py (`--load`): many agents at once through each
target, each looping a chat completion, a streamed one and an MCP tools/call, every answer
checked byte for byte; requests, req/s, latency percentiles, errors and mismatches."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import aiohttp
from benchutil import percentile, progress, session
from fake_wire import (
    CHAT_PATH,
    HEADERS,
    MCP_PATH,
    MCP_REPLY,
    RESPONSE_JSON,
    RESPONSE_SSE,
    agent_chat_request,
    mcp_request,
)

LOAD_KINDS = ("json", "sse", "mcp")


@dataclass
class LoadResult:
    name: str
    seconds: float = 0.0
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in LOAD_KINDS})
    errors: int = 0
    mismatched: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latency_ms.values())


async def load_round(
    args: argparse.Namespace, base: str, name: str, proxy: str | None, result: LoadResult
) -> None:
    """`args.agents` agents for `args.load_seconds`; every answer checked byte for byte."""
    pool = session(args.agents)
    chat_url, mcp_url = base + CHAT_PATH, base + MCP_PATH
    deadline = time.perf_counter() + args.load_seconds
    started = time.perf_counter()

    async def agent(i: int) -> None:
        turn = 0
        while time.perf_counter() < deadline:
            kind = LOAD_KINDS[turn % 3]
            turn += 1
            if kind == "mcp":
                url, data, expected = mcp_url, mcp_request(turn), None
            else:
                url, data = chat_url, agent_chat_request(i, turn // 3, stream=kind == "sse")
                expected = RESPONSE_JSON if kind == "json" else b"".join(RESPONSE_SSE)
            t0 = time.perf_counter()
            try:
                async with pool.post(url, data=data, headers=HEADERS, proxy=proxy) as r:
                    body = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{kind}: {exc!r}")
                continue
            result.latency_ms[kind].append((time.perf_counter() - t0) * 1000)
            if kind == "mcp":
                expected = MCP_REPLY.replace(b'"id": 1', f'"id": {turn}'.encode(), 1)
            if status != 200 or body != expected:
                result.mismatched += 1

    try:
        await asyncio.gather(*(agent(i) for i in range(args.agents)))
    finally:
        result.seconds += time.perf_counter() - started
        await pool.close()


async def load(
    args: argparse.Namespace, url: str, proxies: dict[str, str | None]
) -> list[LoadResult]:
    results = {name: LoadResult(name) for name in args.targets}
    warm = argparse.Namespace(**{**vars(args), "load_seconds": min(2.0, args.load_seconds / 2)})
    for name in args.targets:
        progress(f"load warm-up {name}")
        await load_round(warm, url, name, proxies[name], LoadResult(name))
    for r in range(args.rounds):
        k = r % len(args.targets)
        order = args.targets[k:] + args.targets[:k]
        for name in order:
            progress(f"load round {r + 1}/{args.rounds}: {name}, {args.agents} agents")
            await load_round(args, url, name, proxies[name], results[name])
    return list(results.values())


def load_summary(results: list[LoadResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for res in results:
        everything = [x for v in res.latency_ms.values() for x in v]
        row: dict[str, Any] = {
            "requests": res.requests,
            "seconds": round(res.seconds, 2),
            "rps": round(res.requests / res.seconds, 1) if res.seconds else 0.0,
            "p50_ms": percentile(everything, 50) if everything else None,
            "p99_ms": percentile(everything, 99) if everything else None,
            "errors": res.errors,
            "mismatched": res.mismatched,
            "error_samples": res.error_samples,
        }
        for kind, xs in res.latency_ms.items():
            row[f"{kind}_p50_ms"] = percentile(xs, 50) if xs else None
            row[f"{kind}_p99_ms"] = percentile(xs, 99) if xs else None
        out[res.name] = row
    base = out.get("mitmproxy-stream") or out.get("mitmproxy")
    p = out.get("prefire")
    if p and base:
        p["added_vs_mitmproxy"] = {
            key: round(p[key] - base[key], 3)
            for key in p
            if key.endswith("_ms") and p[key] is not None and base.get(key) is not None
        }
        p["added_vs_mitmproxy"]["rps_pct"] = round((p["rps"] / base["rps"] - 1) * 100, 1)
    return out


def load_markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"{meta['agents']} agents x {meta['rounds']} rounds x {meta['load_seconds']} s per "
        f"target; each agent loops chat JSON, chat SSE (stream delay "
        f"{meta['stream_delay_ms']} ms), MCP tools/call; mitmproxy {meta['mitmproxy']}, "
        f"Python {meta['python']}, {meta['cpus']} CPUs",
        "",
        "| target | requests | req/s | p50 ms | p99 ms | JSON p50/p99 ms | SSE p50/p99 ms "
        "| MCP p50/p99 ms | errors | mismatched |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in summary.items():
        kinds = " | ".join(
            f"{r[k + '_p50_ms']:.2f} / {r[k + '_p99_ms']:.2f}"
            if r[k + "_p50_ms"] is not None
            else "-"
            for k in LOAD_KINDS
        )
        lines.append(
            f"| {name} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {kinds} | {r['errors']} | {r['mismatched']} |"
        )
    added = summary.get("prefire", {}).get("added_vs_mitmproxy")
    if added:
        lines += [
            "",
            f"prefire - mitmproxy: p50 {added['p50_ms']:+.2f} ms, p99 {added['p99_ms']:+.2f} ms, "
            f"req/s {added['rps_pct']:+.1f} %",
        ]
    return "\n".join(lines)


def load_report(args: argparse.Namespace, results: list[LoadResult], started: float) -> int:
    """Print the load test's summary (JSON or a table); 1 when any answer was an error or
    did not match."""
    meta = {
        "agents": args.agents,
        "rounds": args.rounds,
        "load_seconds": args.load_seconds,
        "stream_delay_ms": args.stream_delay_ms,
        "mitmproxy": metadata.version("mitmproxy"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    load_out = load_summary(results)
    if args.json:
        print(json.dumps({"meta": meta, "load": load_out}))
    else:
        print(load_markdown(load_out, meta))
    progress(f"done in {meta['elapsed_s']}s")
    bad = sum(r["errors"] + r["mismatched"] for r in load_out.values())
    return 1 if bad else 0
