"""With vs without speculation, on the demo's world, larger than `prefire demo` by default.

    python bench/speculation.py [--tasks 24] [--warmup 24] [--seeds 1 2 3] [--workloads mixed reads]
                                [--chain-depths 0 2] [--out DIR]

For each workload (mixed, reads), seed and chain depth it runs `prefire demo --json` (a
warm-up through a proxy that only learns, then the measured tasks through `prefire run
--no-speculate` and through `prefire run`, in one run) and prints wall times,
reduction, hits by how they started, wasted calls per hit, whether every agent-visible
result was identical, and the ceilings of that run (patterns/ceilings.py, from the
baseline's own timings: what a perfect speculator predicting once per LLM turn, a
perfect chaining one, and one hiding every read could save). The depths of one seed run
back to back. Then, per workload and depth, the mean and spread over the seeds.
--chain-depths sets the rules' budget max_chain_depth (0: no chaining). Loopback only;
each run is bounded by the demo's own timeout. --out keeps each run's JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

CEILINGS = ("per_turn", "chained", "llm_only")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=24)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument(
        "--workloads", nargs="+", default=["mixed", "reads"], choices=["mixed", "reads"]
    )
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--chain-depths", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--out", type=Path, help="keep each run's `prefire demo --json` here")
    args = ap.parse_args()
    rows = []
    runs = [(w, s, d) for w in args.workloads for s in args.seeds for d in args.chain_depths]
    for workload, seed, depth in runs:
        r = _run(args, workload, seed, depth)
        if r is None:
            return 1
        rows.append(r)
        print(
            f"[bench] {workload} seed {seed} depth {depth}: {r['reduction']:.1%}", file=sys.stderr
        )
    print(_runs_table(rows))
    print()
    print(_summary_table(rows))
    return 0


def _run(args: argparse.Namespace, workload: str, seed: int, depth: int) -> dict[str, Any] | None:
    cmd = [
        sys.executable, "-m", "prefire.cli.main", "demo", "--json",
        "--tasks", str(args.tasks), "--warmup", str(args.warmup), "--seed", str(seed),
        "--workload", workload, "--timeout", str(args.timeout), "--chain-depth", str(depth),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout + 60)
    if done.returncode != 0:
        print(f"{workload} seed {seed}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    r: dict[str, Any] = json.loads(done.stdout)
    r["depth"] = depth
    base = sum(t["baseline_s"] for t in r["per_task"])
    spec = sum(t["speculative_s"] for t in r["per_task"])
    r["task_reduction"] = (base - spec) / base if base else 0.0
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{workload}-seed{seed}-depth{depth}.json").write_text(done.stdout)
    return r


def _hits(r: dict[str, Any]) -> tuple[int, int, int]:
    """Hits by how the call started: predicted at a decision point, chained, eager."""
    chained, eager = r["chained_used"] or 0, r["eager_used"] or 0
    return (r["hits"] or 0) - chained - eager, chained, eager


def _runs_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| workload | seed | chain depth | baseline s | prefire s | reduction | per-task "
        "reduction | hits predicted / chained / eager | wasted/hit | identical | writes early "
        "| ceiling per turn | chained | LLM only |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        per_hit = r["wasted"] / r["hits"] if r["hits"] else float("nan")
        c = r["ceilings"]
        out.append(
            f"| {r['workload']} | {r['seed']} | {r['depth']} | {r['baseline_s']:.1f} "
            f"| {r['speculative_s']:.1f} | {r['reduction']:.1%} | {r['task_reduction']:.1%} "
            f"| {' / '.join(map(str, _hits(r)))} | {per_hit:.2f} | {r['identical']} "
            f"| {r['writes_run_early']} | {c['per_turn']:.1%} | {c['chained']:.1%} "
            f"| {c['llm_only']:.1%} |"
        )
    return "\n".join(out)


def _spread(values: list[float]) -> str:
    """Mean ± sample standard deviation (min-max), as percentages."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1%} ± {sd:.1%} ({min(values):.1%}-{max(values):.1%})"


def _summary_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| workload | chain depth | runs | reduction | per-task reduction | hits predicted / "
        "chained / eager (mean) | wasted/hit | ceiling per turn | chained | LLM only |",
        "|---|---:|---:|---|---|---|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["workload"], r["depth"]), []).append(r)
    for (workload, depth), rs in groups.items():
        hits = [statistics.mean(h) for h in zip(*(_hits(r) for r in rs), strict=True)]
        wasted = sum(r["wasted"] or 0 for r in rs) / max(1, sum(r["hits"] or 0 for r in rs))
        ceil = {k: statistics.mean(r["ceilings"][k] for r in rs) for k in CEILINGS}
        out.append(
            f"| {workload} | {depth} | {len(rs)} | {_spread([r['reduction'] for r in rs])} "
            f"| {_spread([r['task_reduction'] for r in rs])} "
            f"| {' / '.join(f'{h:.1f}' for h in hits)} | {wasted:.2f} "
            f"| {ceil['per_turn']:.1%} | {ceil['chained']:.1%} | {ceil['llm_only']:.1%} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
