"""Counters per tool: fired, used, wasted, promotions, seconds saved. Kept in memory,
logged as key-value lines, written to the state dir for `prefire stats`."""

from __future__ import annotations

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
    used: int = 0
    promotions: int = 0
    wasted: int = 0
    failed: int = 0
    saved_s: float = 0.0


class Accounting:
    def __init__(self, max_sessions: int = 10_000) -> None:
        self.tools: dict[str, ToolCounters] = {}
        # the same counters per conversation, for the most recent ones (replay reports them)
        self.sessions: LRU = LRU(max_sessions)

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

    def report(self) -> dict[str, Any]:
        tools = {name: asdict(c) for name, c in sorted(self.tools.items())}
        totals: dict[str, Any] = {k: 0 for k in asdict(ToolCounters())}
        for c in tools.values():
            for k, v in c.items():
                totals[k] += v
        totals["saved_s"] = round(totals["saved_s"], 3)
        for c in tools.values():
            c["saved_s"] = round(c["saved_s"], 3)
        return {"tools": tools, "totals": totals}

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
    cols = ("fired", "eager", "predicted", "used", "promotions", "wasted", "failed", "saved_s")
    lines = [f"{'tool':<32}" + "".join(f"{c:>11}" for c in cols)]
    for name, c in report["tools"].items():
        lines.append(f"{name[:31]:<32}" + "".join(f"{c[k]:>11}" for k in cols))
    t = report["totals"]
    lines.append(f"{'total':<32}" + "".join(f"{t[k]:>11}" for k in cols))
    return "\n".join(lines) + "\n"
