"""Counters per tool: fired, used, wasted, failed, expired, promotions, seconds saved,
and why calls were not made early (skipped, by reason). Kept in memory, logged as
key-value lines, written to the state dir for `prefire stats`.

Each early call ends one way: used (it answered the agent at least once), failed (no
answer to serve: an error, a non-2xx status, a tool error), expired (its TTL passed
unused) or wasted (unused otherwise: invalidated, evicted, left at shutdown, waited for
too long). So, once no call is in flight, fired = used + wasted + failed + expired.
The counters are fed one stream of facts (Fired, Served, Ended, Skipped); a call counts
as fired once it is really made (after the shared store's claim: a call another replica
makes instead was never fired here, and one dropped before it started never ran either).
With a shared store a call fired on one replica may be used on another: the sum holds
over all replicas. The stats file holds one run of the proxy (the last one).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog
from lru import LRU

from prefire.patterns.events import SessionKey
from prefire.proxy.state import atomic_write

log = structlog.get_logger(__name__)

STATS_NAME = "stats.json"


@dataclass(slots=True)
class ToolCounters:
    fired: int = 0
    eager: int = 0
    predicted: int = 0
    chained: int = 0  # fired from an early call's result (patterns/chain.py)
    used: int = 0
    chained_used: int = 0
    eager_used: int = 0  # used, started only once the LLM emitted the call (not predicted)
    promotions: int = 0
    wasted: int = 0
    failed: int = 0
    expired: int = 0
    saved_s: float = 0.0
    eager_saved_s: float = 0.0  # of saved_s, by eager starts
    chained_saved_s: float = 0.0  # of saved_s, by chained starts

    @property
    def unused(self) -> int:
        return self.wasted + self.failed + self.expired


# how an early call ended (proxy/cache.py) -> the counter it goes to; "used" is counted
# where it is served (Served), "superseded" never ran (another replica made it)
_ENDS = {"failed": "failed", "expired": "expired"}
_NOT_ENDS = ("used", "used_elsewhere", "superseded")


@dataclass(frozen=True, slots=True)
class Fired:
    """An early call was made (`kind`: eager, predicted or chained)."""

    tool: str
    session: SessionKey | None
    kind: str


@dataclass(frozen=True, slots=True)
class Served:
    """An early call's result answered the agent (`first`: its first answer)."""

    tool: str
    session: SessionKey | None
    first: bool
    promoted: bool
    saved_s: float
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Ended:
    """An early call ended: `outcome` says how (see proxy/cache.py)."""

    tool: str
    session: SessionKey | None
    outcome: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A call was not made early, for `reason`."""

    reason: str


Fact = Fired | Served | Ended | Skipped


class Accounting:
    """The counters, fed one fact at a time (`record`)."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self.tools: dict[str, ToolCounters] = {}
        # the same counters per conversation, for the most recent ones (replay reports them)
        self.sessions: LRU[SessionKey, ToolCounters] = LRU(max_sessions)
        self.skipped: Counter[str] = Counter()  # why a call was not made early -> how often
        self.started = time.time()

    def tool(self, name: str) -> ToolCounters:
        c = self.tools.get(name)
        if c is None:
            c = self.tools[name] = ToolCounters()
        return c

    def session(self, key: SessionKey) -> ToolCounters:
        c = self.sessions.get(key)
        if c is None:
            c = self.sessions[key] = ToolCounters()
        return c

    def counters(self, tool: str, session: SessionKey | None) -> tuple[ToolCounters, ...]:
        """The tool's counters and, when the call was made for a session, the session's."""
        if session is None:
            return (self.tool(tool),)
        return self.tool(tool), self.session(session)

    def record(self, fact: Fact) -> None:
        if isinstance(fact, Skipped):
            self.skipped[fact.reason] += 1
            return
        if isinstance(fact, Ended) and fact.outcome in _NOT_ENDS:
            return
        for c in self.counters(fact.tool, fact.session):
            _count(c, fact)

    def report(self) -> dict[str, Any]:
        tools = {name: asdict(c) for name, c in sorted(self.tools.items())}
        totals: dict[str, Any] = {k: 0 for k in asdict(ToolCounters())}
        for c in tools.values():
            for k, v in c.items():
                totals[k] += v
        seconds = ("saved_s", "eager_saved_s", "chained_saved_s")
        for c in [totals, *tools.values()]:
            for k in seconds:
                c[k] = round(c[k], 3)
        ended = totals["used"] + totals["wasted"] + totals["failed"] + totals["expired"]
        totals["in_flight"] = totals["fired"] - ended  # 0 once the proxy has stopped
        return {
            "run": {"started": self.started, "written": time.time()},
            "tools": tools,
            "totals": totals,
            "skipped": dict(self.skipped.most_common()),
        }

    def write(self, state_root: Path) -> bool:
        """Write stats.json atomically; a failure (a full disk) is logged, never raised."""
        try:
            atomic_write(
                state_root / STATS_NAME, orjson.dumps(self.report(), option=orjson.OPT_INDENT_2)
            )
        except OSError as exc:
            log.error("stats.save_failed", file=str(state_root / STATS_NAME), error=str(exc))
            return False
        return True


class StatsError(ValueError):
    """stats.json cannot be read."""


def read(state_root: Path) -> dict[str, Any] | None:
    path = state_root / STATS_NAME
    if not path.exists():
        return None
    try:
        report = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        why = f"{path}: cannot be read ({exc}); the next run rewrites it"
        raise StatsError(why) from None
    if not isinstance(report, dict) or not isinstance(report.get("tools"), dict):
        raise StatsError(f"{path}: not a stats file; the next run rewrites it")
    return report


def format_table(report: dict[str, Any]) -> str:
    cols = (
        "fired",
        "eager",
        "predicted",
        "chained",
        "used",
        "chained_used",
        "promotions",
        "wasted",
        "failed",
        "expired",
        "saved_s",
    )
    lines = []
    run = report.get("run")
    if isinstance(run, dict) and isinstance(run.get("started"), int | float):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started"]))
        lines.append(f"The last run of the proxy only (started {started}); each run starts at 0.")
    lines.append(f"{'tool':<32}" + "".join(f"{c:>11}" for c in cols))
    for name, c in report["tools"].items():
        lines.append(f"{name[:31]:<32}" + "".join(f"{c.get(k, 0):>11}" for k in cols))
    t = report["totals"]
    lines.append(f"{'total':<32}" + "".join(f"{t.get(k, 0):>11}" for k in cols))
    if t.get("in_flight"):
        lines.append(f"{t['in_flight']} early calls were still in flight when this was written.")
    skipped = report.get("skipped")
    if isinstance(skipped, dict) and skipped:
        lines.append("")
        lines.append("not made early, by reason:")
        lines += [f"  {reason:<30}{n:>11}" for reason, n in skipped.items()]
    return "\n".join(lines) + "\n"


def _count(c: ToolCounters, fact: Fired | Served | Ended) -> None:
    if isinstance(fact, Fired):
        c.fired += 1
        if fact.kind == "eager":
            c.eager += 1
        elif fact.kind == "chained":
            c.chained += 1
        else:
            c.predicted += 1
    elif isinstance(fact, Served):
        if fact.first:
            c.used += 1
            c.chained_used += fact.kind == "chained"
            c.eager_used += fact.kind == "eager"
        c.saved_s += fact.saved_s
        if fact.kind == "eager":
            c.eager_saved_s += fact.saved_s
        elif fact.kind == "chained":
            c.chained_saved_s += fact.saved_s
        c.promotions += fact.promoted
    else:
        field = _ENDS.get(fact.outcome, "wasted")
        setattr(c, field, getattr(c, field) + 1)
