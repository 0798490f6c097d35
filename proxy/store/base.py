"""The store's interface, its listener, and the embedded store (nothing shared).

The speculator talks to every store the same way: `run` makes an early call (claimed
in the shared store first, its result shared after), `may_serve` says whether a result
this replica holds may still answer an agent, `take` finds another replica's result,
`invalidate` drops the scope's shared reads, `relay` asks other replicas for a call.
The embedded store answers "nothing shared" to each, so the behaviour is one code path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from lru import LRU

from prefire.patterns.events import Event, SessionKey
from prefire.proxy.cache import CacheKey, Entry, Fetch, Result, Superseded
from prefire.proxy.store.names import result_key

# (origin replica, event record) as read from the shared stream
RemoteBatch = list[tuple[str, dict[str, Any]]]


class StoreListener(Protocol):
    """What a store tells the replica, as other replicas act."""

    def remote_events(self, batch: RemoteBatch, position: str) -> None:
        """Other replicas' events and links, up to `position` in the shared stream."""

    def used_elsewhere(self, name: str) -> None:
        """Another replica served (or waits for) the call this replica claimed as `name`."""

    def invalidated_elsewhere(self, names: list[str]) -> None:
        """A write through another replica dropped these shared results."""

    def fire_requested(self, request: dict[str, Any]) -> None:
        """Another replica asks for a call it has no binding for."""


class Deaf:
    """A listener that ignores everything (a store on its own, in tests)."""

    def remote_events(self, batch: RemoteBatch, position: str) -> None:
        return None

    def used_elsewhere(self, name: str) -> None:
        return None

    def invalidated_elsewhere(self, names: list[str]) -> None:
        return None

    def fire_requested(self, request: dict[str, Any]) -> None:
        return None


class Taken(NamedTuple):
    """Another replica's result: `waited` is the seconds waited while it was in flight
    there, or None when it was ready."""

    result: Result
    tool: str
    kind: str
    waited: float | None


Stale = Callable[[str, str], bool]  # (tool, tag) -> whether a write makes it stale


class Store:
    """The embedded store: nothing is shared. Every shared operation answers "no shared
    state" (None or nothing), and the speculator keeps to its own cache."""

    shared = False

    def __init__(self, replica: str = "local", listener: StoreListener | None = None) -> None:
        self.replica = replica
        self.listener: StoreListener = listener or Deaf()
        # shared name -> the entry of the call this replica claimed under it
        self._holders: LRU[str, Entry] = LRU(10_000)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- the primitives a shared store implements ----------------------------------

    def publish(self, event: Event) -> None:
        """Listener: share an event this replica observed."""

    def publish_link(self, kind: str, session: SessionKey, value: Any) -> None:
        """Share how this replica linked a request into a conversation (Sessions.on_link)."""

    async def claim(
        self, h: str, scope: str, tool: str, tag: str, reuse: int, ttl_s: float
    ) -> bool | None:
        """Claim a call about to be fired: True (ours), False (another replica has it in
        flight or ready: do not fire), None (nothing shared: fire as usual)."""
        return None

    def settle(self, h: str, result: Result | None, tool: str = "", kind: str = "") -> None:
        """A claimed call ended: share its result, or release the claim (None)."""

    async def consume(self, h: str) -> bool | None:
        """Use one serve of a claimed result this replica holds: True (go ahead), False
        (served elsewhere or gone: do not serve), None (nothing shared: decide locally)."""
        return None

    async def take(self, h: str) -> Taken | None:
        """Another replica's result for this name, or None."""
        return None

    async def invalidate(self, scope: str, stale: Stale) -> int:
        """Drop the scope's shared results for which stale(tool, tag) holds."""
        return 0

    def relay(self, request: dict[str, Any]) -> bool:
        """Ask the replicas that can make a call to fire it; False: there are none."""
        return False

    # -- the shared-result behaviour, the same over every store -------------------------

    async def run(self, entry: Entry, call: Fetch, ttl_s: float, reuse: int) -> Result | None:
        """Make `entry`'s call: claimed first (not made when another replica has it), its
        result shared after."""
        h = result_key(entry.key)
        claimed = await self.claim(h, entry.key.scope, entry.tool, entry.tags[1], reuse, ttl_s)
        if claimed is False:
            raise Superseded(entry.tool)  # in flight or ready on another replica
        if claimed:
            entry.shared = h
            self._holders[h] = entry
        try:
            result = await call()
        except BaseException:
            if claimed:
                self.settle(h, None)
            raise
        if claimed:
            self.settle(h, result, entry.tool, entry.kind)
        return result

    async def may_serve(self, entry: Entry) -> bool:
        """Whether a result this replica holds may answer an agent: a claimed call's serves
        are counted in the shared store, across replicas."""
        return not entry.shared or await self.consume(entry.shared) is not False

    def holder(self, name: str) -> Entry | None:
        """The entry of the call this replica claimed as `name`, if it still holds it."""
        entry = self._holders.get(name)
        return entry if entry is not None and entry.shared == name else None

    async def take_for(self, key: CacheKey) -> Taken | None:
        """Another replica's result for this cache key, or None."""
        return await self.take(result_key(key))
