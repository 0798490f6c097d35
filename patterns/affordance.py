"""Tools the schemas say can come next, before the application ever called them.

An application's first sessions are where control flow knows nothing: a tool it has
never called has no learned probability. But a result that carries `patron_id` makes
`list_loans(patron_id)` callable, and agents mostly call what the last result made
callable. A tool is afforded at a decision point when the application has not called
it yet, and every argument its schema requires is named like a field of a recent
result, one of them of the latest turn's. How often an afforded tool was called next
is counted over every application together (a rate, never a value, so it may cross
scopes), and that rate is the tool's probability until control flow learns better.
"""

from __future__ import annotations

from collections.abc import Callable

from prefire.patterns.dataflow import Stat
from prefire.patterns.memory import CallRecord, SessionMemory
from prefire.patterns.priors import keyed_paths, norm, recent_results
from prefire.patterns.schema import ToolSchema

AGE_AT = 2_000.0
MAX_AFFORDED = 4  # tools afforded at one decision point; more says the names are too generic


class Affordance:
    def __init__(self) -> None:
        self.stat = Stat()

    def afforded(
        self, schemas: dict[str, ToolSchema], mem: SessionMemory, cold: Callable[[str], bool]
    ) -> tuple[str, ...]:
        """The tools the latest results make callable that the application never called."""
        recent = recent_results(mem)
        if not recent:
            return ()
        latest = max(rec.turn for rec in recent)
        out = []
        for tool, schema in schemas.items():
            if not schema.required or not cold(tool):
                continue
            found = [_named_in(name, recent) for name in schema.required]
            if all(t is not None for t in found) and latest in found:
                out.append(tool)
        return tuple(out) if len(out) <= MAX_AFFORDED else ()

    def observe(self, called: bool) -> None:
        self.stat.trials += 1
        self.stat.hits += called
        if self.stat.trials > AGE_AT:
            self.stat.hits /= 2
            self.stat.trials /= 2

    def probability(self) -> float:
        return self.stat.score


def _named_in(name: str, recent: list[CallRecord]) -> int | None:
    """The turn of the latest recent result with a field named like `name`, or None."""
    want = norm(name)
    for rec in recent:
        if want in keyed_paths(rec):
            return rec.turn
    return None
