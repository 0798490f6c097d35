"""Soak: many synthetic agent sessions; does prefire's memory stay bounded?

Each session is one agent task of one tenant (API key) on one application (tool set):
a user message, a first LLM turn that calls a search tool, a second that calls a
fetch tool with an id from the search result, and a final answer: three chat
completions, the later ones repeating the history with the tool results.

    python bench/soak.py --sessions 100000                # in-process (no mitmproxy)
    python bench/soak.py --sessions 100000 --live         # through a real `prefire run`

In-process, the exchanges go straight into the Observer, the pattern model and the
speculator's listener (all of prefire's per-session state, at thousands of sessions
per second); RSS is this process's. Live, they go over loopback HTTP through a
`prefire run` subprocess (mitmproxy included, a few hundred requests per second) and
RSS is the proxy's. Either way the run fails (exit 1) if RSS passes --rss-cap-mb.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# the bench helpers are imported by name, also when a test loads this file by its path
sys.path.insert(0, BENCH_DIR)
import fake_wire  # noqa: E402

WORDS = [f"w{n:04d}" for n in range(3000)]


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident set size in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Synth:
    """Deterministic synthetic sessions: `tenants` API keys x `apps` tool sets."""

    def __init__(self, seed: int, tenants: int, apps: int) -> None:
        self.rng = random.Random(seed)
        self.tenants = tenants
        self.apps = apps

    def session(self, n: int) -> tuple[dict[str, str], list[tuple[dict, bytes]]]:
        """Headers and the three (request body, response body) exchanges of session n."""
        rng = self.rng
        tenant, app = rng.randrange(self.tenants), rng.randrange(self.apps)
        tools = [f"app{app}_{name}" for name in ("search", "fetch", "list", "update", "notify")]
        offered = [
            {"type": "function", "function": {"name": t, "parameters": {"type": "object"}}}
            for t in tools
        ]
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        query = rng.choice(WORDS)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"You are the assistant of app {app}."},
            {"role": "user", "content": f"{words} please look up {query}"},
        ]
        ids = [f"id-{n}-{k}" for k in range(5)]
        turns = [
            (tools[0], {"q": query, "limit": 5}, {"ids": ids, "total": 5}),
            (tools[1], {"id": ids[0]}, {"id": ids[0], "title": words[:40], "price": n % 97}),
        ]
        exchanges = []
        for k, (tool, args, result) in enumerate(turns):
            call_id = f"call_{n}_{k}"
            request = {"model": "m", "messages": list(messages), "tools": offered}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tool, "arguments": json.dumps(args)},
                    }
                ],
            }
            exchanges.append((request, completion(message, "tool_calls")))
            messages += [message, {"role": "tool", "tool_call_id": call_id,
                                   "content": json.dumps(result)}]  # fmt: skip
        request = {"model": "m", "messages": list(messages), "tools": offered}
        answer = {"role": "assistant", "content": f"Found {ids[0]}."}
        exchanges.append((request, completion(answer, "stop")))
        return {"authorization": f"Bearer sk-tenant-{tenant}"}, exchanges


def completion(message: dict[str, Any], finish: str) -> bytes:
    return orjson.dumps(fake_wire.completion(message, finish))


# -- in-process ------------------------------------------------------------------------------


async def in_process(args: argparse.Namespace, check: bool = False) -> dict[str, Any]:
    """`check`: also report what should be empty once every exchange has ended."""
    from prefire.proxy.accounting import Accounting
    from prefire.proxy.learner import Learner
    from prefire.proxy.speculator import Speculator
    from prefire.rules.files import RulesWatcher
    from prefire.wire.observer import Observer

    with tempfile.TemporaryDirectory() as tmp:
        learner = Learner(Path(tmp))
        listeners: list[Any] = [learner]
        observer = Observer()

        def feed(events: list[Any]) -> None:
            for event in events:
                for listener in listeners:
                    listener(event)

        speculator = Speculator(learner.model, RulesWatcher(None), observer, Accounting())
        listeners.append(speculator)
        synth = Synth(args.seed, args.tenants, args.apps)
        samples = []
        started = time.monotonic()
        xid = 0
        for n in range(args.sessions):
            headers, exchanges = synth.session(n)
            for request, response in exchanges:
                xid += 1
                t = time.time()
                body = orjson.dumps(request)
                url = "https://api.example.com/v1/chat/completions"
                client = f"10.0.{n % 50}.1"
                path = "/v1/chat/completions"
                feed(
                    observer.request(str(xid), "POST", url, path, headers.items(), body, t, client)
                )
                feed(observer.response(str(xid), 200, "application/json", response, t + 0.5))
            if (n + 1) % args.every == 0 or n + 1 == args.sessions:
                gc.collect()
                rss, peak = rss_mb()
                samples.append({"sessions": n + 1, "rss_mb": round(rss, 1)})
                progress(f"{n + 1} sessions, RSS {rss:.0f} MB, peak {peak:.0f} MB")
        elapsed = time.monotonic() - started
        snapshot = learner.take_snapshot() or b""
        await speculator.close()
        extra = {"open_exchanges": len(observer._open)} if check else {}
    return {
        **extra,
        "mode": "in-process",
        "sessions": args.sessions,
        "exchanges": xid,
        "seconds": round(elapsed, 1),
        "sessions_per_s": round(args.sessions / elapsed, 1),
        "rss_mb": samples,
        "peak_rss_mb": round(rss_mb()[1], 1),
        "snapshot_kb": len(snapshot) // 1024,
    }


# -- live ------------------------------------------------------------------------------------


async def live(args: argparse.Namespace) -> dict[str, Any]:
    import proxy_overhead as po

    answers: dict[str, bytes] = {}
    runner, url = await _upstream(answers)
    with tempfile.TemporaryDirectory(prefix="prefire-soak-") as tmp:
        children = po.Children(Path(tmp))
        exe = po.find_exe(None, "prefire")
        argv = [exe, "run", "--listen-port", "0", "--state-dir", str(Path(tmp) / "state")]
        proxy = children.start("prefire", argv)
        try:
            line = po.read_line(proxy, 60)
            proxy_url = line.removeprefix("prefire listening on ")
            pid = proxy.proc.pid
            agents = _Agents(args, answers, url, proxy_url, pid)
            await agents.run()
            elapsed = time.monotonic() - agents.started
            rss, peak = rss_mb(pid)
        finally:
            children.stop_all()
            await runner.cleanup()
    sessions = min(agents.next_session, args.sessions)
    return {
        "mode": "live",
        "sessions": sessions,
        "requests": agents.tally["requests"],
        "errors": agents.tally["errors"],
        "mismatched": agents.tally["mismatched"],
        "seconds": round(elapsed, 1),
        "sessions_per_s": round(sessions / elapsed, 1),
        "rss_mb": agents.samples,
        "proxy_peak_rss_mb": round(peak, 1),
        "proxy_rss_mb_at_end": round(rss, 1),
    }


async def _upstream(answers: dict[str, bytes]) -> tuple[Any, str]:
    """The fake LLM: it answers each request with the response its x-answer names.
    Returns its runner (to clean up) and its chat URL."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            body=answers.pop(request.headers["x-answer"]), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1/chat/completions"


class _Agents:
    """The live soak's agents: synthetic sessions through the proxy until all are sent or
    --max-seconds is up, every answer checked, the proxy's RSS sampled as they go."""

    def __init__(
        self,
        args: argparse.Namespace,
        answers: dict[str, bytes],
        url: str,
        proxy_url: str,
        pid: int,
    ) -> None:
        self.args, self.answers, self.url, self.proxy_url, self.pid = (
            args, answers, url, proxy_url, pid
        )  # fmt: skip
        self.synth = Synth(args.seed, args.tenants, args.apps)
        self.samples: list[dict[str, Any]] = []
        self.tally = {"requests": 0, "errors": 0, "mismatched": 0}
        self.next_session = 0
        self.started = time.monotonic()
        self.deadline = self.started + args.max_seconds

    async def run(self) -> None:
        import aiohttp

        conn = aiohttp.TCPConnector(limit=self.args.concurrency)
        async with aiohttp.ClientSession(connector=conn, trust_env=False) as http:
            await asyncio.gather(*(self._agent(http) for _ in range(self.args.concurrency)))

    async def _agent(self, http: Any) -> None:
        while self.next_session < self.args.sessions and time.monotonic() < self.deadline:
            n = self.next_session
            self.next_session += 1
            headers, exchanges = self.synth.session(n)
            for k, (request, response) in enumerate(exchanges):
                await self._send(http, headers, f"{n}-{k}", request, response)
            if (n + 1) % self.args.every == 0:
                rss, _ = rss_mb(self.pid)
                self.samples.append({"sessions": n + 1, "rss_mb": round(rss, 1)})
                rate = (n + 1) / (time.monotonic() - self.started)
                progress(f"{n + 1} sessions ({rate:.0f}/s), proxy RSS {rss:.0f} MB")

    async def _send(
        self, http: Any, headers: dict[str, str], key: str, request: Any, response: bytes
    ) -> None:
        import aiohttp

        self.answers[key] = response
        try:
            async with http.post(
                self.url,
                data=orjson.dumps(request),
                headers={**headers, "x-answer": key, "content-type": "application/json"},
                proxy=self.proxy_url,
            ) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally["errors"] += 1
            progress(f"error: {exc!r}")
            return
        self.tally["requests"] += 1
        self.tally["mismatched"] += resp.status != 200 or body != response


def progress(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--tenants", type=int, default=20, help="API keys (scopes)")
    p.add_argument("--apps", type=int, default=10, help="tool sets (applications)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--every", type=int, default=10_000, help="sample RSS every N sessions")
    p.add_argument("--live", action="store_true", help="through a `prefire run` subprocess")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent agents (--live)")
    p.add_argument("--max-seconds", type=float, default=1800, help="stop early (--live)")
    p.add_argument("--rss-cap-mb", type=float, default=1024.0, help="fail above this RSS")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    os.environ.pop("HTTPS_PROXY", None)
    result = asyncio.run(live(args) if args.live else in_process(args))
    peak = result.get("proxy_peak_rss_mb") or result["peak_rss_mb"]
    result["rss_cap_mb"] = args.rss_cap_mb
    result["within_cap"] = peak <= args.rss_cap_mb
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    failed = not result["within_cap"] or result.get("errors") or result.get("mismatched")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
