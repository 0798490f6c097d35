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
import functools
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Protocol, TextIO

import aiohttp
import orjson
import yarl
from mitmproxy.net import encoding
from multidict import CIMultiDict

from prefire.patterns import snapshot
from prefire.patterns.model import PatternModel
from prefire.replay import plan as plan_mod
from prefire.replay.plan import Plan, PlanError, Step
from prefire.replay.playback import ConnectTo, DoorRequest, EntryTap, PassState, Playback
from prefire.replay.recorded import HOP_HEADERS
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, read
from prefire.rules.files import default_rules, read_rules
from prefire.rules.ruleset import RulesError, RuleSet

PASSES = ("baseline", "speculative")
_SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_MIN_GAP_S = 0.05  # shorter chunk gaps are not judged: a few ms of scheduling noise is 10%


@dataclass(slots=True)
class StepResult:
    t_sent: float = 0.0
    t_headers: float | None = None
    t_end: float = 0.0
    status: int | None = None
    body: bytes = b""  # decoded
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, raw bytes)
    error: str | None = None


@dataclass(slots=True)
class PassResult:
    name: str
    t0: float
    results: dict[int, StepResult]
    state: PassState
    live_sessions: dict[int, Any]
    accounting: dict[str, Any]
    session_counters: dict[Any, dict[str, Any]]
    wall_s: float = 0.0


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
    if speed <= 0 or max_pause_s <= 0 or tool_latency_s < 0:
        print(
            "prefire replay --live: --speed and --max-pause must be above 0, "
            "--tool-latency not below 0",
            file=err,
        )
        return 2
    try:
        ruleset = read_rules(rules_path) if rules_path is not None else default_rules()
    except RulesError as exc:
        print(exc, file=err)
        return 2
    if warmup is not None and not warmup.exists():
        print(f"prefire replay --live: {warmup}: no such file", file=err)
        return 2
    try:
        plan = plan_mod.build(inputs, max_pause_s=max_pause_s, tool_latency_s=tool_latency_s)
    except PlanError as exc:
        print(f"prefire replay --live: {exc}", file=err)
        return 2
    for error in plan.errors:
        print(f"prefire replay --live: {error}", file=err)
    if not plan.steps:
        print("prefire replay --live: no request could be read from the inputs", file=err)
        return 1
    if rules_path is None:
        print(
            "prefire replay --live: no --rules: the packaged rules allow no tool to run early, "
            "so the speculative pass speculates on nothing; pass --rules FILE",
            file=err,
        )
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

        write_html(html, report)
        progress(f"prefire replay --live: wrote {html}")
    if as_json:
        out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(format_table(report))
    return 0


async def play(
    plan: Plan,
    start_proxy: StartProxy,
    rules_path: Path | None,
    ruleset: RuleSet,
    speed: float,
    warmup: Path | None,
    tool_latency_s: float,
    progress: Any = print,
) -> dict[str, Any]:
    """Both passes, and the report (a dict; `timelines` holds what the HTML draws)."""
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


def _unused(counters: dict[str, Any]) -> int:
    """Early calls that answered nothing: wasted, failed or expired."""
    return sum(counters.get(k, 0) for k in ("wasted", "failed", "expired"))


def _counters(c: Any) -> dict[str, Any]:
    return {k: getattr(c, k) for k in c.__slots__}


# -- the playback client ---------------------------------------------------------------


class Client:
    """Sends the recorded requests through the proxy as the plan orders them."""

    def __init__(self, plan: Plan, state: PassState, proxy_url: str, speed: float) -> None:
        self.plan = plan
        self.state = state
        self.proxy_url = proxy_url
        self.speed = speed
        self.results: dict[int, StepResult] = {}
        self.t0 = 0.0
        self._sent: dict[int, asyncio.Event] = {}
        self._done: dict[int, asyncio.Event] = {}

    async def run(self) -> float:
        loop = asyncio.get_running_loop()
        self._sent = {s.index: asyncio.Event() for s in self.plan.steps}
        self._done = {s.index: asyncio.Event() for s in self.plan.steps}
        connector = aiohttp.TCPConnector(ssl=False, limit=0)
        async with aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        ) as http:
            self.t0 = loop.time()
            last_end = self.t0
            for segment in self.plan.segments:
                start = loop.time()
                fg = [self.plan.steps[i] for i in segment if not self.plan.steps[i].background]
                bg = [self.plan.steps[i] for i in segment if self.plan.steps[i].background]
                background = [asyncio.create_task(self._step(http, s, start)) for s in bg]
                await asyncio.gather(*(self._step(http, s, start) for s in fg))
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                ends = [self.results[s.index].t_end for s in fg if s.index in self.results]
                last_end = max([last_end, *ends])
        return last_end - self.t0

    async def _step(self, http: aiohttp.ClientSession, step: Step, start: float) -> None:
        loop = asyncio.get_running_loop()
        if step.after is not None:
            await self._sent[step.after].wait()
        for d in step.deps:
            await self._done[d].wait()
        ends = [self.results[d].t_end for d in step.deps]
        anchor = max(ends) if ends else start
        delay = anchor + step.pause_s / self.speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        rec = step.rec
        result = self.results[step.index] = StepResult(t_sent=loop.time())
        self.state.will_send(step.index)
        self._sent[step.index].set()
        headers = CIMultiDict((k, v) for k, v in rec.headers if k.lower() not in HOP_HEADERS)
        raw: list[bytes] = []
        # generous, but a request nobody answers must not hold the pass up for ever
        limit = None if step.background else 30 + 4 * rec.duration_s / self.speed
        try:
            async with http.request(
                rec.method,
                yarl.URL(rec.url, encoded=True),
                headers=headers,
                data=rec.body or None,
                proxy=self.proxy_url,
                skip_auto_headers=_SKIP_AUTO,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=limit, sock_connect=30),
            ) as resp:
                result.t_headers = loop.time()
                result.status = resp.status
                async for piece in resp.content.iter_any():
                    result.arrivals.append((loop.time(), len(piece)))
                    raw.append(piece)
                content_encoding = resp.headers.get("content-encoding", "identity")
        except asyncio.CancelledError:
            if not step.background:
                raise
            content_encoding = "identity"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            result.error = repr(exc)
            content_encoding = "identity"
        finally:
            result.t_end = loop.time()
            self.state.was_answered(step.index)
            self._done[step.index].set()
        body = b"".join(raw)
        try:
            decoded = encoding.decode(body, content_encoding)
            result.body = decoded if isinstance(decoded, bytes) else body
        except ValueError:
            result.body = body


# -- the report ------------------------------------------------------------------------


def build_report(
    plan: Plan,
    passes: dict[str, PassResult],
    ruleset: RuleSet,
    rules_path: Path | None,
    speed: float,
    warmup: Path | None,
) -> dict[str, Any]:
    base, spec = passes["baseline"], passes["speculative"]
    offline = _offline(plan, ruleset, warmup)
    sessions = []
    for sid, sp in plan.sessions.items():
        steps = [plan.steps[i] for i in sp.steps if not plan.steps[i].background]
        b_s, s_s = _completion(base, steps), _completion(spec, steps)
        served = [spec.state.served[s.index] for s in steps if s.index in spec.state.served]
        counters = _session_counters(spec, steps)
        live_hits = {s.index for s in steps if s.index in spec.state.served}
        off = offline["sessions"].get(sp.key, {"hits": 0, "hit_calls": set()})
        differ = _differences(plan, sp, spec, off["hit_calls"], live_hits)
        sessions.append(
            {
                "id": sid,
                "label": sp.label,
                "file": sp.file,
                "requests": len(steps),
                "tool_calls": len(sp.calls),
                "baseline_s": round(b_s, 3),
                "speculative_s": round(s_s, 3),
                "reduction": _ratio(b_s - s_s, b_s),
                "hits": len(served),
                "eager_hits": sum(kind == "eager" for kind, _ in served),
                "chained_hits": sum(kind == "chained" for kind, _ in served),
                "promotions": sum(promoted for _, promoted in served),
                "fired": counters.get("fired", 0),
                "wasted": _unused(counters),
                "identical": _identical(base, spec, steps),
                "same_as_recorded": all(
                    _as_recorded(base, s) and _as_recorded(spec, s) for s in steps
                ),
                "offline_hits": off["hits"],
                "hits_differ": differ,
            }
        )
    fg = [s for s in plan.steps if not s.background]
    totals_spec = spec.accounting["totals"]
    unrecorded = [d for d in spec.state.doors if d.speculative and d.step is None]
    early = Counter(d.tool or _short(d.url) for d in spec.state.doors if d.speculative)
    report: dict[str, Any] = {
        "inputs": [str(p) for p in plan.files],
        "rules": str(rules_path) if rules_path else "packaged default (allows nothing)",
        "speed": speed,
        "warmup": str(warmup) if warmup else None,
        "sessions": sessions,
        "totals": {
            "sessions": len(sessions),
            "requests": len(plan.steps),
            "requests_sent": {p.name: len(p.results) for p in passes.values()},
            "tool_calls": sum(s["tool_calls"] for s in sessions),
            "baseline_s": round(base.wall_s, 3),
            "speculative_s": round(spec.wall_s, 3),
            "reduction": _ratio(base.wall_s - spec.wall_s, base.wall_s),
            "hits": totals_spec["used"],
            "eager_hits": sum(s["eager_hits"] for s in sessions),
            "chained_hits": sum(s["chained_hits"] for s in sessions),
            # hits by the depth of the early call that served them (0: a decision point)
            "depth_used": _depths(spec, fg),
            "promotions": totals_spec["promotions"],
            "fired": totals_spec["fired"],
            "wasted": _unused(totals_spec),
            "failed": totals_spec["failed"],
            "identical": _identical(base, spec, fg),
            "same_as_recorded": all(_as_recorded(base, s) and _as_recorded(spec, s) for s in fg),
            "offline_hits": offline["totals"]["hits"],
            "offline_prefired": offline["totals"]["prefired"],
            "offline_prefired_used": offline["totals"]["prefired_used"],
        },
        "speculative_requests": dict(early.most_common()),
        # what reached the tool servers (the playback), per tool: the agent's and prefire's
        "upstream_calls": {
            p.name: dict(sorted(Counter(d.tool for d in p.state.doors if d.tool).items()))
            for p in passes.values()
        },
        "unrecorded_speculative": [_door_row(d) for d in unrecorded],
        "unmatched": _unmatched(plan, passes),
        "client_errors": _client_errors(plan, passes),
        "stream_timing": {p.name: _stream_timing(plan, p, speed) for p in passes.values()},
        "input_errors": [str(e) for e in plan.errors],
        "notes": plan.notes + _notes(plan, passes),
        "timelines": _timelines(plan, passes),
    }
    return report


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _completion(p: PassResult, steps: list[Step]) -> float:
    done = [p.results[s.index] for s in steps if s.index in p.results]
    if not done:
        return 0.0
    return max(r.t_end for r in done) - min(r.t_sent for r in done)


def _session_counters(p: PassResult, steps: list[Step]) -> dict[str, Any]:
    keys = {p.live_sessions[s.index] for s in steps if s.index in p.live_sessions}
    out: Counter[str] = Counter()
    for key in keys:
        for k, v in p.session_counters.get(key, {}).items():
            out[k] += v
    return dict(out)


def _identical(a: PassResult, b: PassResult, steps: list[Step]) -> bool:
    for s in steps:
        ra, rb = a.results.get(s.index), b.results.get(s.index)
        if ra is None or rb is None or (ra.status, ra.body) != (rb.status, rb.body):
            return False
    return True


def _recorded_body(raw: bytes, enc: str) -> bytes:
    try:
        decoded = encoding.decode(raw, enc)
    except ValueError:
        return raw
    return decoded if isinstance(decoded, bytes) else raw


def _as_recorded(p: PassResult, s: Step) -> bool:
    r = p.results.get(s.index)
    rec = s.rec
    if r is None or rec.status is None:
        return r is not None and rec.status is None
    enc = next((v for k, v in rec.response_headers if k.lower() == "content-encoding"), "")
    return r.status == rec.status and r.body == _recorded_body(rec.response_body, enc or "identity")


def _short(url: str) -> str:
    return url.split("?")[0]


def _door_row(d: DoorRequest) -> dict[str, Any]:
    return {
        "tool": d.tool,
        "method": d.method,
        "url": d.url,
        "why": d.why,
        "answered_after_s": round(d.t_end - d.t_start, 3),
    }


def _unmatched(plan: Plan, passes: dict[str, PassResult]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in passes.values():
        for d in p.state.doors:
            if not d.speculative and d.step is None:
                rows.append({"pass": p.name, **_door_row(d)})
        for text in p.state.unexpected:
            rows.append(
                {"pass": p.name, "url": text, "why": "the proxy sent a request never recorded"}
            )
    for s in plan.steps:
        if s.rec.status is None:
            rows.append(
                {
                    "pass": "both",
                    "method": s.rec.method,
                    "url": s.rec.url,
                    "why": f"recorded without a response ({s.rec.error or 'none'}); "
                    "answered with 502",
                }
            )
    return rows


def _client_errors(plan: Plan, passes: dict[str, PassResult]) -> list[dict[str, Any]]:
    return [
        {"pass": p.name, "method": plan.steps[i].rec.method, "url": plan.steps[i].rec.url}
        | {"error": r.error}
        for p in passes.values()
        for i, r in sorted(p.results.items())
        if r.error
    ]


def _stream_timing(plan: Plan, p: PassResult, speed: float) -> dict[str, Any]:
    """How closely the streamed responses the proxy forwarded kept their recorded chunk
    timing, at the client: for each recorded gap between chunks of 50 ms or more, the
    replayed gap's error as a share of the recorded one (scaled by the speed); and for
    each stream, the time from its first chunk to its last, likewise."""
    errors: list[float] = []
    spans: list[float] = []
    streams = 0
    worst: dict[str, Any] = {}
    for s in plan.steps:
        rec, r = s.rec, p.results.get(s.index)
        if rec.chunks is None or len(rec.chunks) < 2 or r is None or s.index in p.state.served:
            continue
        if s.background or r.error or r.t_headers is None:
            continue
        streams += 1
        replayed = _arrival_times(rec.chunks, r.arrivals)
        if replayed is None:
            continue
        span = (rec.chunks[-1][0] - rec.chunks[0][0]) / speed
        if span >= _MIN_GAP_S:
            spans.append(abs((replayed[-1] - replayed[0]) - span) / span)
        for k in range(1, len(rec.chunks)):
            gap = (rec.chunks[k][0] - rec.chunks[k - 1][0]) / speed
            if gap < _MIN_GAP_S:
                continue
            err = abs((replayed[k] - replayed[k - 1]) - gap) / gap
            errors.append(err)
            if err >= worst.get("error", -1.0):
                worst = {
                    "error": round(err, 4),
                    "step": s.index,
                    "recorded_gap_s": round(gap, 4),
                    "replayed_gap_s": round(replayed[k] - replayed[k - 1], 4),
                }
    return {
        "streams": streams,
        "gaps": len(errors),
        "median_gap_error": round(median(errors), 4) if errors else 0.0,
        "max_gap_error": round(max(errors), 4) if errors else 0.0,
        "max_stream_error": round(max(spans), 4) if spans else 0.0,
        "worst": worst or None,
    }


def _arrival_times(
    chunks: list[tuple[float, int]], arrivals: list[tuple[float, int]]
) -> list[float] | None:
    """When the client had received the bytes of each recorded chunk."""
    out: list[float] = []
    got, k = 0, 0
    need = 0
    for _, size in chunks:
        need += size
        while got < need and k < len(arrivals):
            got += arrivals[k][1]
            k += 1
        if got < need:
            return None
        out.append(arrivals[k - 1][0])
    return out


def _offline(plan: Plan, ruleset: RuleSet, warmup: Path | None) -> dict[str, Any]:
    """Offline replay of the same flows under the same rules, call by call."""
    allowed = functools.cache(lambda tool: ruleset.decide(tool).allowed)
    sim = _PerCall(
        eligible=lambda tool, session: allowed(tool),
        budget=ruleset.budgets,
        cost=functools.cache(ruleset.cost),
    )
    if warmup is not None:
        sim.warm(s for s in read([warmup]) if isinstance(s, ReplaySession))
    per: dict[str, dict[str, Any]] = {}
    for session in plan.offline:
        before = sim.totals.hits
        sim.replay(session)
        per[session.id] = {
            "hits": sim.totals.hits - before,
            "hit_calls": {cid for sid, cid in sim.hit_calls if sid == session.id},
        }
    return {"sessions": per, "totals": sim.totals.summary()}


class _PerCall(Simulation):
    """The offline simulation, remembering which calls were hits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hit_calls: set[tuple[str, str]] = set()

    def _score_call(self, call: Any, session: ReplaySession, turn: Any) -> None:
        before = self.totals.hits
        super()._score_call(call, session, turn)
        if self.totals.hits > before:
            self.hit_calls.add((session.id, call.call_id))


_WHY = {
    "eager": "served by an eager start (the call was certain once the LLM's stream closed "
    "it); offline replay scores predicted starts only",
    "predicted_live_only": "predicted live but not offline: the live model learns as the "
    "requests happen, concurrent sessions interleaved",
    "no_http": "no HTTP request ran this call (a tool local to the agent): nothing to start "
    "early live; offline replay scores it",
    "rest_unlearned": "a REST tool with no binding in the rules: live, prefire learns its URL "
    "only from two earlier calls; offline replay assumes it could call it",
    "not_fired_live": "fired offline, not live (live budgets: concurrency cap, back-off; or "
    "the live model ranked it lower at that moment)",
}


def _differences(
    plan: Plan, sp: Any, spec: PassResult, offline_hits: set[str], live_hits: set[int]
) -> dict[str, dict[str, Any]]:
    """Why a call was a hit live and not offline, or the other way round."""
    out: dict[str, dict[str, Any]] = {}

    def add(why: str, tool: str) -> None:
        row = out.setdefault(why, {"calls": 0, "tools": [], "why": _WHY[why]})
        row["calls"] += 1
        if tool not in row["tools"]:
            row["tools"].append(tool)

    for call in sp.calls:
        off = call.call_id in offline_hits
        live = call.step is not None and call.step in live_hits
        if off == live:
            continue
        if live:
            kind = spec.state.served[call.step][0]
            add("eager" if kind == "eager" else "predicted_live_only", call.tool)
        elif call.step is None:
            add("no_http", call.tool)
        elif not plan.steps[call.step].rec.tool:
            add("rest_unlearned", call.tool)
        else:
            add("not_fired_live", call.tool)
    return out


def _notes(plan: Plan, passes: dict[str, PassResult]) -> list[str]:
    notes = []
    spec = passes["speculative"]
    unrecorded = sum(1 for d in spec.state.doors if d.speculative and d.step is None)
    if unrecorded:
        notes.append(
            f"{unrecorded} early calls had no recorded answer (the agent never made them): "
            "answered with an error after the tool's recorded time, counted as wasted"
        )
    if any(p.state.unexpected for p in passes.values()):
        notes.append("the proxy sent requests that match no recorded request (see unmatched)")
    notes.append("credentials are redacted in captures, so every session plays back in one scope")
    return notes


def _depths(p: PassResult, steps: list[Step]) -> dict[str, int]:
    """Served requests by the chain depth of the early call that answered them, as
    offline replay's `depth_used` counts them (eager starts are depth 0 here)."""
    counts = Counter(p.state.depth.get(s.index, 0) for s in steps if s.index in p.state.served)
    return {str(d): n for d, n in sorted(counts.items())}


def _timelines(plan: Plan, passes: dict[str, PassResult]) -> list[dict[str, Any]]:
    """What the HTML draws, per session and pass: each request (sent, headers, end,
    relative to the session's first request in that pass), and prefire's early calls."""
    out = []
    early_of: dict[tuple[str, str], list[DoorRequest]] = {}
    for p in passes.values():
        for d in p.state.doors:
            if d.speculative and d.step is not None and plan.steps[d.step].session:
                early_of.setdefault((p.name, plan.steps[d.step].session), []).append(d)
    for sid, sp in plan.sessions.items():
        entry: dict[str, Any] = {"id": sid, "label": sp.label}
        for p in passes.values():
            rows: list[dict[str, Any]] = []
            results = [p.results[i] for i in sp.steps if i in p.results]
            origin = min((r.t_sent for r in results), default=p.t0)
            for i in sp.steps:
                s, r = plan.steps[i], p.results.get(i)
                if r is None or s.background:
                    continue
                served = p.state.served.get(i)
                rows.append(
                    {
                        "step": i,
                        "kind": s.kind,
                        "label": s.label,
                        "start": round(r.t_sent - origin, 4),
                        "end": round(r.t_end - origin, 4),
                        "recorded_s": round(s.rec.duration_s, 4),
                        "served": served[0] if served else None,
                        "promoted": bool(served and served[1]),
                        "depth": p.state.depth.get(i, 0) if served else None,
                    }
                )
            early = [
                {
                    "tool": d.tool or _short(d.url),
                    "start": round(d.t_start - origin, 4),
                    "end": round(d.t_end - origin, 4),
                    "recorded": d.step is not None,
                    # how the early call started, known once it served the agent's request
                    "served": p.state.served[d.step][0] if d.step in p.state.served else None,
                    "depth": p.state.depth.get(d.step) if d.step is not None else None,
                }
                for d in early_of.get((p.name, sid), [])
            ]
            rows.sort(key=lambda r: r["start"])
            entry[p.name] = {"requests": rows, "early": early}
        out.append(entry)
    return out


# -- the table -----------------------------------------------------------------------


def format_table(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [
        f"prefire replay --live: {len(report['inputs'])} file(s), {t['sessions']} sessions, "
        f"{t['requests']} requests a pass, speed {report['speed']:g}, rules: {report['rules']}",
        "",
        f"{'session':<34}{'reqs':>5}{'calls':>6}{'baseline':>10}{'spec':>9}{'saved':>8}"
        f"{'hits':>6}{'prom':>6}{'waste':>6}{'same':>6}{'offl':>6}",
    ]

    def row(name: str, r: dict[str, Any]) -> str:
        return (
            f"{name[:33]:<34}{r['requests']:>5}{r['tool_calls']:>6}{r['baseline_s']:>9.2f}s"
            f"{r['speculative_s']:>8.2f}s{r['reduction']:>8.1%}{r['hits']:>6}"
            f"{r['promotions']:>6}{r['wasted']:>6}{'yes' if r['identical'] else 'NO':>6}"
            f"{r['offline_hits']:>6}"
        )

    for s in report["sessions"]:
        lines.append(row(f"{s['id']} {s['label']}", s))
    lines.append(row("total (wall time of each pass)", t))
    lines.append("")
    lines.append(
        "same: every response the client got was byte-identical in both passes; offl: hits "
        "offline replay scores for the same capture and rules"
    )
    differ = [(s["id"], d) for s in report["sessions"] for d in s["hits_differ"].values()]
    if differ:
        lines.append("")
        lines.append("where live and offline hits differ:")
        for sid, d in differ:
            lines.append(f"  {sid}: {d['calls']} call(s) ({', '.join(d['tools'])}): {d['why']}")
    if report["unrecorded_speculative"]:
        lines.append("")
        lines.append("early calls with no recorded answer (counted as wasted):")
        for r in Counter(
            (d["tool"] or d["url"]) for d in report["unrecorded_speculative"]
        ).most_common():
            lines.append(f"  {r[0]}: {r[1]}")
    if report["unmatched"]:
        lines.append("")
        lines.append("unmatched requests:")
        for u in report["unmatched"]:
            lines.append(f"  [{u['pass']}] {u.get('method', '')} {u['url']}: {u['why']}")
    if report["client_errors"]:
        lines.append("")
        lines.append("requests the playback client could not complete:")
        for e in report["client_errors"]:
            lines.append(f"  [{e['pass']}] {e['method']} {e['url']}: {e['error']}")
    timing = report["stream_timing"]["baseline"]
    if timing["gaps"]:
        lines.append("")
        lines.append(
            f"stream timing (baseline): {timing['streams']} streams, {timing['gaps']} chunk gaps "
            f"of 50 ms or more, replayed within {timing['median_gap_error']:.1%} (median) and "
            f"{timing['max_gap_error']:.1%} (worst) of the recording; whole streams within "
            f"{timing['max_stream_error']:.1%}"
        )
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"
