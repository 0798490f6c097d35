"""What replicas share: learned patterns, speculative results, calls in flight.

`Store` (base.py) is the embedded default: nothing is shared, every shared operation
answers "no shared state", and a replica learns and serves alone, from its own memory
and the state file. `RedisStore` (redis_store.py; `prefire run --store
redis://HOST:PORT/DB`) lets several replicas behind a load balancer learn and serve as
one, from four parts:

- replication.py: patterns. Every replica appends the events its observer produced, and
  how it linked each request into a conversation, to one Redis Stream, and applies the
  others' to its own sessions and model. A replica names the conversations it started
  with bare ids and the others' as "REPLICA~ID" (names.py `localize`), so a conversation
  whose requests the balancer spreads over several replicas stays one conversation on
  all of them, and each event is learned once by each replica: counts merge exactly.
- results.py: speculative results, claimed before firing, served once across all
  replicas, waited for while in flight elsewhere (the Lua protocol).
- notices.py: pub/sub between replicas (claimed, done, used, invalidated, relayed calls:
  a call this replica cannot make is asked of the replicas that can).
- health.py: every Redis operation has a short timeout; a failure marks the store
  degraded (shared operations are skipped, the replica behaves as an embedded one) until
  a background probe reconnects. The agent's traffic never fails because of Redis.

What other replicas do reaches this one through the `StoreListener` given at
construction.
"""

from __future__ import annotations

from pathlib import Path

from prefire.proxy.store.base import Deaf, RemoteBatch, Store, StoreListener, Taken
from prefire.proxy.store.names import check_url, localize, replica_id, result_key, store_id
from prefire.proxy.store.redis_store import RedisStore
from prefire.proxy.store.replication import LINK

__all__ = [
    "LINK",
    "Deaf",
    "RedisStore",
    "RemoteBatch",
    "Store",
    "StoreListener",
    "Taken",
    "check_url",
    "localize",
    "make_store",
    "replica_id",
    "result_key",
    "store_id",
]


def make_store(
    url: str | None,
    *,
    state_root: Path,
    listener: StoreListener,
    prefix: str = "prefire",
    wait_s: float = 5.0,
    timeout_s: float = 0.1,
    start_after: str = "0",
) -> Store:
    """The store a `--store` value names: embedded (None, "", "embedded") or Redis
    (redis://, rediss://, unix://). Raises ValueError saying what is wrong."""
    check_url(url)
    if not url or url == "embedded":
        return Store(listener=listener)
    return RedisStore(
        url,
        replica=replica_id(state_root),
        listener=listener,
        prefix=prefix,
        wait_s=wait_s,
        timeout_s=timeout_s,
        start_after=start_after,
    )
