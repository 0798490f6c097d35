"""Hits against wasted calls: replay workloads at several costs of a wasted call.

    python bench/threshold_sweep.py WORKLOAD... [--cost 0.1 0.25 0.5 1 2 4]

A predicted call starts early when p x saving > (1 - p) x cost (patterns/policy.py):
a higher `cost` (a rule's key, in seconds of waiting one wasted call is worth) fires
only likelier calls, wasting fewer and hiding less. For each workload and cost this
prints hit rate, precision, hidden fraction and calls fired, from the same strictly
online simulation as `prefire replay` (workload labels decide eligibility, as without
--rules), and marks the rows on the hit/precision frontier (no other cost gives both a
higher hit rate and a higher precision). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, read


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", type=Path, nargs="+")
    ap.add_argument("--cost", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0, 2.0, 4.0])
    args = ap.parse_args()
    print("| workload | cost (s) | hit rate | precision | hidden | fired | frontier |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for path in args.workloads:
        sessions = [s for s in read([path]) if isinstance(s, ReplaySession)]
        rows = []
        for cost in args.cost:
            s = Simulation(cost=lambda tool, cost=cost: cost).run(sessions).summary()
            rows.append((cost, s))
        for cost, s in rows:
            dominated = any(
                o["hit_rate"] >= s["hit_rate"]
                and o["precision"] >= s["precision"]
                and (o["hit_rate"], o["precision"]) != (s["hit_rate"], s["precision"])
                for _, o in rows
            )
            print(
                f"| {path.stem or path.name} | {cost:g} | {s['hit_rate']:.1%} "
                f"| {s['precision']:.1%} | {s['hidden_fraction']:.1%} | {s['prefired']} "
                f"| {'' if dominated else 'yes'} |"
            )


if __name__ == "__main__":
    main()
