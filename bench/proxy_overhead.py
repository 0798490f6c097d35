"""What does prefire cost per request, compared with talking direct and with bare mitmproxy?

Measures, all on 127.0.0.1, against one local upstream that answers like the
OpenAI chat completions API:

  direct            client -> upstream
  mitmproxy         client -> `mitmdump -q` (same mitmproxy version, no addon) -> upstream
  mitmproxy-stream  the same with `--set stream_large_bodies=1`: bare mitmproxy buffers
                    every body, SSE included, so its TTFB is the whole stream; this one
                    streams like prefire does for SSE and is the fair TTFB baseline
  prefire           client -> `prefire run` -> upstream

Metrics per target: sequential latency p50/p99 (one request in flight on one
keep-alive connection), throughput in requests/s with C concurrent clients, and
time to first byte of a streamed (SSE) completion whose first chunk the
upstream sends at once and the rest after a delay.

Warm-up and order must not favour one target: every target is warmed up
first, then the measurement runs in rounds, each round visiting every target
in a rotated order. Latency and TTFB samples are pooled over the rounds;
throughput is the median of the rounds.

The upstream runs in its own process (this script with --serve-upstream), so
client, proxy and upstream do not share one CPU-bound event loop.

    /work/venv/bin/python bench/proxy_overhead.py            # markdown table
    /work/venv/bin/python bench/proxy_overhead.py --json     # one JSON object

With --load it runs a load test instead: --agents concurrent agents, each looping over
a non-streamed chat completion, a streamed one and an MCP tools/call (a conversation of
its own each, so prefire links and learns as it would live), for --load-seconds per
target and round. Every answer is compared byte for byte with the upstream's; the
report gives requests/s, latency p50/p99 per kind, errors and mismatched answers, and
prefire's added latency against bare mitmproxy (streaming on, the fair baseline).

    python bench/proxy_overhead.py --load --agents 32 --load-seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from benchutil import free_port, percentile, progress, session
from fake_wire import (
    CHAT_PATH,
    HEADERS,
    MCP_PATH,
    MCP_REPLY,
    REQUEST_JSON,
    REQUEST_SSE,
    RESPONSE_JSON,
    RESPONSE_SSE,
    SSE_LEN,
)
from load import load, load_report

HOST = "127.0.0.1"
ALL_TARGETS = ("direct", "mitmproxy", "mitmproxy-stream", "prefire")
# Children must not inherit a proxy from the environment: each hop is chosen explicitly.
PROXY_ENV_KEYS = {
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
}

# -- upstream (child process) --------------------------------------------------------------


def serve_upstream(delay_s: float) -> None:
    """Run the fake API until our stdin closes (i.e. until the benchmark exits, however)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        # Parse like a real server would; the cost is the same for every target.
        body = json.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=RESPONSE_JSON, content_type="application/json")
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        await resp.write(RESPONSE_SSE[0])  # at once: this is what TTFB measures
        await asyncio.sleep(delay_s)  # "the model is thinking"
        for c in RESPONSE_SSE[1:]:
            await resp.write(c)
        await resp.write_eof()
        return resp

    async def mcp(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        reply = MCP_REPLY.replace(b'"id": 1', f'"id": {json.dumps(body["id"])}'.encode(), 1)
        return web.Response(body=reply, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post(CHAT_PATH, chat)
        app.router.add_post(MCP_PATH, mcp)
        # No access log: its formatting would be per-request noise in every target alike.
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=300)
        await runner.setup()
        # Bind the socket ourselves: port 0 picks a free port and we can read which one.
        sock = socket.socket()
        sock.bind((HOST, 0))
        site = web.SockSite(runner, sock)
        await site.start()
        print(sock.getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_stdin() -> None:
            if not os.read(sys.stdin.fileno(), 4096):
                stop.set()

        loop.add_reader(sys.stdin.fileno(), on_stdin)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# -- child processes -----------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child if we die without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Children:
    """Every process we start, so that all of them are stopped on any exit path."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def start(
        self, name: str, argv: list[str], *, stdin: bool = False, announces: bool = True
    ) -> Child:
        """Start argv; `announces`: we read its stdout (else it goes to the log, where an
        unread pipe could never fill up and stall the child)."""
        env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS}
        log = self.workdir / f"{name}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if announces else err,
                stderr=err,
                env=env,
                # Own session: a Ctrl-C in the terminal reaches only us, and we stop them in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.terminate()
        deadline = time.monotonic() + 10
        for c in self.children:
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
            for pipe in (c.proc.stdin, c.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()


def read_line(child: Child, timeout: float) -> str:
    """First stdout line of a child, without blocking past the deadline or on a dead child."""
    assert child.proc.stdout is not None
    fd = child.proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{child.name}: no output after {timeout}s\n{child.tail()}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data = os.read(fd, 4096)
            if not data:
                raise RuntimeError(
                    f"{child.name} exited ({child.proc.wait()}) before it was ready\n"
                    + child.tail()
                )
            buf += data
    return buf.split(b"\n", 1)[0].decode().strip()


def wait_port(child: Child, port: int, timeout: float) -> None:
    """mitmdump -q announces nothing, so readiness is: the port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode})\n{child.tail()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name}: port {port} not open after {timeout}s\n{child.tail()}")


def find_exe(given: str | None, name: str) -> str:
    if given:
        return given
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"cannot find {name}; pass --{name} PATH")
    return found


def start_targets(
    args: argparse.Namespace, children: Children
) -> tuple[str, dict[str, str | None], dict[str, int]]:
    """Start the upstream and the proxies.

    Returns the upstream URL, each target's proxy URL (None: direct) and each proxy's pid.
    """
    # Popen all first so the proxies generate their CAs in parallel, then wait for each.
    upstream = children.start(
        "upstream",
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-upstream",
            "--stream-delay-ms",
            str(args.stream_delay_ms),
        ],
        stdin=True,
    )
    mitm_ports: dict[str, int] = {}
    mitmdump = find_exe(args.mitmdump, "mitmdump")
    for name in ("mitmproxy", "mitmproxy-stream"):
        if name not in args.targets:
            continue
        port = mitm_ports[name] = free_port(HOST)  # mitmdump needs its port up front
        argv = [mitmdump, "-q", "--listen-host", HOST, "--listen-port", str(port)]
        argv += ["--set", f"confdir={children.workdir / name}"]
        if name == "mitmproxy-stream":
            argv += ["--set", "stream_large_bodies=1"]
        children.start(name, argv, announces=False)
    prefire: Child | None = None
    if "prefire" in args.targets:
        argv = [find_exe(args.prefire, "prefire"), "run", "--listen-host", HOST]
        argv += ["--listen-port", "0", "--state-dir", str(children.workdir / "prefire")]
        prefire = children.start("prefire", argv)

    upstream_url = f"http://{HOST}:{int(read_line(upstream, 15))}"
    proxies: dict[str, str | None] = {}
    pids = {c.name: c.proc.pid for c in children.children if c.name in args.targets}
    for name in args.targets:
        if name == "direct":
            proxies[name] = None
        elif name in mitm_ports:
            child = next(c for c in children.children if c.name == name)
            wait_port(child, mitm_ports[name], 60)
            proxies[name] = f"http://{HOST}:{mitm_ports[name]}"
        elif name == "prefire":
            assert prefire is not None
            line = read_line(prefire, 60)
            prefix = "prefire listening on "
            if not line.startswith(prefix):
                raise RuntimeError(f"prefire: unexpected first line {line!r}\n{prefire.tail()}")
            proxies[name] = line.removeprefix(prefix)
    return upstream_url, proxies, pids


# -- measurement ---------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    proxy: str | None
    # One connection, one request in flight: the latency an agent's single call sees.
    seq: aiohttp.ClientSession
    # C connections for the throughput bursts.
    pool: aiohttp.ClientSession
    latency_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    round_p50_ms: list[float] = field(default_factory=list)
    # The proxy's own process, for its CPU time; None for direct.
    pid: int | None = None
    cpu_s: float = 0.0
    cpu_requests: int = 0


class Bench:
    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        self.url = url + CHAT_PATH

    async def call(self, session: aiohttp.ClientSession, proxy: str | None) -> float:
        """One non-streamed completion; returns wall time in ms until the body is read."""
        t0 = time.perf_counter()
        async with session.post(self.url, data=REQUEST_JSON, headers=HEADERS, proxy=proxy) as r:
            body = await r.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if r.status != 200 or len(body) != len(RESPONSE_JSON):
            raise RuntimeError(f"bad response via {proxy}: {r.status} {body[:200]!r}")
        return elapsed

    async def ttfb(self, session: aiohttp.ClientSession, proxy: str | None) -> float:
        """One streamed completion; returns ms until the first body bytes (the first SSE event).

        The stream is read to its end so that the proxy sees a normal, complete exchange and
        the keep-alive connection stays usable.
        """
        t0 = time.perf_counter()
        async with session.post(self.url, data=REQUEST_SSE, headers=HEADERS, proxy=proxy) as r:
            first = await r.content.readany()
            t1 = time.perf_counter()
            total = len(first)
            async for data in r.content.iter_any():
                total += len(data)
        if r.status != 200 or total != SSE_LEN:
            raise RuntimeError(f"bad stream via {proxy}: {r.status}, {total} of {SSE_LEN} bytes")
        return (t1 - t0) * 1000

    async def burst(self, t: Target, n: int) -> float:
        """n requests over C concurrent clients; returns requests per second."""
        left = n

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self.call(t.pool, t.proxy)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(self.args.concurrency)))
        return n / (time.perf_counter() - t0)

    async def warm_up(self, t: Target) -> None:
        # First requests pay for imports, connection set-up and code paths never run yet.
        for _ in range(self.args.warmup):
            await self.call(t.seq, t.proxy)
        await self.burst(t, self.args.concurrency * 4)
        for _ in range(3):
            await self.ttfb(t.seq, t.proxy)

    async def round(self, t: Target) -> None:
        a = self.args
        gc.collect()  # a collection of our own garbage should not land in someone else's turn
        cpu0 = cpu_seconds(t.pid)
        lat = [await self.call(t.seq, t.proxy) for _ in range(a.requests)]
        t.latency_ms += lat
        t.round_p50_ms.append(statistics.median(lat))
        t.rps.append(await self.burst(t, a.throughput_requests))
        cpu1 = cpu_seconds(t.pid)
        if cpu0 is not None and cpu1 is not None:
            t.cpu_s += cpu1 - cpu0
            t.cpu_requests += a.requests + a.throughput_requests
        t.ttfb_ms += [await self.ttfb(t.seq, t.proxy) for _ in range(a.ttfb_requests)]


_CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU time of a process so far (Linux /proc), else None.

    Latency on a 2-core machine mixes the proxy's work with waiting for a core; the CPU the
    proxy burns per request is the overhead itself, free of scheduling noise.
    """
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _CLOCK_TICK_S


async def measure(
    args: argparse.Namespace, url: str, proxies: dict[str, str | None], pids: dict[str, int]
) -> list[Target]:
    bench = Bench(args, url)
    targets = [
        Target(n, proxies[n], session(1), session(args.concurrency), pid=pids.get(n))
        for n in args.targets
    ]
    try:
        for t in targets:
            progress(f"warm-up {t.name} ({t.proxy or 'no proxy'})")
            await bench.warm_up(t)
        for r in range(args.rounds):
            # Rotate the order so that no target always runs first, or right after another.
            k = r % len(targets)
            order = targets[k:] + targets[:k]
            progress(f"round {r + 1}/{args.rounds}: {' '.join(t.name for t in order)}")
            for t in order:
                await bench.round(t)
    finally:
        for t in targets:
            await t.seq.close()
            await t.pool.close()
    return targets


# -- report --------------------------------------------------------------------------------


def summarize(targets: list[Target]) -> dict[str, dict[str, Any]]:
    return {
        t.name: {
            "proxy": t.proxy,
            "p50_ms": percentile(t.latency_ms, 50),
            "p99_ms": percentile(t.latency_ms, 99),
            "rps": statistics.median(t.rps),
            "ttfb_p50_ms": percentile(t.ttfb_ms, 50),
            "ttfb_p99_ms": percentile(t.ttfb_ms, 99),
            "latency_samples": len(t.latency_ms),
            "ttfb_samples": len(t.ttfb_ms),
            "rps_by_round": [round(x, 1) for x in t.rps],
            "p50_ms_by_round": [round(x, 4) for x in t.round_p50_ms],
            # Proxy CPU per non-streamed request (sequential and burst), None when unknown.
            "proxy_cpu_ms_per_req": t.cpu_s / t.cpu_requests * 1000 if t.cpu_requests else None,
        }
        for t in targets
    }


def deltas(summary: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    p = summary.get("prefire")
    m = summary.get("mitmproxy")
    s = summary.get("mitmproxy-stream")
    if p and m:
        out["p50_ms"] = p["p50_ms"] - m["p50_ms"]
        out["p99_ms"] = p["p99_ms"] - m["p99_ms"]
        out["ttfb_p50_ms"] = p["ttfb_p50_ms"] - m["ttfb_p50_ms"]
        out["rps_pct"] = (p["rps"] / m["rps"] - 1) * 100
        if p["proxy_cpu_ms_per_req"] is not None and m["proxy_cpu_ms_per_req"] is not None:
            out["proxy_cpu_ms_per_req"] = p["proxy_cpu_ms_per_req"] - m["proxy_cpu_ms_per_req"]
    if p and m:
        # Paired by round: both targets ran within seconds of each other, so a slow phase of
        # the machine cancels out; the spread over rounds says how much to trust the p50 delta.
        paired = [a - b for a, b in zip(p["p50_ms_by_round"], m["p50_ms_by_round"], strict=True)]
        out["p50_ms_paired_median"] = statistics.median(paired)
        out["p50_ms_paired_min"] = min(paired)
        out["p50_ms_paired_max"] = max(paired)
    if p and s:
        out["ttfb_p50_ms_vs_stream"] = p["ttfb_p50_ms"] - s["ttfb_p50_ms"]
    return out


def markdown(summary: dict[str, dict[str, Any]], d: dict[str, float], meta: dict[str, Any]) -> str:
    lines = [
        f"{meta['rounds']} rounds x ({meta['requests']} sequential, "
        f"{meta['throughput_requests']} at concurrency {meta['concurrency']}, "
        f"{meta['ttfb_requests']} streamed); stream delay {meta['stream_delay_ms']} ms; "
        f"mitmproxy {meta['mitmproxy']}, Python {meta['python']}, {meta['cpus']} CPUs",
        "",
        "| target | p50 ms | p99 ms | req/s | TTFB p50 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['rps']:.0f} "
            f"| {s['ttfb_p50_ms']:.3f} |"
        )
    lines.append("")
    if "p50_ms" in d:
        lines.append(
            f"prefire - mitmproxy: p50 {d['p50_ms']:+.3f} ms (per round: median "
            f"{d['p50_ms_paired_median']:+.3f}, range {d['p50_ms_paired_min']:+.3f} .. "
            f"{d['p50_ms_paired_max']:+.3f})"
        )
        lines.append(f"prefire - mitmproxy: p99 {d['p99_ms']:+.3f} ms")
        lines.append(
            f"prefire - mitmproxy: TTFB p50 {d['ttfb_p50_ms']:+.3f} ms "
            "(bare mitmproxy buffers the whole SSE stream)"
        )
        lines.append(f"prefire - mitmproxy: req/s {d['rps_pct']:+.1f} %")
    if "proxy_cpu_ms_per_req" in d:
        cpu = ", ".join(
            f"{name} {s['proxy_cpu_ms_per_req']:.3f}"
            for name, s in summary.items()
            if s["proxy_cpu_ms_per_req"] is not None
        )
        lines.append(
            f"prefire - mitmproxy: proxy CPU {d['proxy_cpu_ms_per_req']:+.3f} ms/request "
            f"(CPU ms/request: {cpu})"
        )
    if "ttfb_p50_ms_vs_stream" in d:
        lines.append(f"prefire - mitmproxy-stream: TTFB p50 {d['ttfb_p50_ms_vs_stream']:+.3f} ms")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="measurement rounds (default 7)")
    p.add_argument(
        "--requests", type=int, default=300, help="sequential requests per round (default 300)"
    )
    p.add_argument(
        "--throughput-requests",
        type=int,
        default=300,
        help="requests per throughput burst (default 300)",
    )
    p.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument(
        "--ttfb-requests", type=int, default=10, help="streamed requests per round (default 10)"
    )
    p.add_argument(
        "--stream-delay-ms",
        type=float,
        default=50.0,
        help="upstream pause after the first SSE chunk (default 50)",
    )
    p.add_argument("--warmup", type=int, default=50, help="sequential warm-up requests per target")
    p.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated subset of {','.join(ALL_TARGETS)}",
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this many seconds (300)"
    )
    p.add_argument("--mitmdump", help="mitmdump executable (default: beside this Python)")
    p.add_argument("--prefire", help="prefire executable (default: beside this Python)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument(
        "--load",
        action="store_true",
        help="run the load test instead (see --agents, --load-seconds, --rounds)",
    )
    p.add_argument("--agents", type=int, default=32, help="concurrent agents under --load")
    p.add_argument(
        "--load-seconds", type=float, default=20.0, help="seconds per target and round (--load)"
    )
    p.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown or not args.targets:
        p.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(ALL_TARGETS)}")
    for name in ("rounds", "requests", "throughput_requests", "concurrency", "ttfb_requests"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM would kill us without running `finally`; turn it into SystemExit instead."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.stream_delay_ms / 1000)
        return 0
    started = time.monotonic()
    with terminate_as_exit(), tempfile.TemporaryDirectory(prefix="prefire-bench-") as tmp:
        children = Children(Path(tmp))
        try:
            url, proxies, pids = start_targets(args, children)
            progress(f"upstream {url}; started in {time.monotonic() - started:.1f}s")
            if args.load:
                results = asyncio.run(asyncio.wait_for(load(args, url, proxies), args.timeout))
            else:
                targets = asyncio.run(
                    asyncio.wait_for(measure(args, url, proxies, pids), args.timeout),
                )
        except (RuntimeError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            # Reported after the children are stopped (the finally below runs first).
            why = f"no result within --timeout {args.timeout}s" if not str(exc) else exc
            print(f"proxy_overhead: {type(exc).__name__}: {why}", file=sys.stderr)
            return 1
        finally:
            children.stop_all()
    if args.load:
        return load_report(args, results, started)
    summary = summarize(targets)
    d = deltas(summary)
    meta = {
        "rounds": args.rounds,
        "requests": args.requests,
        "throughput_requests": args.throughput_requests,
        "concurrency": args.concurrency,
        "ttfb_requests": args.ttfb_requests,
        "stream_delay_ms": args.stream_delay_ms,
        "request_bytes": len(REQUEST_JSON),
        "response_bytes": len(RESPONSE_JSON),
        "sse_bytes": SSE_LEN,
        "mitmproxy": metadata.version("mitmproxy"),
        "aiohttp": aiohttp.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    if args.json:
        print(json.dumps({"meta": meta, "targets": summary, "delta_prefire_minus_mitmproxy": d}))
    else:
        print(markdown(summary, d, meta))
    progress(f"done in {meta['elapsed_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
