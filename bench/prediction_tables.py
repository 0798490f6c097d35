"""How well the model predicts, per workload: cold, the learning curve, transfer, misses.

    python bench/prediction_tables.py WORKLOAD... [--rules FILE] [--json]

(a capture directory holding a rules.yaml, as `prefire demo --capture DIR` leaves it,
is scored under those rules unless --rules is given).

Each WORKLOAD is whatever `prefire replay` reads (OpenAI-messages JSONL, a capture
directory, .mitm). For each one this runs the strictly online simulation of
`prefire replay --json` twice: cold (nothing learned before), and after warming up
on every other workload given (as `--warmup` does: learned from, not scored). It
prints four markdown tables: the cold figures with simulated calls/s, the hit rate
over sessions 1-5, 6-20 and 21+, transfer beside cold, and the misses by cause.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from prefire.replay.report import _result, _rules_eligible
from prefire.replay.simulate import CURVE, Simulation
from prefire.replay.sources import ReplaySession, read


def _score(
    sessions: list[ReplaySession], warm: list[ReplaySession], rules: Path | None
) -> dict[str, Any]:
    """One online replay of `sessions` after learning from `warm`."""
    kwargs: dict[str, Any] = {}
    if rules is not None:
        from prefire.rules.files import read_rules

        ruleset = read_rules(rules)
        kwargs = {
            "eligible": _rules_eligible(ruleset),
            "budget": ruleset.budgets,
            "cost": ruleset.cost,
        }
    sim = Simulation(**kwargs)
    sim.warm(warm)
    started = time.perf_counter()
    result = _result(sim.run(sessions), tools=False)
    elapsed = time.perf_counter() - started
    result["calls_per_s"] = round(result["tool_calls"] / elapsed) if elapsed > 0 else 0
    return result


def _pct(v: float) -> str:
    return f"{v:.1%}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", type=Path, nargs="+")
    ap.add_argument("--rules", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args()
    data = {
        _name(p): [s for s in read([p]) if isinstance(s, ReplaySession)] for p in args.workloads
    }
    cold: dict[str, dict[str, Any]] = {}
    transfer: dict[str, dict[str, Any]] = {}
    for path, (name, sessions) in zip(args.workloads, data.items(), strict=True):
        rules = args.rules or _capture_rules(path)
        cold[name] = _score(sessions, [], rules)
        others = [s for other, ss in data.items() if other != name for s in ss]
        if others:
            transfer[name] = _score(sessions, others, rules)
    if args.json:
        print(json.dumps({"cold": cold, "transfer": transfer}, indent=2))
        return
    _print_tables(cold, transfer)


def _print_tables(cold: dict[str, dict[str, Any]], transfer: dict[str, dict[str, Any]]) -> None:
    """The markdown tables: per workload, the learning curve, cold vs warm, why missed."""
    print(
        "| workload | calls | eligible | top-1 | top-3 | hit rate | precision | hidden "
        "| e2e reduction | calls/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in cold.items():
        print(
            f"| {name} | {r['tool_calls']} | {r['eligible_calls']} | {_pct(r['next_call_top1'])} "
            f"| {_pct(r['next_call_top3'])} | {_pct(r['hit_rate'])} | {_pct(r['precision'])} "
            f"| {_pct(r['hidden_fraction'])} | {_pct(r['e2e_reduction'])} | {r['calls_per_s']} |"
        )
    print()
    groups = [g for g, _, _ in CURVE]
    print("| workload | " + " | ".join(f"hit rate, sessions {g}" for g in groups) + " |")
    print("|---|" + "---:|" * len(groups))
    for name, r in cold.items():
        cells = []
        for g in groups:
            c = r["learning_curve"][g]
            cells.append(f"{_pct(c['hit_rate'])} ({c['eligible_calls']})" if c["sessions"] else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
    _print_transfer(cold, transfer)
    _print_misses(cold)


def _print_transfer(cold: dict[str, dict[str, Any]], transfer: dict[str, dict[str, Any]]) -> None:
    if transfer:
        print()
        print(
            "| workload | top-1 cold / warm | hit rate cold / warm | precision cold / warm "
            "| hidden cold / warm |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, w in transfer.items():
            c = cold[name]
            cells = [
                f"{_pct(c[k])} / {_pct(w[k])}"
                for k in ("next_call_top1", "hit_rate", "precision", "hidden_fraction")
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")


def _print_misses(cold: dict[str, dict[str, Any]]) -> None:
    print()
    causes = sorted({k for r in cold.values() for k in r["misses"]})
    causes.sort(key=lambda k: -sum(r["misses"].get(k, 0) for r in cold.values()))
    print("| why missed | " + " | ".join(cold) + " |")
    print("|---|" + "---:|" * len(cold))
    for cause in causes:
        print(
            f"| {cause} | "
            + " | ".join(str(r["misses"].get(cause, 0)) for r in cold.values())
            + " |"
        )
        if cause == "first_call_of_session":
            whys = sorted({k for r in cold.values() for k in r.get("first_call_misses", {})})
            for why in whys:
                cells = [str(r.get("first_call_misses", {}).get(why, 0)) for r in cold.values()]
                print(f"| - of which {why} | " + " | ".join(cells) + " |")


def _capture_rules(path: Path) -> Path | None:
    """The rules a capture directory was recorded under (`prefire demo --capture` writes
    them there): without them every tool of a capture, writes too, would be eligible."""
    rules = path / "rules.yaml"
    return rules if path.is_dir() and rules.exists() else None


def _name(path: Path) -> str:
    return path.stem if path.suffix else path.name


if __name__ == "__main__":
    main()
