"""Re-reads: an agent reads a record again after a call that touched it.

After `renew_loan(loan_id=L1)` an agent lists the loans again; after
`book_service(vehicle_id=V7)` it reads the vehicle again. An earlier call is touched
when a call of the latest turn sends a value (an id, not a word) that the earlier
call sent or got back. A touched call is a candidate to be made again, exactly as it
was, with the rate at which calls of its tool touched by the same tool were repeated
at the next decision point (a details call touches the list it came from and is
seldom followed by the list again; a write is): counted per application and pair of
tools, which takes over as its own cases accumulate from the rate over every
application together (a rate, never a value, so it may cross scopes).
"""

from __future__ import annotations

import re
from typing import Any

from lru import LRU

from prefire.patterns.dataflow import Stat
from prefire.patterns.memory import CallRecord, SessionMemory

AGE_AT = 2_000.0
MAX_TOUCHED = 3  # the most recent touched calls that are candidates
_SHRINK = 4.0  # an application's own cases, in pseudo-cases at the shared rate
_MIN_ID = 3  # characters of a string value that identifies a record
_ID = re.compile(r"[\d@]")


class Rereads:
    def __init__(self, max_apps: int = 100_000) -> None:
        self.shared = Stat()
        self.pairs: LRU = LRU(max_apps)  # (app, touching tool, touched tool) -> Stat

    def touched(self, mem: SessionMemory) -> tuple[tuple[str, CallRecord], ...]:
        """(touching tool, earlier call) for the earlier calls a call of the latest turn
        touched, most recent first."""
        latest = [c for c in mem.calls if c.turn < mem.turn]
        if not latest:
            return ()
        last_turn = latest[-1].turn
        now = [c for c in latest if c.turn == last_turn]
        keys = {c.key for c in now}
        out: dict[bytes, tuple[str, CallRecord]] = {}
        for call in now:
            for value in _ids(call.arguments):
                for rec, _, _ in mem.lookup(value):
                    if rec.turn < last_turn and rec.has_result and rec.key not in keys:
                        out.setdefault(rec.key, (call.name, rec))
        return tuple(sorted(out.values(), key=lambda t: -t[1].seq)[:MAX_TOUCHED])

    def observe(self, app: Any, toucher: str, tool: str, repeated: bool) -> None:
        stat = self.pairs.get((app, toucher, tool))
        if stat is None:
            stat = self.pairs[(app, toucher, tool)] = Stat()
        for st in (self.shared, stat):
            st.trials += 1
            st.hits += repeated
            if st.trials > AGE_AT:
                st.hits /= 2
                st.trials /= 2

    def probability(self, app: Any, toucher: str, tool: str) -> float:
        own = self.pairs.get((app, toucher, tool))
        if own is None or not own.hits:
            return 0.0  # never seen re-read after this tool: no guess
        return (own.hits + _SHRINK * self.shared.score) / (own.trials + _SHRINK)


def _ids(arguments: Any) -> list[Any]:
    """The argument values that can identify a record: strings of a few characters with
    a digit or an "@" and no space ("L-100", "#W123", an e-mail), and integers of three
    digits or more (not flags, counts, words or names)."""
    if not isinstance(arguments, dict):
        return []
    return [v for v in arguments.values() if _is_id(v)]


def _is_id(v: Any) -> bool:
    if isinstance(v, str):
        return _MIN_ID <= len(v) <= 200 and " " not in v and _ID.search(v) is not None
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 100
