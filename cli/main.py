"""Command-line parsing only; each command dispatches to the module that does the work."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import orjson

from prefire.proxy import logs
from prefire.proxy.state import (
    DEFAULT_MAX_BODY,
    StateDir,
    StateError,
    default_state_dir,
    proxy_env,
)

DESCRIPTION = """\
Make tool-using LLM agents finish sooner. prefire is a transparent HTTP(S) proxy
between an unmodified agent and its LLM provider and tools (MCP, REST): it learns
which tool calls follow which, and where their arguments come from, and runs the
calls your rules allow early, so their results are ready when the agent asks."""

EPILOG = """\
start here:
  prefire demo                          a local agent, without then with speculation
  prefire run -- python my_agent.py     run an agent through the proxy
  prefire run  +  eval "$(prefire env)" point an existing shell at it
  prefire COMMAND --help                the options of a command"""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (0 to 65535)")
    return port


def _common(p: argparse.ArgumentParser, listen_port_help: str) -> None:
    p.add_argument(
        "--listen-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    p.add_argument("--listen-port", type=_port, default=8080, help=listen_port_help)
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="holds the CA and learned state "
        "(default $PREFIRE_STATE_DIR or ~/.local/state/prefire)",
    )


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size(text: str) -> int:
    """A byte count: 8388608, 512k, 8m, 8MiB, 1g."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    digits = t.rstrip("kmg")
    unit = t[len(digits) :]
    if not digits.isdigit() or unit not in _UNITS or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 8m, 512k or a byte count)")
    return int(digits) * _UNITS[unit]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. {"readOnlyHint": true}')
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefire",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run the proxy (optionally around a command: prefire run -- CMD ...)"
    )
    _common(run, "port (default 8080; 0 picks a free one, which the proxy prints)")
    run.add_argument(
        "--mode",
        default="regular",
        help="mitmproxy mode: regular (default), reverse:URL, upstream:URL",
    )
    run.add_argument(
        "--capture",
        type=Path,
        default=None,
        metavar="DIR",
        help="write events JSONL and .mitm flows here",
    )
    run.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="log lines on stderr: console (default, for people) or json (one object a line, "
        "for log collectors)",
    )
    run.add_argument(
        "--proxy-auth",
        default=None,
        metavar="SPEC",
        help="require proxy authentication (mitmproxy's proxyauth, e.g. user:pass); "
        "needed to listen on a non-loopback address",
    )
    run.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback address without --proxy-auth (anyone who can reach "
        "the port can use the proxy and its learned state)",
    )
    run.add_argument(
        "--ssl-insecure",
        action="store_true",
        help="do not verify upstream TLS certificates (testing only)",
    )
    run.add_argument(
        "--rules",
        type=Path,
        default=None,
        metavar="FILE",
        help="tool-safety rules: which tools may run early (default: the packaged file, "
        "which allows none); reloaded when the file changes",
    )
    run.add_argument(
        "--no-speculate",
        action="store_true",
        help="observe and learn, but never run anything early (the baseline)",
    )
    run.add_argument(
        "--store",
        default="embedded",
        metavar="URL",
        help="where replicas share learned patterns and results: 'embedded' (default: this "
        "process alone) or a Redis URL, redis://[USER:PASS@]HOST:PORT/DB (rediss:// for TLS)",
    )
    run.add_argument(
        "--store-prefix",
        default="prefire",
        metavar="P",
        help="prefix of every Redis key and channel (default prefire); replicas that should "
        "act as one use the same one",
    )
    run.add_argument(
        "--store-wait",
        type=float,
        default=5.0,
        metavar="S",
        help="longest an agent request waits for a call running on another replica before "
        "going upstream itself (default 5)",
    )
    run.add_argument(
        "--store-timeout",
        type=float,
        default=0.1,
        metavar="S",
        help="timeout of each Redis operation; past it the replica carries on alone until "
        "Redis answers again (default 0.1)",
    )
    run.add_argument(
        "--max-body",
        type=_size,
        default=DEFAULT_MAX_BODY,
        metavar="SIZE",
        help="bodies larger than this (bytes, or with k/m/g: 512k, 8m) are streamed through "
        "without being buffered, parsed or learned from (default 8m)",
    )
    run.add_argument(
        "cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...: run CMD with the proxy environment"
    )

    replay = sub.add_parser("replay", help="score what speculation would save on recorded sessions")
    replay.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="recorded sessions: OpenAI-messages JSONL, the events JSONL or the directory "
        "that `prefire run --capture DIR` writes, mitmproxy .mitm flows, or HAR",
    )
    replay.add_argument(
        "--format",
        default="auto",
        choices=("auto", "openai", "capture", "mitm", "har"),
        help="how to read every INPUT (default auto: each file by its extension and first "
        "line, a directory as a capture)",
    )
    replay.add_argument(
        "--tool-latency",
        type=float,
        default=1.0,
        metavar="S",
        help="tool time where none is recorded",
    )
    replay.add_argument(
        "--llm-latency",
        type=float,
        default=2.0,
        metavar="S",
        help="LLM turn time where none is recorded",
    )
    replay.add_argument(
        "--warmup", type=Path, default=None, metavar="FILE", help="learn from FILE first, unscored"
    )
    replay.add_argument(
        "--baseline",
        action="store_true",
        help="also score a naive predictor for comparison: the tool that most often followed "
        "the previous one, with that tool's most frequent arguments",
    )
    replay.add_argument(
        "--rules",
        type=Path,
        default=None,
        metavar="FILE",
        help="decide which tools may run early, and the budgets, from this rules file "
        "(default: every tool except those the workload labels as writes; with --live, the "
        "packaged rules, which allow none)",
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    live = replay.add_argument_group(
        "live playback (--live)",
        "play .mitm captures (or capture directories) back through a real prefire proxy "
        "with their recorded timings, without and with speculation",
    )
    live.add_argument(
        "--live",
        action="store_true",
        help="play the captures back live instead of simulating them offline",
    )
    live.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="play recorded timings X times faster (default 1)",
    )
    live.add_argument(
        "--html", type=Path, default=None, metavar="FILE", help="also write a timeline page"
    )
    live.add_argument(
        "--max-pause",
        type=float,
        default=30.0,
        metavar="S",
        help="shorten recorded pauses of the agent longer than S seconds (default 30)",
    )

    rules = sub.add_parser("rules", help="check a rules file, or explain what it decides")
    rules_sub = rules.add_subparsers(dest="rules_command", title="commands", metavar="COMMAND")
    rules.set_defaults(help_text=rules.format_help)
    check = rules_sub.add_parser("check", help="validate FILE; errors name the line and key")
    check.add_argument("file", type=Path, metavar="FILE", help="the rules file (YAML)")
    explain = rules_sub.add_parser("explain", help="which rule decides TOOL, and why")
    explain.add_argument("file", type=Path, metavar="FILE", help="the rules file (YAML)")
    explain.add_argument("tool", metavar="TOOL", help="the tool's name")
    explain.add_argument(
        "--mcp-annotations",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="the tool's MCP annotations, e.g. '{\"readOnlyHint\": true}'",
    )
    explain.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="S",
        help="the tool's MCP server URL or name (repeat to give both)",
    )
    explain.add_argument("--method", default=None, metavar="M", help="HTTP method of a REST tool")
    explain.add_argument("--host", default=None, metavar="H", help="host of a REST tool")

    stats = sub.add_parser(
        "stats",
        help="early calls per tool and why others were not made: the last run of the proxy",
    )
    stats.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the proxy's state dir (default $PREFIRE_STATE_DIR or ~/.local/state/prefire)",
    )
    stats.add_argument("--json", action="store_true", help="print one JSON object")

    demo = sub.add_parser(
        "demo", help="run a local agent workload without, then with speculation, and compare"
    )
    demo.add_argument("--tasks", type=int, default=12, metavar="N", help="tasks (default 12)")
    demo.add_argument("--seed", type=int, default=1, metavar="S", help="workload seed")
    demo.add_argument("--concurrency", type=int, default=4, metavar="N", help="tasks at once")
    demo.add_argument(
        "--think", type=float, default=1.25, metavar="S", help="mean LLM think time per turn"
    )
    demo.add_argument(
        "--warmup",
        type=int,
        default=12,
        metavar="N",
        help="other tasks prefire learns from before the measured runs (default 12; 0: none)",
    )
    demo.add_argument(
        "--workload",
        choices=("mixed", "reads"),
        default="mixed",
        help="mixed: support tasks with writes (default); reads: tool-heavy, side-effect free",
    )
    demo.add_argument("--timeout", type=float, default=240.0, metavar="S", help="for it all")
    demo.add_argument(
        "--chain-depth",
        type=int,
        metavar="N",
        help="the rules' budget max_chain_depth for the speculative run (0: no chaining)",
    )
    demo.add_argument(
        "--capture",
        type=Path,
        default=None,
        metavar="DIR",
        help="capture the baseline run's traffic here (flows, events and the rules used), "
        "for prefire replay",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object")

    env = sub.add_parser("env", help="print the export lines that point a shell at the proxy")
    _common(env, "the port the proxy listens on (default 8080)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Without its command, `prefire` or `prefire rules` shows what it offers (argparse
    # would only say "required: COMMAND").
    if args.command is None or (args.command == "rules" and args.rules_command is None):
        print(getattr(args, "help_text", parser.format_help)(), file=sys.stderr, end="")
        return 2
    if args.command == "replay" and not args.live:
        flags = (("--html", args.html), ("--speed", args.speed != 1.0))
        given = [f for f, v in (*flags, ("--max-pause", args.max_pause != 30.0)) if v]
        if given:
            parser.error(f"{', '.join(given)}: only with --live")
    if args.command == "replay" and args.live and (args.baseline or args.format != "auto"):
        parser.error("--baseline and --format are for offline replay, not with --live")
    state = StateDir(getattr(args, "state_dir", None) or default_state_dir())
    commands = {
        "env": _env,
        "replay": _replay,
        "rules": _rules,
        "demo": _demo,
        "stats": _stats,
        "run": _run_command,
    }
    command = commands.get(args.command)
    return command(args, state) if command is not None else 2


def _env(args: argparse.Namespace, state: StateDir) -> int:
    if args.listen_port == 0:
        print(
            "prefire env: --listen-port 0 is not a port a client can reach; give the port "
            "the proxy listens on (`prefire run --listen-port 0` prints it: "
            "'prefire listening on http://HOST:PORT'), or let `prefire run -- CMD` set the "
            "environment of CMD itself",
            file=sys.stderr,
        )
        return 2
    try:
        state.ensure()
    except StateError as exc:
        print(f"prefire env: {exc}", file=sys.stderr)
        return 2
    for key, value in proxy_env(args.listen_host, args.listen_port, state).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _replay(args: argparse.Namespace, state: StateDir) -> int:
    if args.live:
        from prefire.proxy.app import start_under_test
        from prefire.replay import live

        logs.configure("console", level=logging.WARNING)  # the proxy under test is quiet
        return live.run(
            args.inputs,
            start_under_test,
            rules_path=args.rules,
            speed=args.speed,
            as_json=args.json,
            html=args.html,
            warmup=args.warmup,
            max_pause_s=args.max_pause,
            tool_latency_s=args.tool_latency,
        )
    from prefire.replay import report

    return report.run(
        args.inputs,
        fmt=args.format,
        tool_latency=args.tool_latency,
        llm_latency=args.llm_latency,
        warmup=args.warmup,
        as_json=args.json,
        with_baseline=args.baseline,
        rules_path=args.rules,
    )


def _rules(args: argparse.Namespace, state: StateDir) -> int:
    from prefire.cli import rules as rules_cli

    if args.rules_command == "check":
        return rules_cli.check(args.file)
    return rules_cli.explain(
        args.file, args.tool, args.mcp_annotations, args.server, args.method, args.host
    )


def _demo(args: argparse.Namespace, state: StateDir) -> int:
    from prefire.proxy.demo import runner

    return runner.run(
        tasks=args.tasks,
        seed=args.seed,
        concurrency=args.concurrency,
        think_s=args.think,
        timeout_s=args.timeout,
        as_json=args.json,
        warmup=args.warmup,
        workload=args.workload,
        capture=args.capture,
        chain_depth=args.chain_depth,
    )


def _stats(args: argparse.Namespace, state: StateDir) -> int:
    from prefire.proxy import accounting

    try:
        stats = accounting.read(state.root)
    except accounting.StatsError as exc:
        print(f"prefire stats: {exc}", file=sys.stderr)
        return 1
    if stats is None:
        print(
            f"prefire stats: no stats in {state.root} yet (run the proxy first)",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(
        orjson.dumps(stats).decode() + "\n" if args.json else accounting.format_table(stats)
    )
    return 0


def _run_command(args: argparse.Namespace, state: StateDir) -> int:
    logs.configure(args.log_format)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    return asyncio.run(_run(args, state, cmd))


async def _run(args: argparse.Namespace, state: StateDir, cmd: list[str]) -> int:
    from prefire.proxy.store import check_url

    try:
        check_url(args.store)
    except ValueError as exc:
        print(f"prefire run: {exc}", file=sys.stderr)
        return 2
    from prefire.proxy.app import Proxy, ProxyConfig
    from prefire.rules.ruleset import RulesError

    if not _loopback(args.listen_host) and not (args.proxy_auth or args.allow_remote):
        print(
            f"prefire run: refusing to listen on {args.listen_host} without --proxy-auth: "
            "other machines could use the proxy; add --proxy-auth USER:PASS, or --allow-remote "
            "if the network is trusted",
            file=sys.stderr,
        )
        return 2
    config = ProxyConfig(
        state=state,
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        mode=args.mode,
        capture_dir=args.capture,
        ssl_insecure=args.ssl_insecure,
        max_body=args.max_body,
        rules_path=args.rules,
        speculate=not args.no_speculate,
        proxy_auth=args.proxy_auth,
        store_url=args.store,
        store_prefix=args.store_prefix,
        store_wait_s=args.store_wait,
        store_timeout_s=args.store_timeout,
    )
    try:
        proxy = Proxy(config)
    except RulesError as exc:
        print(f"prefire run: the rules file cannot be used:\n{exc}", file=sys.stderr)
        return 2
    except (StateError, ValueError) as exc:
        print(f"prefire run: {exc}", file=sys.stderr)
        return 2
    if not cmd:
        return await proxy.run()

    async def run_command() -> int:
        child = await asyncio.create_subprocess_exec(*cmd, env={**os.environ, **proxy.env()})
        return await child.wait()

    return await proxy.run(until_ready=run_command)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
