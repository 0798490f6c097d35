"""Single-flight cache of speculative results.

Key: (scope, binding, tool, canonical arguments). The scope is the hash of the
credentials the tool request carries, so a result fetched with one tenant's
credentials is never served to another. An entry is created when a call is
fired; while it runs, an agent request for the same key waits for it (in-flight
promotion) instead of sending a second call. A result is served `reuse` times
(once by default), expires after `ttl` seconds, and can be invalidated. A failed
speculative call leaves nothing behind: the agent's request goes upstream.

Every entry ends exactly once (`on_end`): "used" when it first answers an agent's
request, else why it went unused ("failed", "expired", "invalidated", "evicted",
"promotion_timeout", "shutdown", ...). A request waiting for a call in flight holds a
serve of it; an entry dropped meanwhile ends when that request is done with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from lru import LRU

from prefire.patterns.canonical import canonical_key
from prefire.patterns.events import SessionKey
from prefire.rules.rest import request_key

Clock = Callable[[], float]  # monotonic seconds
BODY_START = 200  # bytes of an error body a failure keeps, for the log


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What a speculative result is served by: an early call and the agent's own request
    for the same call build equal keys, through the constructor of their binding."""

    scope: str  # the hash of the credentials the call carries
    binding: str  # how it runs: "mcp:<url>|<protocol>[|<session>]", or "rest"
    tool: str  # the server's tool name, or the REST request's method and URL
    args: bytes  # canonical arguments, or the REST request's canonical form

    @classmethod
    def mcp(cls, scope: str, binding: str, tool: str, arguments: Any) -> CacheKey:
        return cls(scope, binding, tool, canonical_key(arguments))

    @classmethod
    def rest(cls, scope: str, method: str, url: str, body: Any) -> CacheKey:
        ident, canonical_request = request_key(method, url, body)
        return cls(scope, "rest", ident, canonical_request)


@dataclass(slots=True)
class Result:
    """A speculative call's response, as the tool server sent it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes  # decoded (no content-encoding)
    content_type: str
    duration_s: float
    # for MCP: the JSON-RPC id prefire used, to be replaced by the agent's id
    request_id: str = ""
    reply: Any = None  # for MCP: the JSON-RPC result


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a speculative request brought back nothing to serve."""

    reason: str
    status: int = 0  # the HTTP status, when a response came
    body: str = ""  # the start of its body, or the error

    @classmethod
    def of_response(cls, reason: str, response: Result) -> Failure:
        return cls(reason, response.status, response.body[:BODY_START].decode("utf-8", "replace"))


@dataclass(slots=True)
class Entry:
    key: CacheKey
    tool: str
    fired_at: float
    expires: float
    uses_left: int
    kind: str  # "eager" | "predicted" | "chained"
    used: int = 0
    tags: tuple[str, ...] = field(
        default_factory=tuple
    )  # e.g. the binding's server, for invalidation
    session: SessionKey | None = None  # the conversation it was fired for, for accounting
    shared: str = ""  # the shared store's name for it, when this replica claimed it there
    made: bool = False  # its call went out (not superseded by another replica's, not dropped first)
    called_as: str = ""  # the name the model called the tool by
    waiting: int = 0  # agent requests waiting for its call in flight
    removed: str = ""  # why it left the cache while requests were waiting for it
    outcome: str = ""  # how it ended; "" while it may still be served
    link: bytes = b""  # for a chained call: its key in the session's chain (patterns/chain.py)
    depth: int = 0  # steps of a chain past its decision point (0: predicted or eager)
    task: asyncio.Task[Result | None] = field(init=False)  # the call, started with the entry


class Superseded(Exception):
    """Another replica already has this call in flight or ready: ours is not needed."""


Fetch = Callable[[], Coroutine[Any, Any, Result | None]]
Run = Callable[[Entry], Coroutine[Any, Any, Result | None]]  # makes the call of an entry
OnEnd = Callable[[Entry, str], None]


class ResultCache:
    def __init__(
        self, capacity: int = 10_000, on_end: OnEnd | None = None, clock: Clock = time.monotonic
    ) -> None:
        self._on_end = on_end
        self._clock = clock
        self._entries: LRU[CacheKey, Entry] = LRU(capacity, callback=self._evicted)

    def __len__(self) -> int:
        return len(self._entries)

    def _evicted(self, key: CacheKey, entry: Entry) -> None:
        self._dropped(entry, "evicted")

    def _dropped(self, entry: Entry, why: str) -> None:
        """`entry` left the cache unserved (or served already: then nothing happens)."""
        if entry.waiting:
            entry.removed = why  # a request waits for it: it ends when that one is done
            return
        if entry.used == 0 and not entry.task.done():
            entry.task.cancel()
        self.end(entry, why)

    def end(self, entry: Entry, outcome: str) -> None:
        """Record how `entry` ended, once."""
        if entry.outcome:
            return
        entry.outcome = outcome
        if self._on_end is not None:
            self._on_end(entry, outcome)

    def lookup(self, key: CacheKey, now: float | None = None) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (now or self._clock()) >= entry.expires:
            self._remove(key, "expired")
            return None
        return entry

    def start(
        self,
        key: CacheKey,
        tool: str,
        run: Run,
        ttl: float,
        reuse: int,
        kind: str,
        tags: tuple[str, ...],
        session: SessionKey | None = None,
    ) -> Entry | None:
        """Start `run(entry)` unless the same call is cached or in flight (single flight).
        Returns the new entry, or None when one existed."""
        if self.lookup(key) is not None:
            return None
        now = self._clock()
        entry = Entry(key, tool, now, now + ttl, max(1, reuse), kind, tags=tags, session=session)
        entry.task = asyncio.get_running_loop().create_task(run(entry))
        self._entries[key] = entry
        entry.task.add_done_callback(lambda t: self._settled(key, entry, t))
        return entry

    def _settled(self, key: CacheKey, entry: Entry, task: asyncio.Task[Result | None]) -> None:
        # errors are never cached: the agent's own request goes upstream
        why = _failure(task)
        if why is not None and self._entries.get(key) is entry:
            self._remove(key, why)

    async def take(
        self, key: CacheKey, wait: Callable[[Entry], float] | None = None
    ) -> tuple[Result, Entry, bool] | None:
        """The result for an agent request: (result, entry, was still in flight), or None
        when there is none or the speculative call failed. Uses one of the entry's serves,
        once its result is in hand.

        `wait(entry)`: how many seconds an agent request may wait for a call still in
        flight. Past that the request goes upstream itself (None), so a hung speculative
        call costs the agent a bounded delay, never its answer.
        """
        entry = self.lookup(key)
        if entry is None:
            return None
        in_flight = not entry.task.done()
        timeout = wait(entry) if in_flight and wait is not None else None
        if timeout is not None and timeout <= 0:
            return None
        # hold a serve while waiting, so that two requests never both count on the last one
        entry.uses_left -= 1
        entry.waiting += 1
        if entry.uses_left <= 0:
            del self._entries[key]  # its last serve: no other request finds it
        try:
            result = await asyncio.wait_for(asyncio.shield(entry.task), timeout)
        except TimeoutError:
            self._let_go(key, entry)
            self._dropped(entry, "promotion_timeout")
            return None
        except asyncio.CancelledError:
            if not _being_cancelled():
                # the speculative call itself was cancelled: nothing to serve, the agent's
                # request goes upstream (its own cancellation is the branch below)
                self._let_go(key, entry)
                self.end(entry, "failed")
                return None
            # the agent's request went away while it waited: the serve goes back
            entry.uses_left += 1
            self._let_go(key, entry)
            if (
                not entry.removed
                and self._entries.get(key) is None
                and _failure(entry.task) is None
            ):
                self._entries[key] = entry
            elif self._entries.get(key) is not entry:
                self._dropped(entry, entry.removed or _failure(entry.task) or "abandoned")
            raise
        except Exception as exc:
            self._let_go(key, entry)
            self.end(entry, "superseded" if isinstance(exc, Superseded) else "failed")
            return None
        entry.waiting -= 1
        if result is None:
            self._let_go(key, entry)
            self.end(entry, "failed")
            return None
        entry.used += 1
        self.end(entry, "used")
        return result, entry, in_flight

    def _let_go(self, key: CacheKey, entry: Entry) -> None:
        """A waiting request is done with `entry` without being served from it."""
        entry.waiting = max(0, entry.waiting - 1)
        if self._entries.get(key) is entry and _failure(entry.task) is not None:
            del self._entries[key]

    def invalidate(self, match: Callable[[Entry], bool], why: str = "invalidated") -> int:
        """Drop every entry `match` selects; returns how many."""
        doomed = [k for k, e in self._entries.items() if match(e)]
        for key in doomed:
            self._remove(key, why)
        return len(doomed)

    def drop(self, key: CacheKey, why: str) -> None:
        """Drop one entry (as an invalidation would)."""
        self._remove(key, why)

    def discard(self, key: CacheKey) -> None:
        """Forget an entry whose serves were all used elsewhere; not a drop, and a call
        still running goes on (another replica is waiting for its result)."""
        self._entries.pop(key, None)

    def _remove(self, key: CacheKey, why: str) -> None:
        entry = self._entries.pop(key, None)  # lru-dict calls back on capacity evictions only
        if entry is not None:
            self._dropped(entry, why)

    def clear(self, why: str = "shutdown") -> None:
        self.invalidate(lambda e: True, why)


def _failure(task: asyncio.Task[Result | None]) -> str | None:
    """Why a finished speculative call has nothing to serve; None if it has, or runs."""
    if not task.done():
        return None
    if task.cancelled():
        return "failed"
    exc = task.exception()
    if isinstance(exc, Superseded):
        return "superseded"
    return "failed" if exc is not None or task.result() is None else None


def _being_cancelled() -> bool:
    """Whether the running task (the agent's request) is the one being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
