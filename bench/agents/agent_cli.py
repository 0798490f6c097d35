"""What every agent program here shares (standard library only: it runs in the agents'
venvs): the command line, running the tasks a few at a time, the report.

    python bench/agents/PROGRAM.py --llm URL --mcp URL --tasks FILE [--concurrency 2]

FILE is a JSON list of {"id", "prompt"}. The program prints one JSON object on stdout: the
client and its version, the wall time of the whole run and, per task, its wall time, its
final answer and every tool call it made with the result it got, in order, so two runs can
be compared result for result. It knows nothing of prefire: whether its traffic goes through
a proxy is up to the environment (HTTPS_PROXY and friends), as for any agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

Task = dict[str, str]
# (task, llm base URL, MCP URL, options) -> {"answer": str, "tool_calls": [[name, args, result]]}
RunTask = Callable[[Task, str, str, argparse.Namespace], Awaitable[dict[str, Any]]]
SYSTEM = (
    "You are an engineering assistant. Use the tools to look things up and act; never "
    "guess ids. Run independent calls in parallel."
)
MODEL = "gpt-5-mini"  # any name: the scripted model answers to all


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--llm", required=True, help="the model's base URL, e.g. http://host:port/v1")
    p.add_argument("--mcp", required=True, help="the MCP server's streamable HTTP URL")
    p.add_argument("--tasks", type=Path, required=True, help="JSON list of {id, prompt}")
    p.add_argument("--concurrency", type=int, default=2, help="tasks running at once")
    return p


def main(
    run_task: RunTask,
    client: str,
    package: str,
    args: argparse.Namespace,
    client_version: str | None = None,
) -> int:
    """`client_version` for a client that is not a Python package (else the package's)."""
    tasks: list[Task] = json.loads(args.tasks.read_text())
    report = asyncio.run(_run_all(run_task, tasks, args))
    report = {"client": client, "version": client_version or version(package), **report}
    json.dump(report, sys.stdout)
    print()
    return 0


async def _run_all(
    run_task: RunTask, tasks: list[Task], args: argparse.Namespace
) -> dict[str, Any]:
    gate = asyncio.Semaphore(args.concurrency)

    async def one(task: Task) -> dict[str, Any]:
        async with gate:
            started, at = time.perf_counter(), time.time()
            done = await run_task(task, args.llm, args.mcp, args)
            wall_s = round(time.perf_counter() - started, 3)
            # `at`: when it started, by the wall clock (the harness's profile lines it up)
            return {"id": task["id"], "wall_s": wall_s, "at": round(at, 3), **done}

    started = time.perf_counter()
    results = await asyncio.gather(*(one(t) for t in tasks))
    return {"wall_s": round(time.perf_counter() - started, 3), "tasks": results}
