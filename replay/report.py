"""`prefire replay`: read inputs, simulate online, print a table or one JSON object."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from prefire.patterns.baseline import BaselineModel
from prefire.patterns.model import PatternModel
from prefire.replay.errors import InputError
from prefire.replay.simulate import Eligible, Simulation, Totals
from prefire.replay.sources import ReplaySession, read
from prefire.rules.files import read_rules
from prefire.rules.ruleset import Budgets, RulesError, RuleSet


def run(
    inputs: list[Path],
    fmt: str = "auto",
    tool_latency: float = 1.0,
    llm_latency: float = 2.0,
    warmup: Path | None = None,
    as_json: bool = False,
    with_baseline: bool = False,
    rules_path: Path | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    for path in [*inputs, *([warmup] if warmup else [])]:
        if not path.exists():
            print(f"prefire replay: {path}: no such file", file=err)
            return 2
    ruleset: RuleSet | None = None
    if rules_path is not None:
        try:
            ruleset = read_rules(rules_path)
        except RulesError as exc:
            print(exc, file=err)
            return 2
        for warning in ruleset.warnings:
            print(f"warning: {warning}", file=err)
    sims = _simulations(ruleset, with_baseline, tool_latency, llm_latency)
    if warmup is not None:
        warm = [s for s in _sessions([warmup], fmt, err) if isinstance(s, ReplaySession)]
        for sim in sims.values():
            sim.warm(warm)
    started = time.monotonic()
    errors = _replay_all(sims, inputs, fmt, err)
    elapsed = time.monotonic() - started
    result = _result(sims["prefire"].totals)
    result["input_errors"] = errors
    result["elapsed_s"] = round(elapsed, 3)
    if "baseline" in sims:
        result["baseline"] = _result(sims["baseline"].totals, tools=False)
    if as_json:
        out.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(format_table(result))
    return 1 if errors and not result["sessions"] else 0


def _simulations(
    ruleset: RuleSet | None, with_baseline: bool, tool_latency: float, llm_latency: float
) -> dict[str, Simulation]:
    """prefire's simulation, and the naive predictor's (--baseline), under the rules if any."""
    eligible: Eligible | None = None
    budget: Budgets | None = None
    cost: Callable[[str], float] | None = None
    if ruleset is not None:
        eligible = _rules_eligible(ruleset)
        budget = ruleset.budgets
        cost = functools.cache(ruleset.cost)
    sims = {
        "prefire": Simulation(
            eligible=eligible,
            budget=budget,
            cost=cost,
            tool_latency=tool_latency,
            llm_latency=llm_latency,
        )
    }
    if ruleset is not None:
        model = sims["prefire"].model
        assert isinstance(model, PatternModel)
        model.shared = ruleset.shares_learning
    if with_baseline:
        sims["baseline"] = Simulation(
            model=BaselineModel(tool_latency, llm_latency),
            eligible=eligible,
            budget=budget,
            cost=cost,
            tool_latency=tool_latency,
            llm_latency=llm_latency,
        )
    return sims


def _replay_all(sims: dict[str, Simulation], inputs: list[Path], fmt: str, err: TextIO) -> int:
    """Every session of the inputs through every simulation, in order; how many input
    errors there were. Says how far it got every two seconds."""
    errors = 0
    last_report = time.monotonic()
    for n, session in enumerate(_sessions(inputs, fmt, err), 1):
        if isinstance(session, InputError):
            errors += 1
            continue
        for sim in sims.values():
            sim.replay(session)
        if time.monotonic() - last_report > 2.0:
            last_report = time.monotonic()
            calls = sims["prefire"].totals.tool_calls
            print(f"replay: {n} sessions, {calls} tool calls ...", file=err, flush=True)
    return errors


def _rules_eligible(ruleset: RuleSet) -> Eligible:
    """The rules replace the workload's write labels: replay scores what they would allow.
    Replay knows only tool names, so each name's decision is made once."""

    @functools.cache
    def allowed(tool: str) -> bool:
        return ruleset.decide(tool).allowed

    return lambda tool, session: allowed(tool)


def _sessions(paths: list[Path], fmt: str, err: TextIO) -> Iterator[ReplaySession | InputError]:
    for item in read(paths, fmt):
        if isinstance(item, InputError):
            print(f"prefire replay: {item}", file=err)
        yield item


def _result(totals: Totals, tools: bool = True) -> dict[str, Any]:
    result = totals.summary()
    result["misses"] = dict(sorted(totals.misses.items(), key=lambda kv: -kv[1]))
    result["first_call_misses"] = dict(
        sorted(totals.first_call_misses.items(), key=lambda kv: -kv[1])
    )
    result["calibration"] = totals.calibration_table()
    result["learning_curve"] = totals.curve_table()
    if tools:
        result["tools"] = {
            name: {
                "calls": r.calls,
                "eligible": r.eligible,
                "hits": r.hits,
                "prefired": r.prefired,
                "used": r.used,
                "tool_time_s": round(r.tool_time_s, 3),
                "hidden_s": round(r.hidden_s, 3),
            }
            for name, r in sorted(totals.tools.items(), key=lambda kv: -kv[1].calls)
        }
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = []
    keys = [k for k in result if not isinstance(result[k], dict)]
    columns = ["prefire"] + (["baseline"] if "baseline" in result else [])
    lines.append(f"{'metric':<22}" + "".join(f"{c:>14}" for c in columns))
    for k in keys:
        row = [result[k]] + ([result["baseline"].get(k, "")] if "baseline" in result else [])
        lines.append(f"{k:<22}" + "".join(f"{_fmt(v):>14}" for v in row))
    if result.get("misses"):
        lines.append("")
        lines.append("missed eligible calls, by reason:")
        for reason, n in result["misses"].items():
            lines.append(f"  {reason:<28}{n:>8}")
            if reason == "first_call_of_session":
                for why, k in result.get("first_call_misses", {}).items():
                    lines.append(f"    {why:<26}{k:>8}")
    if result.get("tools"):
        lines.append("")
        lines.append(
            f"{'tool':<32}{'calls':>7}{'elig':>7}{'hits':>7}{'fired':>7}{'used':>7}{'hidden_s':>10}"
        )
        for name, r in list(result["tools"].items())[:40]:
            lines.append(
                f"{name[:31]:<32}{r['calls']:>7}{r['eligible']:>7}{r['hits']:>7}"
                f"{r['prefired']:>7}{r['used']:>7}{r['hidden_s']:>10.1f}"
            )
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)
