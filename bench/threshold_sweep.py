"""Hits against wasted calls: replay workloads at several firing thresholds.

    python bench/threshold_sweep.py WORKLOAD.jsonl... [--min-probability 0.1 0.2 0.3 0.4 0.5]

The rules' `budgets.min_probability` decides which candidates start early: a
lower threshold hides more tool time and wastes more calls. For each workload
and threshold this prints hit rate, precision, hidden fraction and calls fired,
from the same strictly online simulation as `prefire replay` (workload labels
decide eligibility, as without --rules). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefire.patterns.rules import Budgets
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, read


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", type=Path, nargs="+")
    ap.add_argument("--min-probability", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    args = ap.parse_args()
    print("| workload | min_probability | hit rate | precision | hidden | fired |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in args.workloads:
        sessions = [s for s in read([path]) if isinstance(s, ReplaySession)]
        for threshold in args.min_probability:
            sim = Simulation(budget=Budgets(min_probability=threshold))
            s = sim.run(sessions).summary()
            print(
                f"| {path.stem} | {threshold} | {s['hit_rate']:.1%} | {s['precision']:.1%} "
                f"| {s['hidden_fraction']:.1%} | {s['prefired']} |"
            )


if __name__ == "__main__":
    main()
