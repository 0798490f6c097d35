"""Chained speculation offline: each workload replayed with chaining off and on, in one run.

    python bench/chain_tables.py WORKLOAD... [--depths 0 2] [--json]

Each WORKLOAD is whatever `prefire replay` reads (a capture directory holding a
rules.yaml is scored under those rules). For each one and each max_chain_depth this
runs the strictly online simulation of `prefire replay --json` (cold) and prints wall
time without and with speculation, the reduction, hits, chained calls fired and used,
wasted early calls per hit, and the perfect-speculator ceilings from the same timings
(patterns/ceilings.py): every eligible call started at its decision point (what any
speculator that predicts once per LLM turn can reach); every eligible call started as
soon as the values its arguments hold exist (perfect chaining; a call after a write
waits for the write); and the bound of all: the agent waits only for its LLM and for
calls no rule lets start early. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from prefire.patterns.ceilings import Ceilings, Timed, Turn
from prefire.patterns.ceilings import ceilings as task_ceilings
from prefire.patterns.events import LLMRequest, ToolCall, ToolResult, UserMessage
from prefire.replay.report import _rules_eligible
from prefire.replay.simulate import Eligible, Simulation, _labelled_eligible
from prefire.replay.sources import ReplaySession, read
from prefire.rules.ruleset import Budgets

TOOL_S, LLM_S = 1.0, 2.0  # the simulation's defaults where a workload has no timings


def ceilings(sessions: list[ReplaySession], eligible: Eligible) -> Ceilings:
    """The sessions' wall time without speculation and at the ceilings
    (patterns/ceilings.py), summed, from their recorded or default timings."""
    total = Ceilings(0.0, 0.0, 0.0, 0.0)
    for s in sessions:
        results = {e.call_id: e.content for e in s.events if isinstance(e, ToolResult)}
        prompt = " ".join(e.text for e in s.events if isinstance(e, UserMessage))
        turns: list[tuple[float, list[Timed]]] = []
        for e in s.events:
            if isinstance(e, LLMRequest):
                i = len(turns)
                turns.append((s.llm_s[i] if i < len(s.llm_s) else LLM_S, []))
            elif isinstance(e, ToolCall):
                if not turns:
                    turns.append((LLM_S, []))
                latency = s.tool_s.get(e.call_id, TOOL_S)
                call = Timed(
                    e.name, e.arguments, results.get(e.call_id), latency, eligible(e.name, s)
                )
                turns[-1][1].append(call)
        total = total + task_ceilings(prompt, [Turn(llm, tuple(calls)) for llm, calls in turns])
    return total


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
        ceiling = ceilings(sessions, eligible).reductions()
        for depth in args.depths:
            r = _score(sessions, depth, rules)
            r.update(
                workload=path.stem,
                depth=depth,
                ceiling_per_turn=ceiling["per_turn"],
                ceiling_chained=ceiling["chained"],
                ceiling_llm_only=ceiling["llm_only"],
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
