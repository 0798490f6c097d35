"""N prefire replicas behind one load balancer: sharing Redis vs each on its own.

    python bench/replicas.py [--replicas 2] [--tasks 12] [--warmup 12] [--seed 1]
                             [--workload mixed|reads] [--think 1.25] [--concurrency 4]
                             [--redis URL]

The demo's world (proxy/demo: scripted streaming LLM, FastMCP and REST tool servers, the
openai/mcp SDK agent in its own process) runs behind a small round-robin TCP load
balancer that spreads the agent's connections over N `prefire run` replicas, as a
load balancer in front of a team's agents would. Four passes on the same tasks, in one
run:

- baseline: N replicas with --no-speculate (what the agents would take without prefire);
- isolated: N replicas with the embedded store, each learning from and serving only the
  connections it gets;
- shared: N replicas with `--store redis://...`, learning and serving as one;
- one: a single replica behind the same balancer, the figure "as one" should approach.

Each speculative pass first learns from the same warm-up tasks (another seed) through
its replicas with --no-speculate, then restarts them with speculation on their state
dirs, as `prefire demo` does with one proxy. Printed: wall time, reduction against the
baseline, hits (speculative results the agent used, summed over the replicas), hit rate
(hits over the agent's read calls), wasted calls, and whether every result the agent saw
was identical to the baseline's. Redis: a `redis-server` started on a free loopback port
(none persisted), or `--redis URL` (keys under a fresh prefix). Loopback only; bounded
by --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchutil import free_port

from prefire.proxy.demo import runner
from prefire.proxy.demo.llm_server import ScriptedLLM, make_tasks
from prefire.proxy.demo.tools import READ_TOOLS, World, build_mcp, build_rest, serve_app, serve_mcp


class RoundRobin:
    """A TCP load balancer: each new connection goes to the next replica in turn."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))
        self.connections: Counter[int] = Counter()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._open):  # connections the agent left open
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._open.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = next(self._next)
        self.connections[i] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.ports[i])
        except OSError:
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        with contextlib.suppress(Exception):
            dst.close()


async def _start_redis(tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise runner.DemoError(
            "redis-server is not installed (Debian: apt-get install redis-server); "
            "or pass --redis URL"
        )
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", str(tmp), "--loglevel", "warning"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc, f"redis://127.0.0.1:{port}/0"
        await asyncio.sleep(0.05)
    await runner._stop(proc)
    raise runner.DemoError("redis-server did not start")


async def _replicas(
    tmp: Path, name: str, n: int, flags: list[str], stack: contextlib.AsyncExitStack
) -> list[tuple[int, Path]]:
    """N `prefire run` processes (state dirs tmp/name-i, kept across passes); their ports
    and state dirs. Stopped when `stack` closes."""
    out: list[tuple[int, Path]] = []
    for i in range(n):
        state = tmp / f"{name}-{i}"
        o = stack.enter_context((tmp / f"{name}-{i}.out").open("wb"))
        log = stack.enter_context((tmp / f"{name}-{i}.log").open("ab"))
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "prefire.cli.main", "run", "--listen-port", "0"),
            *("--state-dir", str(state), "--log-format", "json", *flags),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=o,
            stderr=log,
            env=runner._clean_env(),
        )
        stack.push_async_callback(_stop_checked, proc, tmp / f"{name}-{i}.log")
        url = await runner._listening_url(proc, tmp / f"{name}-{i}.out", tmp / f"{name}-{i}.log")
        out.append((int(url.rsplit(":", 1)[1]), state))
    return out


async def _stop_checked(proc: asyncio.subprocess.Process, log: Path) -> None:
    status = await runner._stop(proc)
    if status != 0:
        raise runner.DemoError(f"prefire run exited with {status}:\n{runner._tail_of(log)}")


async def _agent(lb_url: str, state: Path, agent_args: list[str]) -> dict[str, Any]:
    env = {
        **runner._clean_env(),
        "HTTPS_PROXY": lb_url,
        "HTTP_PROXY": lb_url,
        "SSL_CERT_FILE": str(state / "ca-bundle.pem"),
    }
    agent = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "prefire.proxy.demo.agent", *agent_args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        report, errors = await agent.communicate()
    finally:
        await runner._stop(agent)
    if agent.returncode != 0:
        raise runner.DemoError(f"the agent failed:\n{runner._tail(errors)}")
    return json.loads(report)


async def _pass(
    tmp: Path,
    name: str,
    n: int,
    flags: list[str],
    agent_args: list[str],
    warm_args: list[str] | None,
    world: World,
) -> dict[str, Any]:
    """One configuration: warm-up (optional, --no-speculate), then the measured tasks."""
    if warm_args is not None:
        async with contextlib.AsyncExitStack() as stack:
            reps = await _replicas(tmp, name, n, ["--no-speculate", *flags], stack)
            lb = RoundRobin([p for p, _ in reps])
            lb_url = await lb.start()
            stack.push_async_callback(lb.close)
            await _agent(lb_url, reps[0][1], warm_args)
        world.reset()
    async with contextlib.AsyncExitStack() as stack:
        reps = await _replicas(tmp, name, n, flags, stack)
        lb = RoundRobin([p for p, _ in reps])
        lb_url = await lb.start()
        stack.push_async_callback(lb.close)
        report = await _agent(lb_url, reps[0][1], agent_args)
        connections = [lb.connections[i] for i in range(n)]
    calls = world.reset()
    totals: Counter[str] = Counter()
    for _, state in reps:
        stats, error = await runner.read_stats(state)
        if stats is None:
            raise runner.DemoError(f"{name}: no stats from {state}: {error}")
        totals.update(stats["totals"])
    return {
        "report": report,
        "totals": dict(totals),
        "upstream_calls": sum(calls.values()),
        "connections": connections,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as keep:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = args.keep
        else:
            tmp = Path(keep.enter_context(tempfile.TemporaryDirectory(prefix="prefire-replicas-")))
        world = World(args.seed)
        think = (args.think * 0.8, args.think * 1.2)
        async with contextlib.AsyncExitStack() as stack:
            llm_url = await stack.enter_async_context(serve_app(ScriptedLLM(args.seed, think).app))
            rest_url = await stack.enter_async_context(serve_app(build_rest(world)))
            mcp_url = await stack.enter_async_context(serve_mcp(build_mcp(world)))
            if args.redis:
                redis_url = args.redis
            else:
                proc, redis_url = await _start_redis(tmp)
                stack.push_async_callback(runner._stop, proc)
            rules = tmp / "rules.yaml"
            rules.write_text(runner.rules_yaml(rest_url))
            users = sorted(world.users)
            tasks, warm = tmp / "tasks.json", tmp / "warmup.json"
            tasks.write_text(json.dumps(make_tasks(args.tasks, args.seed, users, args.workload)))
            warm.write_text(
                json.dumps(make_tasks(args.warmup, args.seed + 1000, users, args.workload))
            )
            common = ["--llm", llm_url + "/v1", "--mcp", mcp_url, "--rest", rest_url]
            common += ["--concurrency", str(args.concurrency)]
            agent_args = [*common, "--tasks", str(tasks)]
            warm_args = [*common, "--tasks", str(warm)] if args.warmup else None
            r = ["--rules", str(rules)]
            store = ["--store", redis_url, "--store-prefix", "bench-" + secrets.token_hex(4)]
            n = args.replicas
            progress = print if not args.json else (lambda *_, **__: None)
            progress(f"[bench] baseline: {n} replicas, --no-speculate ...", file=sys.stderr)
            baseline = await _pass(
                tmp, "baseline", n, ["--no-speculate", *r], agent_args, None, world
            )
            progress(f"[bench] isolated: {n} replicas, embedded store ...", file=sys.stderr)
            isolated = await _pass(tmp, "isolated", n, r, agent_args, warm_args, world)
            progress(f"[bench] shared: {n} replicas, {redis_url} ...", file=sys.stderr)
            shared = await _pass(tmp, "shared", n, [*r, *store], agent_args, warm_args, world)
            progress("[bench] one: 1 replica, for reference ...", file=sys.stderr)
            one = await _pass(tmp, "one", 1, r, agent_args, warm_args, world)
    reads = sum(
        1 for t in baseline["report"]["tasks"] for c in t["tool_results"] if c["tool"] in READ_TOOLS
    )
    runs = {"baseline": baseline, "isolated": isolated, "shared": shared, "one": one}
    return {
        "replicas": args.replicas,
        "tasks": args.tasks,
        "warmup_tasks": args.warmup,
        "workload": args.workload,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "read_calls": reads,
        "runs": _rows(runs, reads),
    }


def _rows(runs: dict[str, dict[str, Any]], reads: int) -> dict[str, dict[str, Any]]:
    """Each pass's figures, against the baseline pass's wall time and answers."""
    baseline = runs["baseline"]
    b = baseline["report"]["wall_s"]
    rows = {}
    for name, p in runs.items():
        wall = p["report"]["wall_s"]
        used = p["totals"].get("used", 0)
        rows[name] = {
            "wall_s": wall,
            "reduction": round((b - wall) / b, 3),
            "hits": used,
            "hit_rate": round(used / reads, 3) if reads else None,
            "fired": p["totals"].get("fired", 0),
            "wasted": sum(p["totals"].get(k, 0) for k in ("wasted", "failed", "expired")),
            "promotions": p["totals"].get("promotions", 0),
            "saved_s": round(p["totals"].get("saved_s", 0.0), 1),
            "per_task_s": [t["wall_s"] for t in p["report"]["tasks"]],
            "upstream_calls": p["upstream_calls"],
            "identical": runner._identical(baseline["report"]["tasks"], p["report"]["tasks"]),
            "differences": _differences(baseline["report"]["tasks"], p["report"]["tasks"]),
            "connections_per_replica": p["connections"],
        }
    return rows


def _differences(baseline: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[str]:
    """Where the agent saw something else than in the baseline: task, call, what."""
    out = []
    for b, o in zip(baseline, other, strict=True):
        for i, (rb, ro) in enumerate(itertools.zip_longest(b["tool_results"], o["tool_results"])):
            if rb != ro:
                what = f"{(rb or {}).get('tool')}({(rb or {}).get('arguments')})"
                out.append(f"{b['id']} call {i + 1} {what}: {(ro or {}).get('result')!r:.120}")
                break
        else:
            if b["answer"] != o["answer"]:
                out.append(f"{b['id']}: final answer differs")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workload", choices=("mixed", "reads"), default="mixed")
    ap.add_argument("--think", type=float, default=1.25)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--redis", default=None, metavar="URL", help="use this Redis")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="work (and keep logs) in DIR"
    )
    args = ap.parse_args()
    try:
        out = asyncio.run(asyncio.wait_for(bench(args), args.timeout))
    except runner.DemoError as exc:
        print(f"bench/replicas.py: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"bench/replicas.py: did not finish within {args.timeout:g} s", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"{out['replicas']} replicas, {out['tasks']} {out['workload']} tasks "
        f"({out['read_calls']} read calls), {out['warmup_tasks']} warm-up tasks, "
        f"seed {out['seed']}, {out['concurrency']} at a time"
    )
    print(
        "| run | wall s | reduction | hits | hit rate | wasted | tool s saved | identical "
        "| connections |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name, r in out["runs"].items():
        rate = "" if r["hit_rate"] is None else f"{r['hit_rate']:.1%}"
        print(
            f"| {name} | {r['wall_s']:.1f} | {r['reduction']:.1%} | {r['hits']} | {rate} "
            f"| {r['wasted']} | {r['saved_s']:.1f} | {r['identical']} "
            f"| {r['connections_per_replica']} |"
        )
    for name, r in out["runs"].items():
        for line in r["differences"]:
            print(f"{name}: not as in the baseline: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
