"""Real agents through a real `prefire run`: the pieces the end-to-end tests and
bench/agents.py share. Runs in prefire's own venv; each agent and its tool server run as
subprocesses in the agent's venv (.venv-agents/, made by bench/agents/setup.sh).

One pass = a fresh tool server (so every pass starts from the same world), a `prefire run`
with its own state dir, the agent run through it by environment only; the scripted model
serves every pass. What a pass returns says what the agent saw (its report), what the tool
server ran and in which MCP session (its log), and what prefire did (its log and stats).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.agents.profile import Timeline, after_startup, breakdown
from bench.agents.tasks import SCRIPT, TEMPLATES, make_tasks
from bench.agents.world import READ_TOOLS, WRITE_TOOLS
from prefire.proxy.demo.runner import read_stats, run_through_proxy
from prefire.proxy.demo.scripted_llm import ScriptedLLM
from prefire.proxy.demo.tools import serve_app
from prefire.proxy.learner import SNAPSHOT_NAME
from prefire.proxy.state import PROXY_ENV_KEYS, StateDir

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "bench" / "agents"
VENVS = ROOT / ".venv-agents"
START_TIMEOUT_S = 30.0
PREFIRE_ID = "prefire-"  # how prefire's own JSON-RPC ids start
_RESERVED_META = "modelcontextprotocol"  # in the `_meta` keys the MCP spec reserves


@dataclass(frozen=True)
class Client:
    """An agent program and the venv (setup part) it runs in."""

    name: str
    part: str  # .venv-agents/PART
    program: str  # in bench/agents/
    api: str  # the LLM API it speaks
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # other setup parts it runs from (the Node clients)

    @property
    def python(self) -> Path:
        return VENVS / self.part / "bin" / "python"

    def unavailable(self) -> str | None:
        """Why this client cannot run here, or None."""
        for part in (self.part, *self.needs):
            failed = VENVS / f"{part}.failed"
            if failed.exists():
                return f".venv-agents/{part}: {failed.read_text().strip()}"
            if not (VENVS / f"{part}.ok").exists():
                return f".venv-agents/{part} is missing: run bash bench/agents/setup.sh"
        if not self.python.exists():
            return f".venv-agents/{self.part} is missing: run bash bench/agents/setup.sh"
        return None


CLIENTS = {
    c.name: c
    for c in (
        Client("agents-sdk-mcp2", "mcp2", "agents_sdk.py", "OpenAI Responses"),
        Client("agents-sdk-mcp1", "mcp1", "agents_sdk.py", "OpenAI Responses"),
        # Runner.run_streamed, each turn sending only its new items (previous_response_id)
        Client(
            "agents-sdk-mcp2-streamed",
            "mcp2",
            "agents_sdk.py",
            "OpenAI Responses, streamed, previous_response_id",
            ("--stream", "--chain", "previous"),
        ),
        Client("langgraph", "mcp1", "langgraph_agent.py", "OpenAI Chat Completions"),
        # the providers' own SDKs on mcp 2.x (setup part sdks)
        Client("anthropic-sdk", "sdks", "anthropic_agent.py", "Anthropic Messages"),
        Client(
            "anthropic-sdk-streamed",
            "sdks",
            "anthropic_agent.py",
            "Anthropic Messages, streamed",
            ("--stream",),
        ),
        Client("genai", "sdks", "genai_agent.py", "Gemini generateContent"),
        Client(
            "genai-streamed",
            "sdks",
            "genai_agent.py",
            "Gemini streamGenerateContent (SSE)",
            ("--stream",),
        ),
        # the Node clients from npm, against the FastMCP server (mcp 1.x)
        *(
            Client(name, "mcp1", "node_agent.py", api, ("--client", name, *extra), (part,))
            for name, api, extra, part in (
                ("claude-code", "Anthropic Messages", (), "node"),
                ("claude-code-native", "Anthropic Messages", (), "claude-native"),
                ("codex", "OpenAI Responses", (), "node"),
            )
        ),
    )
}


def rules_yaml(chain_depth: int | None = None) -> str:
    """Reads may run early; the write never, and it drops what it may change.
    `chain_depth`: the budget max_chain_depth (None: the default)."""
    lines = ["# written by bench/agents: reads may run early, the write never", "rules:"]
    lines += [f"  - match: {{tool: {t}}}\n    prefire: true\n    ttl: 60" for t in READ_TOOLS]
    lines += [
        f"  - match: {{tool: {t}}}\n    prefire: false\n    invalidates: [get_team]"
        for t in WRITE_TOOLS
    ]
    if chain_depth is not None:
        lines += ["budgets:", f"  max_chain_depth: {chain_depth}"]
    return "\n".join(lines) + "\n"


@dataclass
class Pass:
    """One agent run through one proxy."""

    name: str
    report: dict[str, Any]  # the agent's
    tool_log: list[dict[str, Any]]  # the tool server's, one record per request
    proxy_log: list[dict[str, Any]]  # prefire's JSON log lines
    stats: dict[str, Any] | None = None  # prefire stats --json (tools, totals)
    stats_error: str | None = None
    state: Path = field(default_factory=Path)

    @property
    def wall_s(self) -> float:
        return float(self.report["wall_s"])

    def seen(self) -> list[tuple[str, str, list[Any]]]:
        """What the agent saw, task by task: answer and every tool call with its result."""
        return [(t["id"], t["answer"], t["tool_calls"]) for t in self.report["tasks"]]

    def calls(self) -> list[dict[str, Any]]:
        return [r for r in self.tool_log if r.get("method") == "tools/call"]

    def early_calls(self) -> list[dict[str, Any]]:
        """The tools/call requests prefire made itself."""
        return [r for r in self.calls() if str(r.get("rpc_id", "")).startswith(PREFIRE_ID)]

    def agent_sessions(self) -> set[str]:
        """MCP sessions the agent used: any request in them with a JSON-RPC id that is not
        prefire's (notifications and DELETEs carry no id: prefire's own session has them too)."""
        return {
            str(r["session"] or r["new_session"])
            for r in self.tool_log
            if (r["session"] or r.get("new_session"))
            and r.get("rpc_id") is not None
            and not str(r["rpc_id"]).startswith(PREFIRE_ID)
        }

    def early_in_agent_sessions(self) -> list[dict[str, Any]]:
        """prefire's calls that ran in a session an agent task opened: never allowed."""
        theirs = self.agent_sessions()
        return [r for r in self.early_calls() if r["session"] in theirs]

    def agent_in_prefire_sessions(self) -> list[dict[str, Any]]:
        """The agent's own requests that came in a session prefire opened for its early
        calls (a client that adopts the Mcp-Session-Id of a response it was served): never
        allowed either."""
        ours = {
            r.get("new_session")
            for r in self.tool_log
            if r.get("method") == "initialize" and str(r.get("rpc_id")).startswith(PREFIRE_ID)
        }
        return [
            r
            for r in self.tool_log
            if r.get("rpc_id") is not None
            and not str(r["rpc_id"]).startswith(PREFIRE_ID)
            and r["session"] in ours
        ]

    def early_failed(self) -> list[dict[str, Any]]:
        """prefire's calls the server refused or answered with an error (not those prefire
        gave up before the answer, which have no status: a write invalidated them, say)."""
        return [
            r
            for r in self.early_calls()
            if "status" in r and (r["status"] != 200 or "error" in r or r.get("is_error"))
        ]

    def early_unlike_agent(self, baseline: Pass) -> list[dict[str, Any]]:
        """prefire's calls that did not speak as the agent's own calls did: protocol
        version, per-request headers (mcp-method, mcp-name) and `_meta` envelope keys: those
        the protocol reserves (io.modelcontextprotocol/...), not what a client adds of its
        own to each call (Claude Code's claudecode/toolUseId, Codex's callId, a
        progressToken), which no early call can know."""

        def shape(r: dict[str, Any]) -> tuple[Any, ...]:
            named = r.get("mcp_name") == r.get("tool")
            envelope = tuple(k for k in r.get("meta_keys") or () if _RESERVED_META in k)
            return (r.get("protocol"), r.get("mcp_method"), named, envelope)

        early = self.early_calls()
        # the baseline's calls too: served every call, the agent may make none upstream
        agents = {shape(r) for r in [*self.calls(), *baseline.calls()] if r not in early}
        return [r for r in early if shape(r) not in agents]

    def results(self) -> dict[str, Any]:
        """Tool and canonical arguments -> the result the server gave, for every call."""
        return {
            f"{r['tool']} {json.dumps(r.get('arguments'), sort_keys=True)}": r.get("result")
            for r in self.calls()
            if "result" in r
        }

    def misses(self) -> Counter[str]:
        """Why each of the agent's own calls that reached the tool server was not answered
        early: a write (never early); the same call made twice in the task (an early
        result serves one call); fired earlier but gone (invalidated by a write, expired,
        used elsewhere); or not fired before the agent asked."""
        early = self.early_calls()
        twice = Counter(
            (task_id, name, _canonical(args))
            for task_id, _, calls in self.seen()
            for name, args, _ in calls
        )
        doubled = {(name, args) for (_, name, args), n in twice.items() if n > 1}
        why: Counter[str] = Counter()
        for r in self.calls():
            if r in early:
                continue
            key = (r["tool"], _canonical(r.get("arguments")))
            if r["tool"] in WRITE_TOOLS:
                why["write"] += 1
            elif key in doubled:
                why["same call twice in a task"] += 1
            elif any(
                (e["tool"], _canonical(e.get("arguments"))) == key and e["t0"] < r["t0"]
                for e in early
            ):
                why["fired, gone before the call"] += 1
            else:
                why["not fired before the call"] += 1
        return why

    def writes(self) -> Counter[str]:
        return Counter(r["tool"] for r in self.calls() if r["tool"] in WRITE_TOOLS)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def agent_env() -> dict[str, str]:
    """This process's environment without proxy settings (the pass sets its own)."""
    return {k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS}


@asynccontextmanager
async def serve_llm(
    seed: int, think_s: tuple[float, float]
) -> AsyncIterator[tuple[str, ScriptedLLM]]:
    """The scripted model on loopback; yields its base URL (…/v1) and the model."""
    llm = ScriptedLLM(SCRIPT, seed, think_s)
    llm.timeline = Timeline()  # type: ignore[attr-defined]
    llm.app.middlewares.append(llm.timeline.middleware)  # type: ignore[attr-defined]
    async with serve_app(llm.app) as url:
        yield url + "/v1", llm


@asynccontextmanager
async def tool_server(
    client: Client, log: Path, seed: int, latency_scale: float
) -> AsyncIterator[str]:
    """The MCP tool server in the client's venv (its mcp SDK); yields its URL."""
    out = log.with_suffix(".out")
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *(str(client.python), "-m", "bench.agents.tool_server", "--log", str(log)),
            *("--seed", str(seed), "--latency-scale", str(latency_scale)),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            env=agent_env(),
        )
    try:
        url = await _wait_for_line(proc, out, "tool server listening on ")
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _wait_for_line(proc: asyncio.subprocess.Process, out: Path, prefix: str) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        text = _read(out)
        for line in text.splitlines():
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
        if proc.returncode is not None:
            raise RuntimeError(f"the tool server exited with {proc.returncode}:\n{text}")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the tool server did not start in {START_TIMEOUT_S:g} s")


def _read(path: Path) -> str:
    """A small local file, read between polls: not worth a thread."""
    return path.read_text(errors="replace")


async def run_pass(
    client: Client,
    tmp: Path,
    name: str,
    *,
    llm_url: str,
    tasks: list[dict[str, str]],
    speculate: bool,
    seed: int = 1,
    latency_scale: float = 1.0,
    concurrency: int = 2,
    learned_from: Path | None = None,
    chain_depth: int | None = None,
) -> Pass:
    """One pass; `learned_from`: a state dir whose learned patterns this pass starts from."""
    rules = tmp / "rules.yaml"
    rules.write_text(rules_yaml(chain_depth))
    state = StateDir(tmp / name)
    if learned_from is not None:
        state.root.mkdir(parents=True, exist_ok=True)
        shutil.copy(learned_from / SNAPSHOT_NAME, state.root / SNAPSHOT_NAME)
    task_file = tmp / f"{name}-tasks.json"
    task_file.write_text(json.dumps(tasks))
    tool_log, proxy_log = tmp / f"{name}-tools.jsonl", tmp / f"{name}-proxy.log"
    flags = ["--rules", str(rules), *([] if speculate else ["--no-speculate"])]
    async with tool_server(client, tool_log, seed, latency_scale) as mcp_url:
        agent = [str(client.python), str(AGENTS / client.program), *client.args]
        agent += ["--llm", llm_url, "--mcp", mcp_url, "--tasks", str(task_file)]
        agent += ["--concurrency", str(concurrency)]
        out = await run_through_proxy(state, flags, agent, log=proxy_log)
    (tmp / f"{name}-report.json").write_bytes(out)
    result = Pass(
        name=name,
        report=json.loads(out),
        tool_log=_json_lines(tool_log),
        proxy_log=_json_lines(proxy_log),
        state=state.root,
    )
    if speculate:
        result.stats, result.stats_error = await read_stats(state.root)
    return result


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_bytes().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out


async def measure(
    client: Client,
    tmp: Path,
    *,
    tasks: int,
    warmup: int,
    seed: int = 1,
    think_s: tuple[float, float] = (1.0, 1.5),
    latency_scale: float = 1.0,
    concurrency: int = 2,
    kinds: tuple[str, ...] = tuple(TEMPLATES),
    chain_depth: int | None = None,
) -> dict[str, Any]:
    """Warm-up (other tasks, learning only), baseline (--no-speculate) and speculative
    passes of the same tasks; what changed. The speculative pass starts from what the
    warm-up learned, as a deployed proxy has seen earlier tasks of the same agent.
    `kinds`: which kinds of task (bench/agents/tasks.py) the tasks cycle through."""
    measured = make_tasks(tasks, seed, kinds)
    common: dict[str, Any] = {
        "seed": seed,
        "latency_scale": latency_scale,
        "concurrency": concurrency,
        "chain_depth": chain_depth,
    }
    async with serve_llm(seed, think_s) as (llm_url, llm):
        learned = await _warm_up(client, tmp, llm_url, warmup, kinds, **common)
        base = await run_pass(
            client, tmp, "baseline", llm_url=llm_url, tasks=measured, speculate=False, **common
        )
        llm.requests.clear()
        spec = await run_pass(
            client,
            tmp,
            "speculative",
            llm_url=llm_url,
            tasks=measured,
            speculate=True,
            learned_from=learned,
            **common,
        )
    return summarize(
        client,
        base,
        spec,
        tasks=tasks,
        warmup=warmup,
        kinds=list(kinds),
        llm_requests=dict(llm.requests),  # of the speculative pass: the shapes the client sent
        profile=breakdowns([base, spec], measured, llm.timeline),  # type: ignore[attr-defined]
        **common,
    )


async def _warm_up(
    client: Client,
    tmp: Path,
    llm_url: str,
    warmup: int,
    kinds: tuple[str, ...],
    **common: Any,
) -> Path | None:
    """Other tasks than the measured ones, learning only: what the warm-up learned."""
    if not warmup:
        return None
    warm = await run_pass(
        client,
        tmp,
        "warmup",
        llm_url=llm_url,
        tasks=make_tasks(warmup, common["seed"] + 1000, kinds),
        speculate=False,
        **common,
    )
    return warm.state


def breakdowns(passes: list[Pass], tasks: list[dict[str, str]], timeline: Timeline) -> dict:
    """Where each pass's time went (bench/agents/profile.py), by pass name."""
    prompts = {t["id"]: t["prompt"] for t in tasks}
    return {p.name: breakdown(p.report["tasks"], prompts, timeline) for p in passes}


def summarize(client: Client, base: Pass, spec: Pass, **facts: Any) -> dict[str, Any]:
    totals = (spec.stats or {}).get("totals") or {}
    both = {k: spec.results()[k] for k in base.results().keys() & spec.results().keys()}
    return {
        "client": client.name,
        "version": spec.report["version"],
        "api": client.api,
        **facts,
        "baseline_s": base.wall_s,
        "speculative_s": spec.wall_s,
        "reduction": round((base.wall_s - spec.wall_s) / base.wall_s, 3),
        "reduction_after_startup": after_startup(
            *((facts.get("profile") or {}).get(p) for p in ("baseline", "speculative"))
        ),
        "fired": totals.get("fired"),
        "hits": totals.get("used"),
        # eager (the model had emitted the call) or predicted (it had not yet)
        "hits_by_kind": dict(
            Counter(r.get("kind") for r in spec.proxy_log if r.get("event") == "speculate.served")
        ),
        "wasted": totals.get("wasted"),
        "failed": totals.get("failed"),
        "chained": totals.get("chained"),
        "chained_used": totals.get("chained_used"),
        "early_calls": len(spec.early_calls()),
        "baseline_early_calls": len(base.early_calls()),
        "early_failed": len(spec.early_failed()),
        "early_unlike_agent": len(spec.early_unlike_agent(base)),
        "identical": base.seen() == spec.seen(),
        "first_difference": first_difference(base, spec),
        # every call both passes made got the same result from the tool server
        "same_tool_results": all(base.results()[k] == v for k, v in both.items()),
        "writes": {"baseline": dict(base.writes()), "speculative": dict(spec.writes())},
        "early_writes": sum(r["tool"] in WRITE_TOOLS for r in spec.early_calls()),
        # the agent's calls that went to the tool server with speculation on, and why
        "misses": dict(spec.misses()),
        "early_in_agent_sessions": len(spec.early_in_agent_sessions()),
        "agent_in_prefire_sessions": len(spec.agent_in_prefire_sessions()),
        "stats_error": spec.stats_error,
        "speculation": (spec.stats or {}).get("tools"),
    }


def first_difference(base: Pass, spec: Pass) -> str | None:
    """Where the agent first saw something else with speculation, or None."""
    for (tid, answer, calls), (_, answer2, calls2) in zip(base.seen(), spec.seen(), strict=True):
        for k, (call, call2) in enumerate(zip(calls, calls2, strict=False)):
            if call != call2:
                return f"{tid} call {k}: {call!r} became {call2!r}"
        if len(calls) != len(calls2):
            return f"{tid}: {len(calls)} tool calls became {len(calls2)}"
        if answer != answer2:
            return f"{tid} answer: {answer!r} became {answer2!r}"
    return None
