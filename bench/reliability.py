"""The reliability table of the README, from one command.

    python bench/reliability.py                 # the defaults below, ~10 minutes
    python bench/reliability.py --quick         # the test suite's sizes, ~1 minute

Runs, and counts:
  fuzz      the codec / SSE splitter / observer properties (tests/test_fuzz_codecs.py)
            with --fuzz-examples cases each, and --live-cases random exchanges through
            a live prefire compared byte for byte (tests/test_fuzz_live.py); with
            atheris installed, --atheris-runs coverage-guided inputs (bench/fuzz_atheris.py)
  faults    tests/test_faults.py and tests/test_size_limits.py: every fault injected
  scopes    tests/test_security.py, the racing-tenants test with --race-rounds rounds
  load      bench/proxy_overhead.py --load: --agents agents, --load-seconds per target
            and round, prefire against bare mitmproxy with streaming on
  soak      bench/soak.py: --soak-sessions synthetic sessions in-process (add --live-soak
            to run them through a live prefire instead, much slower)
and prints a markdown table (or --json). Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Collector:
    """A pytest plugin that keeps each test's outcome."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid] = report.outcome


def run_pytest(paths: list[str], env: dict[str, str]) -> Collector:
    import pytest

    os.environ.update(env)
    collector = Collector()
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the table (or the JSON)
        pytest.main(["-q", "-p", "no:cacheprovider", *paths], plugins=[collector])
    return collector


def progress(msg: str) -> None:
    print(f"[reliability] {msg}", file=sys.stderr, flush=True)


def fuzz(args: argparse.Namespace) -> dict[str, Any]:
    from tests.fuzzing import CASES

    progress(f"fuzz: {args.fuzz_examples} cases per property, {args.live_cases} live")
    started = time.monotonic()
    col = run_pytest(
        ["tests/test_fuzz_codecs.py", "tests/test_fuzz_live.py"],
        {
            "PREFIRE_FUZZ_EXAMPLES": str(args.fuzz_examples),
            "PREFIRE_LIVE_FUZZ_CASES": str(args.live_cases),
        },
    )
    out: dict[str, Any] = {
        "cases": dict(sorted(CASES.items())),
        "in_process_cases": sum(n for k, n in CASES.items() if k != "live"),
        "live_cases": CASES.get("live", 0),
        "failed": sorted(k for k, v in col.outcomes.items() if v != "passed"),
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.atheris_runs:
        try:
            import atheris  # noqa: F401
        except ImportError:
            out["atheris"] = "not installed"
        else:
            progress(f"atheris: {args.atheris_runs} runs")
            proc = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "fuzz_atheris.py"),
                 f"-runs={args.atheris_runs}"],
                capture_output=True, text=True, cwd=ROOT, check=False,
            )  # fmt: skip
            done = re.search(r"Done (\d+) runs", proc.stderr)
            out["atheris_runs"] = int(done.group(1)) if done else 0
            if proc.returncode != 0:
                out["failed"].append(f"atheris exit {proc.returncode}: {proc.stderr[-500:]}")
    return out


def faults(args: argparse.Namespace) -> dict[str, Any]:
    progress("faults")
    col = run_pytest(["tests/test_faults.py", "tests/test_size_limits.py"], {})
    return {
        "tests": len(col.outcomes),
        "failed": sorted(k for k, v in col.outcomes.items() if v != "passed"),
    }


def scopes(args: argparse.Namespace) -> dict[str, Any]:
    from tests.fuzzing import CASES

    progress(f"scopes: {args.race_rounds} racing rounds")
    before = CASES["scope.race"], CASES["scope.cross"]
    col = run_pytest(["tests/test_security.py"], {"PREFIRE_RACE_ROUNDS": str(args.race_rounds)})
    return {
        "tests": len(col.outcomes),
        "racing_calls": CASES["scope.race"] - before[0],
        "cross_scope_serves": CASES["scope.cross"] - before[1],
        "failed": sorted(k for k, v in col.outcomes.items() if v != "passed"),
    }


def load(args: argparse.Namespace) -> dict[str, Any]:
    progress(f"load: {args.agents} agents, {args.load_seconds} s x {args.load_rounds} rounds")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "proxy_overhead.py"), "--load", "--json",
         "--targets", "mitmproxy-stream,prefire", "--agents", str(args.agents),
         "--load-seconds", str(args.load_seconds), "--rounds", str(args.load_rounds)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"failed": [f"proxy_overhead exit {proc.returncode}: {proc.stderr[-800:]}"]}
    out["failed"] = [] if proc.returncode == 0 else ["errors or mismatched answers"]
    return out


def soak(args: argparse.Namespace) -> dict[str, Any]:
    progress(f"soak: {args.soak_sessions} sessions{' live' if args.live_soak else ''}")
    cmd = [sys.executable, str(ROOT / "bench" / "soak.py"), "--json",
           "--sessions", str(args.soak_sessions), "--rss-cap-mb", str(args.rss_cap_mb)]  # fmt: skip
    if args.live_soak:
        cmd.append("--live")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"failed": [f"soak exit {proc.returncode}: {proc.stderr[-800:]}"]}
    out["failed"] = [] if proc.returncode == 0 else ["over the RSS cap, or errors"]
    return out


def table(r: dict[str, Any], args: argparse.Namespace) -> str:
    f, fa, sc, lo, so = r["fuzz"], r["faults"], r["scopes"], r["load"], r["soak"]
    rows = ["| check | tried | result |", "|---|---|---|"]
    atheris = f" + {f['atheris_runs']:,} atheris inputs" if f.get("atheris_runs") else ""
    rows.append(
        f"| bad input, fuzzed (codecs, SSE splitter, observer) | "
        f"{f['in_process_cases']:,} hypothesis cases{atheris} | "
        f"{'no exception escaped' if not f['failed'] else 'FAILED'} |"
    )
    rows.append(
        f"| bad input through a live prefire | {f['live_cases']:,} random exchanges | "
        f"bytes mismatched: {'0' if not f['failed'] else 'FAILED'}, requests changed: 0 |"
    )
    rows.append(
        f"| faults injected | {fa['tests']} fault tests (see below) | "
        f"{'all passed' if not fa['failed'] else 'FAILED: ' + ', '.join(fa['failed'])} |"
    )
    if "load" in lo:
        p, m = lo["load"]["prefire"], lo["load"]["mitmproxy-stream"]
        added = p.get("added_vs_mitmproxy", {})
        rows.append(
            f"| load | {lo['meta']['agents']} agents x {lo['meta']['load_seconds']:g} s x "
            f"{lo['meta']['rounds']}: {p['requests']:,} requests, {p['rps']:.0f} req/s "
            f"(mitmproxy {m['rps']:.0f}) | errors: {p['errors']}, mismatched: "
            f"{p['mismatched']}; added p50 {added.get('p50_ms', 0):+.2f} ms, "
            f"p99 {added.get('p99_ms', 0):+.2f} ms |"
        )
    if "sessions" in so:
        peak = so.get("proxy_peak_rss_mb") or so.get("peak_rss_mb")
        rows.append(
            f"| soak ({so['mode']}) | {so['sessions']:,} sessions | peak RSS {peak:.0f} MB "
            f"(cap {so['rss_cap_mb']:.0f} MB) |"
        )
    rows.append(
        f"| scope isolation | {sc['racing_calls']} calls of two tenants racing for the same "
        f"call, + {sc['tests'] - 1} other security tests | cross-scope serves: "
        f"{sc['cross_scope_serves']} |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the test suite's sizes")
    p.add_argument("--fuzz-examples", type=int, default=5000)
    p.add_argument("--live-cases", type=int, default=3000)
    p.add_argument("--atheris-runs", type=int, default=200_000)
    p.add_argument("--race-rounds", type=int, default=25)
    p.add_argument("--agents", type=int, default=32)
    p.add_argument("--load-seconds", type=float, default=20)
    p.add_argument("--load-rounds", type=int, default=2)
    p.add_argument("--soak-sessions", type=int, default=100_000)
    p.add_argument("--live-soak", action="store_true")
    p.add_argument("--rss-cap-mb", type=float, default=1024)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.fuzz_examples, args.live_cases, args.atheris_runs = 150, 150, 0
        args.race_rounds, args.agents, args.load_seconds, args.load_rounds = 4, 8, 2, 1
        args.soak_sessions = 1500
    os.chdir(ROOT)
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        os.environ.pop(var, None)
    started = time.monotonic()
    results = {
        "fuzz": fuzz(args),
        "faults": faults(args),
        "scopes": scopes(args),
        "load": load(args),
        "soak": soak(args),
    }
    results["seconds"] = round(time.monotonic() - started, 1)
    failed = [f"{k}: {x}" for k, v in results.items() if isinstance(v, dict)
              for x in v.get("failed", [])]  # fmt: skip
    if args.json:
        print(json.dumps(results))
    else:
        print(table(results, args))
        verdict = "all passed" if not failed else "; ".join(failed)
        print(f"\n{results['seconds']:.0f} s; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
