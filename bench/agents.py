"""Real agents through prefire, without and with speculation: one command per client.

    python bench/agents.py --client CLIENT [--tasks 6] [--warmup 6] [--concurrency 2]
        [--think 1.25] [--latency-scale 1] [--seed 1] [--kinds KIND...] [--chain-depth N]
        [--json] [--keep DIR]

CLIENT: agents-sdk-mcp2, agents-sdk-mcp2-streamed (Runner.run_streamed, turns chained with
previous_response_id), agents-sdk-mcp1, langgraph; from npm: claude-code (2.1.112, cli.js),
claude-code-native (2.1.332, MCP tools deferred behind ToolSearch), codex (0.171.0).

The agent (the real SDK or CLI, in its own venv or npm prefix under .venv-agents/, made by
bash bench/agents/setup.sh) runs the tasks through `prefire run` three times: a warm-up of
other tasks that prefire only learns from, the measured tasks with --no-speculate (the
baseline), and the same tasks with speculation, starting from what the warm-up taught. The
model is a scripted server with think time; the tools are a real MCP server over streamable
HTTP (the venv's mcp SDK) with realistic latency. Prints client, version, API, wall time
without and with speculation, the reduction, hits, and whether the agent saw exactly the
same thing; also that no write ran early and that no early call ran in an MCP session one of
the agent's tasks had opened; where each pass's time went (start-up, model, between turns,
tail: bench/agents/profile.py), the reduction after start-up, and why the agent's calls that
still reached the tool server were not answered early.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.agents.harness import CLIENTS, measure
from bench.agents.tasks import TEMPLATES


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client", choices=sorted(CLIENTS), required=True)
    p.add_argument("--tasks", type=int, default=6, help="measured tasks (default 6)")
    p.add_argument("--warmup", type=int, default=6, help="other tasks to learn from first")
    p.add_argument("--concurrency", type=int, default=2, help="tasks at once (default 2)")
    p.add_argument("--think", type=float, default=1.25, help="mean model think time, s")
    p.add_argument("--latency-scale", type=float, default=1.0, help="tool latency factor")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--kinds",
        nargs="+",
        choices=sorted(TEMPLATES),
        default=list(TEMPLATES),
        help="kinds of task the tasks cycle through (default: all; owners offsite: the "
        "tool-heavy ones, whose calls fan out, without the write)",
    )
    p.add_argument(
        "--chain-depth",
        type=int,
        help="the rules' budget max_chain_depth for every pass (0: no chaining; default: "
        "the rules' default)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument(
        "--keep", type=Path, help="keep every pass's files (logs, tool records) in this dir"
    )
    args = p.parse_args()
    client = CLIENTS[args.client]
    reason = client.unavailable()
    if reason:
        print(f"bench/agents.py: {args.client} cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="prefire-agents-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        summary = asyncio.run(
            measure(
                client,
                work,
                tasks=args.tasks,
                warmup=args.warmup,
                seed=args.seed,
                think_s=(args.think * 0.8, args.think * 1.2),
                latency_scale=args.latency_scale,
                concurrency=args.concurrency,
                kinds=tuple(args.kinds),
                chain_depth=args.chain_depth,
            )
        )
    print(json.dumps(summary) if args.json else table(summary))
    return 0


def table(s: dict[str, Any]) -> str:
    def yes(flag: bool) -> str:
        return "yes" if flag else "NO"

    rows = [
        ("client", f"{s['client']} {s['version']} ({s['api']})"),
        (
            "tasks",
            f"{s['tasks']} measured, {s['warmup']} warm-up, {s['concurrency']} at once "
            f"({', '.join(s['kinds'])})",
        ),
        ("wall time, --no-speculate", f"{s['baseline_s']:.2f} s"),
        ("wall time, speculative", f"{s['speculative_s']:.2f} s"),
        ("reduction", f"{s['reduction']:.1%}"),
        (
            "reduction after start-up",
            "unknown"
            if s.get("reduction_after_startup") is None
            else f"{s['reduction_after_startup']:.1%}",
        ),
        ("hits (early results used)", f"{s['hits']} {s['hits_by_kind']}"),
        (
            "chain depth; chained fired / used",
            f"{'default' if s['chain_depth'] is None else s['chain_depth']}; "
            f"{s['chained']} / {s['chained_used']}",
        ),
        ("fired / wasted / failed", f"{s['fired']} / {s['wasted']} / {s['failed']}"),
        ("early calls refused by the server", str(s["early_failed"])),
        ("early calls unlike the agent's", str(s["early_unlike_agent"])),
        ("identical (answers, results)", yes(s["identical"])),
        ("same tool-server results", yes(s["same_tool_results"])),
        ("writes run early", str(s["early_writes"])),
        ("early calls in an agent's session", str(s["early_in_agent_sessions"])),
        ("agent calls in prefire's session", str(s["agent_in_prefire_sessions"])),
        (
            "model requests (speculative)",
            ", ".join(f"{k}: {v}" for k, v in s["llm_requests"].items()),
        ),
    ]
    misses = s.get("misses") or {}
    rows.append(
        ("calls not answered early", ", ".join(f"{k}: {v}" for k, v in misses.items()) or "0")
    )
    for name, parts in (s.get("profile") or {}).items():
        if parts is None:
            rows.append((f"where the time went, {name}", "unknown (requests without the prompt)"))
            continue
        rows.append(
            (
                f"where the time went, {name}",
                ", ".join(
                    f"{k.removesuffix('_s')} {v:.1f} s"
                    for k, v in parts.items()
                    if k != "model_requests"
                ),
            )
        )
    if s["stats_error"]:
        rows.append(("(no counters)", s["stats_error"]))
    return "\n".join(f"  {k:<34}{v}" for k, v in rows)


if __name__ == "__main__":
    sys.exit(main())
