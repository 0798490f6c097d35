"""Expected latencies learned from observed executions (exponentially weighted means)."""

from __future__ import annotations

from typing import Any

from lru import LRU

_ALPHA = 0.2
# A tool's latency is learned from the calls the agent waited for. A call served early
# looks instant; were that its latency, the saving of speculating on it would seem
# gone, and speculation's own success would talk the firing policy out of it. So the
# estimate rises at once towards a slower call and only drifts down towards a faster one.
_ALPHA_DOWN = 0.02


class Latencies:
    def __init__(
        self, default_tool_s: float = 1.0, default_llm_s: float = 2.0, cap: int = 50_000
    ) -> None:
        self.default_tool_s = default_tool_s
        self.default_llm_s = default_llm_s
        self.tool: LRU = LRU(cap)  # (app, tool) -> seconds
        self.llm: LRU = LRU(cap)  # app -> seconds

    def observe_tool(self, app: Any, tool: str, seconds: float) -> None:
        old = self.tool.get((app, tool))
        alpha = _ALPHA_DOWN if old is not None and seconds < old else 0.5
        ewma(self.tool, (app, tool), seconds, alpha)

    def observe_llm(self, app: Any, seconds: float) -> None:
        ewma(self.llm, app, seconds)

    def tool_s(self, app: Any, tool: str) -> float:
        return self.tool.get((app, tool), self.default_tool_s)

    def llm_s(self, app: Any) -> float:
        return self.llm.get(app, self.default_llm_s)


def ewma(table: LRU, key: Any, value: float, alpha: float = _ALPHA) -> None:
    """Move the table's mean for `key` towards `value`; negative and NaN values are noise."""
    if value < 0 or value != value:
        return
    old = table.get(key)
    table[key] = value if old is None else old + alpha * (value - old)
