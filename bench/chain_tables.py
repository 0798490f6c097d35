"""Chained speculation offline: each workload replayed with chaining off and on, in one run.

    python bench/chain_tables.py WORKLOAD... [--depths 0 2] [--json]

Each WORKLOAD is whatever `prefire replay` reads (a capture directory holding a
rules.yaml is scored under those rules). For each one and each max_chain_depth this
runs the strictly online simulation of `prefire replay --json` (cold) and prints wall
time without and with speculation, the reduction, hits, chained calls fired and used,
wasted early calls per hit, and two perfect-speculator ceilings from the same timings:
every eligible call started at its decision point (what any speculator that predicts
once per LLM turn can reach), and every eligible call started as soon as the previous
turn's calls have their results (perfect chaining; a call after a write waits for the
write); and the bound of all: the agent waits only for its LLM and for calls no rule
lets start early. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from prefire.patterns.events import LLMRequest, ToolCall
from prefire.replay.report import _rules_eligible
from prefire.replay.simulate import Eligible, Simulation, _labelled_eligible
from prefire.replay.sources import ReplaySession, read
from prefire.rules.ruleset import Budgets

TOOL_S, LLM_S = 1.0, 2.0  # the simulation's defaults where a workload has no timings


def ceilings(
    sessions: list[ReplaySession], eligible: Eligible
) -> tuple[float, float, float, float]:
    """Wall time without speculation, at the per-turn ceiling, at the chained ceiling, and
    waiting only for the LLM and the calls that may not start early."""
    base = flat = chained = llm_only = 0.0
    for s in sessions:
        turns: list[tuple[float, list[tuple[float, bool]]]] = []
        for e in s.events:
            if isinstance(e, LLMRequest):
                i = len(turns)
                turns.append((s.llm_s[i] if i < len(s.llm_s) else LLM_S, []))
            elif isinstance(e, ToolCall):
                if not turns:
                    turns.append((LLM_S, []))
                latency = s.tool_s.get(e.call_id, TOOL_S)
                turns[-1][1].append((latency, eligible(e.name, s)))
        base += sum(llm + max((lat for lat, _ in calls), default=0.0) for llm, calls in turns)
        llm_only += sum(
            llm + max((lat for lat, ok in calls if not ok), default=0.0) for llm, calls in turns
        )
        clock_flat = clock_chain = 0.0
        inputs_ready = 0.0  # when the previous turn's calls had their results (chained)
        for llm, calls in turns:
            ask = clock_flat + llm
            waits = [max(0.0, lat - llm) if ok else lat for lat, ok in calls]
            clock_flat = ask + max(waits, default=0.0)
            ask = clock_chain + llm
            ends = [
                (min(inputs_ready, clock_chain) + lat) if ok else ask + lat for lat, ok in calls
            ]
            turn_end = max([ask, *ends])
            clock_chain, inputs_ready = turn_end, max(ends, default=clock_chain)
        flat += clock_flat
        chained += clock_chain
    return base, flat, chained, llm_only


def _score(sessions: list[ReplaySession], depth: int, rules: Path | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"budget": Budgets(max_chain_depth=depth)}
    if rules is not None:
        from prefire.rules.files import read_rules

        ruleset = read_rules(rules)
        budget = dataclasses.replace(ruleset.budgets, max_chain_depth=depth)
        kwargs = {"eligible": _rules_eligible(ruleset), "budget": budget, "cost": ruleset.cost}
    return Simulation(**kwargs).run(sessions).summary()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", type=Path, nargs="+")
    ap.add_argument("--depths", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for path in args.workloads:
        rules = path / "rules.yaml" if path.is_dir() and (path / "rules.yaml").exists() else None
        sessions = [s for s in read([path]) if isinstance(s, ReplaySession)]
        eligible: Eligible = _labelled_eligible
        if rules is not None:
            from prefire.rules.files import read_rules

            eligible = _rules_eligible(read_rules(rules))
        base, flat, chained, llm_only = ceilings(sessions, eligible)
        for depth in args.depths:
            r = _score(sessions, depth, rules)
            r.update(
                workload=path.stem,
                depth=depth,
                ceiling_per_turn=round(1 - flat / base, 4) if base else 0.0,
                ceiling_chained=round(1 - chained / base, 4) if base else 0.0,
                ceiling_llm_only=round(1 - llm_only / base, 4) if base else 0.0,
            )
            rows.append(r)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        "| workload | chain depth | e2e s | with prefire s | reduction | hits | chained fired "
        "| chained used | wasted/hit | ceiling per turn | ceiling chained | LLM only |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['depth']} | {r['e2e_time_s']:.0f} "
            f"| {r['e2e_time_spec_s']:.0f} "
            f"| {r['e2e_reduction']:.1%} | {r['hits']} | {r['chained_fired']} "
            f"| {r['chained_used']} | {r['wasted_per_hit']:.2f} | {r['ceiling_per_turn']:.1%} "
            f"| {r['ceiling_chained']:.1%} | {r['ceiling_llm_only']:.1%} |"
        )


if __name__ == "__main__":
    main()
