"""`prefire replay --live`: play captured sessions back through a real prefire proxy, with
their recorded timings, once without speculation and once with it, and compare.

Each pass starts a fresh proxy (the same `Proxy` as `prefire run`, in this process, with
an empty state dir, or the `--warmup` model) and the playback servers (`playback.py`),
then a client sends the recorded requests as the plan says (`plan.py`). The baseline
pass runs with `--no-speculate`; both use the same rules. Figures per session and in
total: completion times, reduction, hits, promotions, wasted calls (prefire's own
counters), whether every response the client got was byte-identical between the passes,
and what offline `prefire replay` says about the same capture and rules.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

from prefire.patterns import snapshot
from prefire.patterns.model import PatternModel
from prefire.replay import plan as plan_mod
from prefire.replay.live_client import Client, PassResult
from prefire.replay.live_compare import build_report
from prefire.replay.live_report import LiveReport, format_table
from prefire.replay.plan import Plan, PlanError
from prefire.replay.playback import ConnectTo, EntryTap, PassState, Playback
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, read
from prefire.rules.files import default_rules, read_rules
from prefire.rules.ruleset import RulesError, RuleSet

PASSES = ("baseline", "speculative")


class LiveError(Exception):
    """Live playback could not run; the message says why."""


class ProxyUnderTest(Protocol):
    """What a pass needs of the proxy it plays through: prefire.proxy.app.Proxy. The command
    line hands in the starter (StartProxy), so replay/ never imports proxy/."""

    ready: asyncio.Future[tuple[str, int]]
    addon: Any  # .observer: where the tap finds the live session of a request
    master: Any  # .addons: the tap is added after prefire's addon
    accounting: Any  # .report() and .sessions: prefire's own counters

    @property
    def url(self) -> str: ...

    async def run(self) -> int: ...

    def shutdown(self) -> None: ...


class StartProxy(Protocol):
    """Builds the proxy of one pass in `root` (a fresh directory), with the CA kept in
    `ca` across passes and `warm` (a pattern snapshot) as its learned model."""

    def __call__(
        self,
        root: Path,
        *,
        ca: Path,
        warm: bytes | None,
        rules_path: Path | None,
        speculate: bool,
        connect_to: ConnectTo,
        speculative_connect_to: ConnectTo,
    ) -> ProxyUnderTest: ...


# -- the command ---------------------------------------------------------------------


def run(
    inputs: list[Path],
    start_proxy: StartProxy,
    rules_path: Path | None = None,
    speed: float = 1.0,
    as_json: bool = False,
    html: Path | None = None,
    warmup: Path | None = None,
    max_pause_s: float = 30.0,
    tool_latency_s: float = 1.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    try:
        ruleset, plan = _prepare(
            inputs, rules_path, speed, warmup, max_pause_s, tool_latency_s, err
        )
    except _Refused as exc:
        print(exc.message, file=err)
        return exc.code
    progress = (lambda line: None) if as_json else (lambda line: print(line, file=err, flush=True))
    try:
        report = asyncio.run(
            play(plan, start_proxy, rules_path, ruleset, speed, warmup, tool_latency_s, progress)
        )
    except LiveError as exc:
        print(f"prefire replay --live: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print("prefire replay --live: stopped", file=err)
        return 130
    if html is not None:
        from prefire.replay.timeline import write_html

        # the page carries the same figures as --json
        write_html(html, report.to_json())
        progress(f"prefire replay --live: wrote {html}")
    if as_json:
        out.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(format_table(report))
    return 0


class _Refused(Exception):
    """The command cannot play these inputs: exit with `code` after printing `message`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _prepare(
    inputs: list[Path],
    rules_path: Path | None,
    speed: float,
    warmup: Path | None,
    max_pause_s: float,
    tool_latency_s: float,
    err: TextIO,
) -> tuple[RuleSet, Plan]:
    """The rules and the plan, after checking the options; warnings go to `err`."""
    if speed <= 0 or max_pause_s <= 0 or tool_latency_s < 0:
        raise _Refused(
            2,
            "prefire replay --live: --speed and --max-pause must be above 0, "
            "--tool-latency not below 0",
        )
    try:
        ruleset = read_rules(rules_path) if rules_path is not None else default_rules()
    except RulesError as exc:
        raise _Refused(2, str(exc)) from exc
    if warmup is not None and not warmup.exists():
        raise _Refused(2, f"prefire replay --live: {warmup}: no such file")
    try:
        plan = plan_mod.build(inputs, max_pause_s=max_pause_s, tool_latency_s=tool_latency_s)
    except PlanError as exc:
        raise _Refused(2, f"prefire replay --live: {exc}") from exc
    for error in plan.errors:
        print(f"prefire replay --live: {error}", file=err)
    if not plan.steps:
        raise _Refused(1, "prefire replay --live: no request could be read from the inputs")
    if rules_path is None:
        print(
            "prefire replay --live: no --rules: the packaged rules allow no tool to run early, "
            "so the speculative pass speculates on nothing; pass --rules FILE",
            file=err,
        )
    return ruleset, plan


async def play(
    plan: Plan,
    start_proxy: StartProxy,
    rules_path: Path | None,
    ruleset: RuleSet,
    speed: float,
    warmup: Path | None,
    tool_latency_s: float,
    progress: Any = print,
) -> LiveReport:
    """Both passes, and the report built from them."""
    warm = _warm_model(warmup) if warmup is not None else None
    steps = [s.rec for s in plan.steps]
    playback = Playback(_new_state(plan, speed, tool_latency_s))
    await playback.start()
    passes: dict[str, PassResult] = {}
    with tempfile.TemporaryDirectory(prefix="prefire-live-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            for name in PASSES:
                progress(
                    f"prefire replay --live: {name} pass, {len(steps)} requests, "
                    f"{len(plan.sessions)} sessions ..."
                )
                playback.state = _new_state(plan, speed, tool_latency_s)
                passes[name] = await _pass(
                    name,
                    plan,
                    playback,
                    start_proxy,
                    rules_path,
                    tmp,
                    warm,
                    speed,
                    speculate=name != "baseline",
                )
                progress(f"  {passes[name].wall_s:.2f} s")
        finally:
            await playback.close()
    return build_report(plan, passes, ruleset, rules_path, speed, warmup)


def _new_state(plan: Plan, speed: float, tool_latency_s: float) -> PassState:
    state = PassState([s.rec for s in plan.steps], speed, tool_latency_s)
    state.index = plan.tools
    state.tools = {s.index: s.label for s in plan.steps if s.kind == "tool"}
    state.override_s = {
        s.index: s.latency_override for s in plan.steps if s.latency_override is not None
    }
    return state


def _warm_model(path: Path) -> bytes:
    model = PatternModel()
    sim = Simulation(model=model)
    sim.warm(s for s in read([path]) if isinstance(s, ReplaySession))
    return snapshot.dump(model)


async def _pass(
    name: str,
    plan: Plan,
    playback: Playback,
    start_proxy: StartProxy,
    rules_path: Path | None,
    tmp: Path,
    warm: bytes | None,
    speed: float,
    speculate: bool,
) -> PassResult:
    proxy = start_proxy(
        tmp / name,
        ca=tmp / "ca",
        warm=warm,
        rules_path=rules_path,
        speculate=speculate,
        connect_to=playback.route(False, plan.origins),
        speculative_connect_to=playback.route(True, plan.origins),
    )
    tap = EntryTap(playback.state, proxy.addon.observer)
    proxy.master.addons.add(tap)
    serving = asyncio.create_task(proxy.run())
    either: list[asyncio.Future[Any]] = [serving, proxy.ready]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not proxy.ready.done():
        await serving
        raise LiveError("the proxy under test did not start")
    client = Client(plan, playback.state, proxy.url, speed)
    playing = asyncio.create_task(client.run())
    try:
        # Ctrl-C and SIGTERM stop the proxy under test (its own handlers): stop here too
        await asyncio.wait({playing, serving}, return_when=asyncio.FIRST_COMPLETED)
        if not playing.done():
            playing.cancel()
            raise LiveError(f"the proxy under test stopped during the {name} pass (interrupted?)")
        wall = playing.result()
    finally:
        proxy.shutdown()
        await serving
    sessions = {key: _counters(c) for key, c in proxy.accounting.sessions.items()}
    return PassResult(
        name,
        client.t0,
        client.results,
        playback.state,
        tap.live_sessions,
        proxy.accounting.report(),
        sessions,
        wall,
    )


def _counters(c: Any) -> dict[str, Any]:
    return {k: getattr(c, k) for k in c.__slots__}
