"""`prefire demo`: one agent workload run twice through `prefire run`, first without
speculation (the baseline), then with it, and what changed.

Everything stays on loopback. The scripted LLM and the two tool servers run in this
process's event loop; each proxy (`prefire run`, with its own state dir) and each agent
run is a subprocess, the agent reaching everything through its proxy by environment only.
The tool servers' data is reset between the runs, so both start from the same world.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from prefire.patterns.canonical import loads_or_none
from prefire.patterns.ceilings import Ceilings, Timed, Turn, ceilings
from prefire.proxy.learner import SNAPSHOT_NAME
from prefire.proxy.state import PROXY_ENV_KEYS, StateDir

if TYPE_CHECKING:
    from prefire.proxy.demo.tools import World

START_TIMEOUT_S = 30.0
_MAX_REPORT = 64 << 20  # the agent's report is one line holding every tool result
STOP_TIMEOUT_S = 15.0
_NEEDS = ("mcp", "openai", "uvicorn", "httpx")


class DemoError(Exception):
    """The demo could not run; the message says what failed and shows its output."""


def run(
    tasks: int = 12,
    seed: int = 1,
    concurrency: int = 4,
    think_s: float = 1.25,
    timeout_s: float = 180.0,
    as_json: bool = False,
    warmup: int = 12,
    workload: str = "mixed",
    capture: Path | None = None,
    chain_depth: int | None = None,
) -> int:
    """Run the demo and print the comparison (a table, or one JSON object). Exit status."""
    missing = [m for m in _NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"prefire demo: missing {', '.join(missing)}; install them with "
            "pip install 'prefire[demo]'",
            file=sys.stderr,
        )
        return 2
    if not 1 <= tasks <= 60 or not 0 <= warmup <= 60 or concurrency < 1 or think_s <= 0:
        print(
            "prefire demo: --tasks must be 1 to 60, --warmup 0 to 60, --concurrency at least 1, "
            "--think above 0",
            file=sys.stderr,
        )
        return 2
    # Progress goes to stderr, also with --json: stdout stays the one JSON object.
    progress = _to_stderr
    try:
        summary = asyncio.run(
            _bounded(
                timeout_s,
                _demo(
                    tasks,
                    seed,
                    concurrency,
                    think_s,
                    warmup,
                    workload,
                    progress,
                    capture,
                    chain_depth,
                ),
            )
        )
    except DemoError as exc:
        print(f"prefire demo: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"prefire demo: did not finish within {timeout_s:g} s (--timeout)", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("prefire demo: stopped", file=sys.stderr)
        return 130
    print(json.dumps(summary) if as_json else format_table(summary))
    return 0


async def _bounded(timeout_s: float, work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """`work` within the time limit. SIGTERM cancels it as Ctrl-C does, so either way the
    servers and subprocesses are stopped on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with asyncio.timeout(timeout_s):
        return await work


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class TaskProgress:
    """Progress of one agent run, task by task, on a stream: a bar redrawn in place on
    a terminal, a line per finished task otherwise (a log, CI)."""

    WIDTH = 30

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label, self.total, self.done = label, total, 0
        self.tty = self.stream.isatty()
        if self.tty:
            self._draw()

    def task_done(self, task_id: str, wall_s: float) -> None:
        self.done += 1
        if self.tty:
            self._draw()
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(
                f"    {self.label}: task {task_id} done in {wall_s:.1f} s "
                f"({self.done}/{self.total})\n"
            )
        self.stream.flush()

    def _draw(self) -> None:
        filled = self.WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r    {self.label} [{bar}] {self.done}/{self.total} tasks")
        self.stream.flush()


async def _demo(
    n: int,
    seed: int,
    concurrency: int,
    think_s: float,
    warmup: int,
    workload: str,
    progress: Callable[[str], None],
    capture: Path | None = None,
    chain_depth: int | None = None,
) -> dict[str, Any]:
    # Imported here so that a missing extra is reported above, not as a traceback.
    from prefire.proxy.demo.llm_server import ScriptedLLM, make_tasks
    from prefire.proxy.demo.tools import (
        World,
        build_mcp,
        build_rest,
        serve_app,
        serve_mcp,
    )

    with tempfile.TemporaryDirectory(prefix="prefire-demo-") as tmp_name:
        tmp = Path(tmp_name)
        world = World(seed)
        llm = ScriptedLLM(seed, (think_s * 0.8, think_s * 1.2))
        async with (
            serve_app(llm.app) as llm_url,
            serve_app(build_rest(world)) as rest_url,
            serve_mcp(build_mcp(world)) as mcp_url,
        ):
            rules = tmp / "rules.yaml"
            rules.write_text(rules_yaml(rest_url, chain_depth))
            task_file = tmp / "tasks.json"
            task_file.write_text(json.dumps(make_tasks(n, seed, sorted(world.users), workload)))
            agent_args = [
                *("--llm", llm_url + "/v1", "--mcp", mcp_url, "--rest", rest_url),
                *("--tasks", str(task_file), "--concurrency", str(concurrency)),
            ]
            progress(f"prefire demo: {n} {workload} tasks, {concurrency} at a time, seed {seed}")
            if warmup:
                await _warm_up(tmp, world, rules, agent_args, warmup, seed, workload, progress)
            baseline, baseline_calls, speculative, speculative_calls = await _passes(
                tmp, world, rules, agent_args, n, capture, progress
            )
            stats, stats_error = await read_stats(tmp / "speculative")

    return _report(
        baseline,
        speculative,
        (baseline_calls, speculative_calls),
        stats,
        stats_error,
        {
            "tasks": n,
            "warmup_tasks": warmup,
            "workload": workload,
            "seed": seed,
            "concurrency": concurrency,
        },
    )


async def _warm_up(
    tmp: Path,
    world: World,
    rules: Path,
    agent_args: list[str],
    warmup: int,
    seed: int,
    workload: str,
    progress: Callable[[str], None],
) -> None:
    """prefire learns online; a deployed proxy has seen earlier tasks of the same agent.
    Other tasks (another seed) teach it first, through a proxy that only observes, and the
    speculative run starts from what that proxy learned."""
    from prefire.proxy.demo.llm_server import make_tasks

    progress(f"  warm-up: {warmup} other tasks through prefire run --no-speculate ...")
    warm_file = tmp / "warmup.json"
    warm_file.write_text(json.dumps(make_tasks(warmup, seed + 1000, sorted(world.users), workload)))
    warm_args = [*agent_args]
    warm_args[warm_args.index("--tasks") + 1] = str(warm_file)
    await _run_pass(
        tmp,
        "warmup",
        ["--no-speculate", "--rules", str(rules)],
        warm_args,
        TaskProgress("warm-up", warmup),
    )
    world.reset()
    (tmp / "speculative").mkdir()
    shutil.copy(tmp / "warmup" / SNAPSHOT_NAME, tmp / "speculative" / SNAPSHOT_NAME)


async def _passes(
    tmp: Path,
    world: World,
    rules: Path,
    agent_args: list[str],
    n: int,
    capture: Path | None,
    progress: Callable[[str], None],
) -> tuple[dict[str, Any], Counter[str], dict[str, Any], Counter[str]]:
    """The baseline run, then the speculative one: each pass's result and the calls the
    tool servers saw."""
    progress("  baseline run (prefire run --no-speculate) ...")
    # --capture: the baseline's traffic, as the agent made it, for prefire replay
    keep = ["--capture", str(capture)] if capture is not None else []
    baseline = await _run_pass(
        tmp,
        "baseline",
        ["--no-speculate", "--rules", str(rules), *keep],
        agent_args,
        TaskProgress("baseline", n),
    )
    if capture is not None:
        await asyncio.to_thread(shutil.copyfile, rules, capture / "rules.yaml")
    baseline_calls = world.reset()
    progress(f"  {baseline['wall_s']:.1f} s; speculative run (prefire run) ...")
    speculative = await _run_pass(
        tmp,
        "speculative",
        ["--rules", str(rules)],
        agent_args,
        TaskProgress("speculative", n),
    )
    speculative_calls = world.reset()
    progress(f"  {speculative['wall_s']:.1f} s")
    return baseline, baseline_calls, speculative, speculative_calls


def _report(
    baseline: dict[str, Any],
    speculative: dict[str, Any],
    calls: tuple[Counter[str], Counter[str]],
    stats: dict[str, Any] | None,
    stats_error: str | None,
    run: dict[str, Any],
) -> dict[str, Any]:
    """The demo's JSON report (`run`: how it was run)."""
    from prefire.proxy.demo.llm_server import GAVE_UP
    from prefire.proxy.demo.tools import WRITE_TOOLS

    totals = stats["totals"] if stats else None
    both = baseline["tasks"] + speculative["tasks"]
    b, s = baseline["wall_s"], speculative["wall_s"]
    baseline_calls, speculative_calls = calls
    return {
        "baseline_s": b,
        "speculative_s": s,
        "reduction": round((b - s) / b, 3),
        "hits": totals["used"] if totals else None,
        # every early call that answered nothing: wasted, failed or expired
        "wasted": sum(totals.get(k, 0) for k in ("wasted", "failed", "expired"))
        if totals
        else None,
        "identical": _identical(baseline["tasks"], speculative["tasks"]),
        **run,
        "tool_calls": sum(len(t["tool_results"]) for t in baseline["tasks"]),
        "gave_up": sum(t["answer"].startswith(GAVE_UP) for t in both),
        "fired": totals["fired"] if totals else None,
        "promotions": totals["promotions"] if totals else None,
        "chained": totals.get("chained") if totals else None,
        "chained_used": totals.get("chained_used") if totals else None,
        "saved_s": totals["saved_s"] if totals else None,
        # hits by how the call started: eager ones were not predicted, only started sooner
        "eager_used": totals.get("eager_used") if totals else None,
        "eager_saved_s": totals.get("eager_saved_s") if totals else None,
        "chained_saved_s": totals.get("chained_saved_s") if totals else None,
        "stats_error": stats_error,
        "upstream_calls": {
            "baseline": dict(sorted(baseline_calls.items())),
            "speculative": dict(sorted(speculative_calls.items())),
        },
        # Any write the servers saw more often with speculation ran early: never allowed.
        "writes_run_early": any(speculative_calls[t] > baseline_calls[t] for t in WRITE_TOOLS),
        # what a perfect speculator could save, from the baseline run's own timings
        "ceilings": task_ceilings(baseline["tasks"], WRITE_TOOLS),
        "per_task": [
            {"id": bt["id"], "baseline_s": bt["wall_s"], "speculative_s": st["wall_s"]}
            for bt, st in zip(baseline["tasks"], speculative["tasks"], strict=True)
        ],
        "speculation": stats["tools"] if stats else None,
    }


def task_ceilings(reports: list[dict[str, Any]], writes: tuple[str, ...]) -> dict[str, Any]:
    """The ceilings (patterns/ceilings.py) of the tasks as the agent ran them, summed:
    seconds and the share of the base each would save."""
    total = Ceilings(0.0, 0.0, 0.0, 0.0)
    for report in reports:
        results = iter(report["tool_results"])
        turns = []
        for t in report.get("turns", []):
            calls = []
            for took in t["tools_s"]:
                r = next(results)
                args = loads_or_none(r["arguments"]) if r["arguments"] else {}
                calls.append(Timed(r["tool"], args, r["result"], took, r["tool"] not in writes))
            turns.append(Turn(t["llm_s"], tuple(calls)))
        total = total + ceilings(report.get("prompt", ""), turns)
    seconds = {k: round(v, 3) for k, v in asdict(total).items()}
    return {"seconds": seconds, **total.reductions()}


def rules_yaml(rest_url: str, chain_depth: int | None = None) -> str:
    """Reads may run early; writes never, and they drop the cached reads they change. The
    REST reads come with a declared binding, so prefire can call them from the first task
    on rather than after learning their URLs from traffic. `chain_depth`: the budget
    max_chain_depth (None: the default)."""
    from prefire.proxy.demo.tools import INVALIDATES, READ_TOOLS, REST_TOOLS, WRITE_TOOLS

    rest = {t.name: t for t in REST_TOOLS}
    lines = ["# written by prefire demo: reads may run early, writes never", "rules:"]
    for name in READ_TOOLS:
        lines += [f"  - match: {{tool: {name}}}", "    prefire: true", "    ttl: 60"]
        if name in rest:
            # JSON strings are YAML strings; the template's {placeholders} stay as they are
            url = json.dumps(rest_url + rest[name].path)
            lines.append(f"    rest: {{method: {rest[name].method}, url: {url}}}")
    for name in WRITE_TOOLS:
        lines += [f"  - match: {{tool: {name}}}", "    prefire: false"]
        if INVALIDATES[name]:
            lines.append(f"    invalidates: {json.dumps(list(INVALIDATES[name]))}")
    if chain_depth is not None:
        lines += ["budgets:", f"  max_chain_depth: {chain_depth}"]
    return "\n".join(lines) + "\n"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS}


async def _run_pass(
    tmp: Path, name: str, proxy_flags: list[str], agent_args: list[str], progress: TaskProgress
) -> dict[str, Any]:
    """One proxy, one demo agent run through it; returns the agent's report."""
    agent = [sys.executable, "-m", "prefire.proxy.demo.agent", *agent_args]
    out = await run_through_proxy(
        StateDir(tmp / name), proxy_flags, agent, on_line=_task_done(progress)
    )
    if not out.strip():
        raise DemoError("the demo agent printed no report")
    # the report is the last line; the lines before it said which task finished
    return json.loads(out.splitlines()[-1])


async def run_through_proxy(
    state: StateDir,
    proxy_flags: list[str],
    agent: list[str],
    log: Path | None = None,
    on_line: Callable[[bytes], None] | None = None,
) -> bytes:
    """Start `prefire run` with its state in `state` (it creates it), run the `agent`
    command through it by environment only, stop the proxy; returns the agent's stdout,
    each line of which `on_line` is told as it comes. The proxy's JSON log goes to `log`
    (default: beside the state dir)."""
    out_path = state.root.with_name(state.root.name + "-proxy.out")
    log_path = log or state.root.with_name(state.root.name + "-proxy.log")
    async with contextlib.AsyncExitStack() as stack:
        # Files, not pipes: nobody has to keep reading them while the proxy runs.
        out = stack.enter_context(out_path.open("wb"))
        log_file = stack.enter_context(log_path.open("wb"))
        proxy = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "prefire.cli.main", "run", "--listen-host", "127.0.0.1"),
            *("--listen-port", "0", "--state-dir", str(state.root), "--log-format", "json"),
            *proxy_flags,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=log_file,
            env=_clean_env(),
        )
        stack.push_async_callback(_stop, proxy)
        url = await _listening_url(proxy, out_path, log_path)
        env = {
            **_clean_env(),
            "HTTPS_PROXY": url,
            "HTTP_PROXY": url,
            "SSL_CERT_FILE": str(state.ca_bundle),
            "REQUESTS_CA_BUNDLE": str(state.ca_bundle),
        }
        report = await _run_agent(agent, env, on_line)
        # The proxy writes its final counters as it exits, so stop it before reading them.
        status = await _stop(proxy)
        if status != 0:
            raise DemoError(f"prefire run exited with {status}:\n{_tail_of(log_path)}")
    return report


async def _run_agent(
    agent: list[str], env: dict[str, str], on_line: Callable[[bytes], None] | None
) -> bytes:
    """Run the `agent` command; returns its stdout, each line told to `on_line` as it comes."""
    proc = await asyncio.create_subprocess_exec(
        *agent,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        limit=_MAX_REPORT,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        errors = asyncio.ensure_future(proc.stderr.read())
        lines = []
        async for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line)
        await proc.wait()
        if proc.returncode != 0:
            raise DemoError(
                f"the agent failed (exit status {proc.returncode}):\n{_tail(await errors)}"
            )
        return b"".join(lines)
    finally:
        await _stop(proc)


def _task_done(progress: TaskProgress) -> Callable[[bytes], None]:
    """Reads the demo agent's stdout lines: {"done": ID, "wall_s": S} as each task ends."""

    def on_line(line: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = json.loads(line)
            if isinstance(message, dict) and "done" in message:
                progress.task_done(str(message["done"]), float(message["wall_s"]))

    return on_line


async def _listening_url(proc: asyncio.subprocess.Process, out: Path, log: Path) -> str:
    """The proxy's URL, from the first line `prefire run` prints."""
    prefix = "prefire listening on "
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        first = _first_line(out)
        if first is not None:
            if not first.startswith(prefix):
                raise DemoError(f"prefire run printed {first!r}, not {prefix!r}...")
            return first.removeprefix(prefix)
        if proc.returncode is not None:
            raise DemoError(f"prefire run exited with {proc.returncode}:\n{_tail_of(log)}")
        await asyncio.sleep(0.05)
    raise DemoError(f"prefire run did not start in {START_TIMEOUT_S:g} s:\n{_tail_of(log)}")


# Small local files, read between polls or after a process ended: not worth a thread.
def _first_line(path: Path) -> str | None:
    first, newline, _ = path.read_text().partition("\n")
    return first if newline else None


def _tail_of(path: Path) -> str:
    return _tail(path.read_bytes())


async def _stop(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


async def read_stats(state_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """`prefire stats --json` of the speculative run, or why there is none."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "prefire.cli.main", "stats", "--state-dir", str(state_dir)),
        "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT_S)
    finally:
        await _stop(proc)
    if proc.returncode != 0:
        return None, _tail(err) or f"prefire stats exited with {proc.returncode}"
    try:
        stats = json.loads(out)
        return {"tools": stats["tools"], "totals": stats["totals"]}, None
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"prefire stats printed something unexpected: {exc!r}"


def _identical(baseline: list[dict[str, Any]], speculative: list[dict[str, Any]]) -> bool:
    """Whether the agent saw the same thing in both runs: every tool call, every result
    (byte for byte) and every final answer, task by task."""
    seen = [(t["id"], t["tool_results"], t["answer"]) for t in baseline]
    return seen == [(t["id"], t["tool_results"], t["answer"]) for t in speculative]


def _tail(output: bytes, lines: int = 20) -> str:
    return "\n".join(output.decode(errors="replace").strip().splitlines()[-lines:])


def format_table(s: dict[str, Any]) -> str:
    def count(key: str) -> str:
        return "n/a" if s[key] is None else str(s[key])

    calls: dict[str, Counter[str]] = {k: Counter(v) for k, v in s["upstream_calls"].items()}
    rows = [
        f"prefire demo: {s['tasks']} tasks, {s['concurrency']} at a time, seed {s['seed']}; "
        f"{s['tool_calls']} tool calls per run",
        "",
        f"  {'task':<14}{'baseline':>10}{'speculative':>13}",
        *(
            f"  {t['id']:<14}{t['baseline_s']:>8.2f} s{t['speculative_s']:>11.2f} s"
            for t in s["per_task"]
        ),
        "",
        f"  {'wall time, baseline':<28}{s['baseline_s']:.2f} s   (prefire run --no-speculate)",
        f"  {'wall time, speculative':<28}{s['speculative_s']:.2f} s   (prefire run)",
        f"  {'reduction':<28}{s['reduction']:.1%}",
        f"  {'hits':<28}{count('hits'):<9}(speculative results the agent used)",
        f"  {'wasted calls':<28}{count('wasted'):<9}(started early, never used)",
        f"  {'identical':<28}{'yes' if s['identical'] else 'NO':<9}"
        "(every tool result and answer the agent saw)",
        f"  {'calls the tool servers saw':<28}{calls['baseline'].total()} baseline, "
        f"{calls['speculative'].total()} speculative",
        f"  {'writes run early':<28}{'YES' if s['writes_run_early'] else 'none'}",
    ]
    if s["stats_error"]:
        rows.append(f"  (no speculation counters: {s['stats_error']})")
    return "\n".join(rows)
