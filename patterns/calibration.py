"""Online calibration of candidate probabilities.

The raw probability of a candidate is a product of separately learned factors
(next tool, argument names, each argument's source); where factors are diffuse
it understates how often the top-ranked candidate comes true. The calibrator
learns, per application, how often candidates of a given raw rank and raw
probability did come true, and answers with that frequency, shrunk towards
the raw probability while evidence is thin.
"""

from __future__ import annotations

import bisect
from typing import Any

from lru import LRU

_EDGES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
_RANKS = 4  # ranks 0, 1, 2 and "3 or lower"
_PRIOR = 4.0  # pseudo-observations at the raw probability
AGE_AT = 400.0


def _bin(rank: int, raw: float) -> int:
    return min(rank, _RANKS - 1) * (len(_EDGES) + 1) + bisect.bisect_right(_EDGES, raw)


class Calibrator:
    def __init__(self, max_apps: int = 10_000) -> None:
        self.apps: LRU = LRU(max_apps)  # app -> list of [candidates, came true] per bin

    def _table(self, app: Any) -> list[list[float]]:
        table = self.apps.get(app)
        if table is None:
            table = self.apps[app] = [[0.0, 0.0] for _ in range(_RANKS * (len(_EDGES) + 1))]
        return table

    def observe(self, app: Any, rank: int, raw: float, came_true: bool) -> None:
        cell = self._table(app)[_bin(rank, raw)]
        cell[0] += 1
        cell[1] += came_true
        if cell[0] > AGE_AT:
            cell[0] /= 2
            cell[1] /= 2

    def calibrated(self, app: Any, rank: int, raw: float) -> float:
        table = self.apps.get(app)
        if table is None:
            return raw
        n, k = table[_bin(rank, raw)]
        return (k + _PRIOR * raw) / (n + _PRIOR)


_TOOL_PRIOR = 2.0  # pseudo-candidates at which a tool's own record counts as much as the rest
TOOL_AGE_AT = 200.0


class ToolCalibration:
    """Per tool: do its candidates come true as often as their calibrated probability
    says? Some tools' calls are steadier than their rank and raw probability show (a
    lookup always made with the id just found), some less (a `cd` into one of several
    folders). The odds of a tool's candidates are scaled by how many came true against
    how many were expected. Kept per group (an application, its opening calls apart)
    and per pool (the same tool name in every application of a scope, which a new
    application starts from); a group's record is shrunk towards its pool's, and
    that towards 1, while they are short. Only counts are kept, never values."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.tools: LRU = LRU(max_keys)  # (group or pool, tool) -> [expected, came true]

    def observe(self, group: Any, pool: Any, tool: str, p: float, came_true: bool) -> None:
        for key in ((group, tool), (pool, tool)):
            cell = self.tools.get(key)
            if cell is None:
                cell = self.tools[key] = [0.0, 0.0]
            cell[0] += p
            cell[1] += came_true
            if cell[0] > TOOL_AGE_AT:
                cell[0] /= 2
                cell[1] /= 2

    def corrected(self, group: Any, pool: Any, tool: str, p: float) -> float:
        if p <= 0.0 or p >= 1.0:
            return p
        factor = 1.0
        for key in ((pool, tool), (group, tool)):
            expected, came_true = self.tools.get(key) or (0.0, 0.0)
            factor = (came_true + _TOOL_PRIOR * factor) / (expected + _TOOL_PRIOR)
        odds = p / (1.0 - p) * factor
        return odds / (1.0 + odds)
