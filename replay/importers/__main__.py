"""`python -m prefire.replay.importers {bfcl,tau2} --out FILE [--domain D] [--limit N]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prefire.replay.importers._common import SuiteMissingError, write_jsonl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prefire.replay.importers",
        description="Write a benchmark suite's sessions as OpenAI-messages JSONL "
        "(one session per line) with real tool results.",
    )
    parser.add_argument("suite", choices=("bfcl", "tau2"))
    parser.add_argument("--out", required=True, help="output JSONL file ('-' for standard output)")
    parser.add_argument(
        "--domain", choices=("retail", "airline", "telecom"), help="tau2 domain (required for tau2)"
    )
    parser.add_argument(
        "--category",
        action="append",
        metavar="NAME",
        help="BFCL category, repeatable (default: all four multi_turn_* categories)",
    )
    parser.add_argument("--limit", type=int, default=None, help="write at most N sessions")
    return parser


def _sessions(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Iterator[Any]:
    # Imported here so `--help` works without either suite installed.
    if args.suite == "bfcl":
        if args.domain:
            parser.error("--domain is for tau2; BFCL takes --category")
        from prefire.replay.importers import bfcl

        return bfcl.iter_sessions(args.category or bfcl.CATEGORIES, limit=args.limit)
    if not args.domain:
        parser.error("tau2 needs --domain retail, airline or telecom")
    if args.category:
        parser.error("--category is for BFCL; tau2 takes --domain")
    from prefire.replay.importers import tau2_bench

    return tau2_bench.iter_sessions(args.domain, limit=args.limit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be >= 0")
    try:
        sessions = _sessions(args, parser)
    except (SuiteMissingError, ValueError) as exc:
        # A missing suite or a bad choice: say what to do, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        counts = write_jsonl(sessions, sys.stdout)
    else:
        counts = write_jsonl(sessions, Path(args.out))
    # Counts go to stderr so `--out -` leaves standard output pure JSONL.
    print(json.dumps({"out": args.out, **counts.summary()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
