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

from bench.agents.tasks import SCRIPT
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


@dataclass(frozen=True)
class Client:
    """An agent program and the venv (setup part) it runs in."""

    name: str
    part: str  # .venv-agents/PART
    program: str  # in bench/agents/
    api: str  # the LLM API it speaks
    args: tuple[str, ...] = ()

    @property
    def python(self) -> Path:
        return VENVS / self.part / "bin" / "python"

    def unavailable(self) -> str | None:
        """Why this client cannot run here, or None."""
        failed = VENVS / f"{self.part}.failed"
        if failed.exists():
            return f".venv-agents/{self.part}: {failed.read_text().strip()}"
        if not (VENVS / f"{self.part}.ok").exists() or not self.python.exists():
            return f".venv-agents/{self.part} is missing: run bash bench/agents/setup.sh"
        return None


CLIENTS = {
    c.name: c
    for c in (
        Client("agents-sdk-mcp2", "mcp2", "agents_sdk.py", "OpenAI Responses"),
        Client("agents-sdk-mcp1", "mcp1", "agents_sdk.py", "OpenAI Responses"),
        Client("langgraph", "mcp1", "langgraph_agent.py", "OpenAI Chat Completions"),
    )
}


def rules_yaml() -> str:
    """Reads may run early; the write never, and it drops what it may change."""
    lines = ["# written by bench/agents: reads may run early, the write never", "rules:"]
    lines += [f"  - match: {{tool: {t}}}\n    prefire: true\n    ttl: 60" for t in READ_TOOLS]
    lines += [
        f"  - match: {{tool: {t}}}\n    prefire: false\n    invalidates: [get_team]"
        for t in WRITE_TOOLS
    ]
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
            r["session"] or r.get("new_session")
            for r in self.tool_log
            if (r["session"] or r.get("new_session"))
            and r.get("rpc_id") is not None
            and not str(r["rpc_id"]).startswith(PREFIRE_ID)
        }

    def early_in_agent_sessions(self) -> list[dict[str, Any]]:
        """prefire's calls that ran in a session an agent task opened: never allowed."""
        theirs = self.agent_sessions()
        return [r for r in self.early_calls() if r["session"] in theirs]

    def results(self) -> dict[str, Any]:
        """Tool and canonical arguments -> the result the server gave, for every call."""
        return {
            f"{r['tool']} {json.dumps(r.get('arguments'), sort_keys=True)}": r.get("result")
            for r in self.calls()
            if "result" in r
        }

    def writes(self) -> Counter[str]:
        return Counter(r["tool"] for r in self.calls() if r["tool"] in WRITE_TOOLS)


def agent_env() -> dict[str, str]:
    """This process's environment without proxy settings (the pass sets its own)."""
    return {k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS}


@asynccontextmanager
async def serve_llm(seed: int, think_s: tuple[float, float]) -> AsyncIterator[str]:
    """The scripted model on loopback; yields its base URL (…/v1)."""
    async with serve_app(ScriptedLLM(SCRIPT, seed, think_s).app) as url:
        yield url + "/v1"


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
) -> Pass:
    """One pass; `learned_from`: a state dir whose learned patterns this pass starts from."""
    rules = tmp / "rules.yaml"
    rules.write_text(rules_yaml())
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
