"""With vs without speculation, on the demo's world, larger than `prefire demo` by default.

    python bench/speculation.py [--tasks 24] [--warmup 24] [--seeds 1 2] [--workloads mixed reads]
                                [--chain-depths 0 2]

For each workload (mixed, reads) and seed it runs `prefire demo --json` (a warm-up
through a proxy that only learns, then the measured tasks through `prefire run
--no-speculate` and through `prefire run`, in one run) and prints wall times,
reduction, hits, wasted calls per hit and whether every agent-visible result was
identical. --chain-depths runs each with the rules' budget max_chain_depth at each
value (0: no chaining; the default: the rules' default). Loopback only; each run is
bounded by the demo's own timeout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=24)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--workloads", nargs="+", default=["mixed", "reads"], choices=["mixed", "reads"]
    )
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--chain-depths", type=int, nargs="+", default=[None])
    args = ap.parse_args()
    rows = []
    runs = [(w, s, d) for w in args.workloads for s in args.seeds for d in args.chain_depths]
    for workload, seed, depth in runs:
        cmd = [
            sys.executable, "-m", "prefire.cli.main", "demo", "--json",
            "--tasks", str(args.tasks), "--warmup", str(args.warmup),
            "--seed", str(seed), "--workload", workload, "--timeout", str(args.timeout),
        ]  # fmt: skip
        if depth is not None:
            cmd += ["--chain-depth", str(depth)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout + 60)
        if done.returncode != 0:
            print(f"{workload} seed {seed}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        r = json.loads(done.stdout)
        rows.append((workload, seed, depth, r))
        print(f"[bench] {workload} seed {seed}: {r['reduction']:.1%}", file=sys.stderr)
    print(
        "| workload | seed | chain depth | tasks | baseline s | speculative s | reduction | hits "
        "| chained used | wasted/hit | identical | writes early |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for workload, seed, depth, r in rows:
        per_hit = r["wasted"] / r["hits"] if r["hits"] else float("nan")
        times = f"{r['baseline_s']:.1f} | {r['speculative_s']:.1f}"
        print(
            f"| {workload} | {seed} | {'default' if depth is None else depth} | {r['tasks']} "
            f"| {times} | {r['reduction']:.1%} | {r['hits']} | {r['chained_used']} "
            f"| {per_hit:.2f} | {r['identical']} | {r['writes_run_early']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
