"""Speculative results across replicas, keyed by a hash of the cache key (which holds the
scope, so tenants stay apart by construction).

Firing claims the call (uses + flight, set only if no other replica has it in flight or
ready); a result is stored with the rule's TTL and announced; taking decrements the uses
atomically, so a result is served once across all replicas; an agent request that meets
another replica's call in flight waits for it (bounded) instead of sending a second.
Errors are never stored. Writes drop the scope's shared reads they may change. Each step
is one Lua script, so no two replicas see a half-done one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from lru import LRU

from prefire.proxy.cache import Clock, Result
from prefire.proxy.store.base import Stale, Taken
from prefire.proxy.store.health import Health

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

FLIGHT_MS = 60_000  # how long a claimed call may run (the speculator's call timeout)
RECHECK_S = 0.25  # notices can be missed while pub/sub reconnects: look again this often

# KEYS: uses, flight, res, idx. ARGV: replica, reuse, ttl_ms, flight_ms, member, channel, h.
# Announced, so that replicas look up only the calls that were claimed.
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left > 0 and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local span = math.max(tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZADD', KEYS[4], now + span, ARGV[5])
if redis.call('PTTL', KEYS[4]) < span then redis.call('PEXPIRE', KEYS[4], span) end
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. span)
return 1
"""

# KEYS: flight, res, uses. ARGV: replica, blob, grace_ms, h, done channel.
# Stored only while the claim is still ours (an invalidation deletes it) and the uses live.
_PUT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then
  local left = tonumber(redis.call('GET', KEYS[3]) or '0')
  if left <= 0 and ttl > tonumber(ARGV[3]) then ttl = tonumber(ARGV[3]) end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
end
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 1
"""

# KEYS: flight, uses. ARGV: replica, h, done channel.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"""

# KEYS: uses, res. The holder of a claimed result serves it: one use, if any is left.
_CONSUME = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return 0 end
if left <= 1 then redis.call('DEL', KEYS[1], KEYS[2]) else redis.call('DECR', KEYS[1]) end
return 1
"""

# KEYS: uses, res, flight. ARGV: h, used channel.
# {1, blob}: ready, one use taken. {2, flight pttl}: in flight elsewhere, one use reserved.
_TAKE = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return {0} end
local res = redis.call('GET', KEYS[2])
if res then
  if left <= 1 then redis.call('DEL', KEYS[1], KEYS[2]) else redis.call('DECR', KEYS[1]) end
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return {1, res}
end
local pttl = redis.call('PTTL', KEYS[3])
if pttl > 0 then
  redis.call('DECR', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return {2, pttl}
end
return {0}
"""


@dataclass(frozen=True, slots=True)
class Ready:
    """_TAKE's {1, blob}: the result, one use taken."""

    blob: bytes


@dataclass(frozen=True, slots=True)
class InFlight:
    """_TAKE's {2, pttl}: running on another replica for at most `ms` more; a use reserved."""

    ms: int


def take_reply(reply: Any) -> Ready | InFlight | None:
    """_TAKE's reply, typed; None: nothing to take."""
    if not isinstance(reply, list) or not reply:
        return None
    tag = int(reply[0])
    if tag == 1 and isinstance(reply[1], bytes):
        return Ready(reply[1])
    if tag == 2:
        return InFlight(int(reply[1]))
    return None


def encode_result(result: Result, tool: str, kind: str) -> bytes:
    head = {
        "status": result.status,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in result.headers],
        "content_type": result.content_type,
        "duration_s": result.duration_s,
        "request_id": result.request_id,
        "tool": tool,
        "kind": kind,
    }
    return orjson.dumps(head) + b"\n" + result.body  # JSON escapes newlines: one line


def decode_result(blob: bytes) -> tuple[Result, str, str]:
    line, _, body = blob.partition(b"\n")
    head = orjson.loads(line)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["headers"]]
    result = Result(
        head["status"],
        headers,
        body,
        head["content_type"],
        float(head["duration_s"]),
        head["request_id"],
    )
    return result, head["tool"], head["kind"]


class SharedResults:
    def __init__(
        self,
        redis: Redis,
        health: Health,
        prefix: str,
        replica: str,
        wait_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._redis = redis
        self._health = health
        self._p = prefix
        self._replica = replica
        self._rid = replica.encode()
        self.wait_s = wait_s
        self._clock = clock
        self.ch_claimed, self.ch_done = f"{prefix}:claimed", f"{prefix}:done"
        self.ch_used, self.ch_inval = f"{prefix}:used", f"{prefix}:inval"
        # calls claimed anywhere, as announced: name -> when the claim lapses (monotonic).
        # An agent request whose call is not here costs no Redis round trip.
        self._known: LRU[str, float] = LRU(100_000)
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._claim = redis.register_script(_CLAIM)
        self._put = redis.register_script(_PUT)
        self._release = redis.register_script(_RELEASE)
        self._consume = redis.register_script(_CONSUME)
        self._take = redis.register_script(_TAKE)

    def _key(self, kind: str, h: str) -> str:
        return f"{self._p}:{kind}:{h}"

    # -- notices (proxy/store/notices.py) ------------------------------------------------

    def claimed(self, text: str) -> None:
        """A claim was announced: "NAME SPAN_MS"."""
        h, _, span_ms = text.partition(" ")
        self._known[h] = self._clock() + int(span_ms) / 1000

    def done(self, h: str) -> None:
        """A claimed call ended somewhere: wake whoever waits for it."""
        for fut in self._waiters.get(h, ()):
            if not fut.done():
                fut.set_result(None)

    def wake_all(self) -> None:
        """Redis went away: nobody waits for a notice any more."""
        for h in list(self._waiters):
            self.done(h)

    # -- operations ------------------------------------------------------------------------

    async def claim(
        self, h: str, scope: str, tool: str, tag: str, reuse: int, ttl_s: float
    ) -> bool | None:
        member = orjson.dumps([h, tool, tag])
        keys = [self._key("uses", h), self._key("flight", h), self._key("res", h)]
        keys.append(self._key("idx", scope))
        ttl_ms = max(1, int(ttl_s * 1000))
        args: list[Any] = [self._rid, max(1, reuse), ttl_ms, FLIGHT_MS, member, self.ch_claimed, h]
        got = await self._health.do("claim", lambda: self._claim(keys=keys, args=args), None)
        return None if got is None else bool(got)

    def settle(self, h: str, result: Result | None, tool: str = "", kind: str = "") -> None:
        if not self._health.up or self._health.closing:
            return
        if result is None:
            keys = [self._key("flight", h), self._key("uses", h)]
            args: list[Any] = [self._rid, h, self.ch_done]
            self._health.spawn("release", lambda: self._release(keys=keys, args=args))
            return
        blob = encode_result(result, tool, kind)
        keys = [self._key("flight", h), self._key("res", h), self._key("uses", h)]
        grace = int((self.wait_s + 5) * 1000)
        args = [self._rid, blob, grace, h, self.ch_done]
        timeout = self._health.timeout_s * 5
        self._health.spawn("put", lambda: self._put(keys=keys, args=args), timeout)

    async def consume(self, h: str) -> bool | None:
        keys = [self._key("uses", h), self._key("res", h)]
        got = await self._health.do("consume", lambda: self._consume(keys=keys), None)
        return None if got is None else bool(got)

    async def take(self, h: str) -> Taken | None:
        lapses = self._known.get(h)
        if lapses is None or lapses < self._clock():
            return None  # never claimed (as far as we heard), or long gone
        keys = [self._key("uses", h), self._key("res", h), self._key("flight", h)]
        reply = await self._health.do(
            "take", lambda: self._take(keys=keys, args=[h, self.ch_used]), None
        )
        got = take_reply(reply)
        if isinstance(got, Ready):
            return _decoded(got.blob, None)
        if isinstance(got, InFlight):
            # in flight on another replica: wait for it rather than send the call twice
            return await self._wait(h, min(got.ms / 1000, self.wait_s))
        return None

    async def _wait(self, h: str, bound_s: float) -> Taken | None:
        """The result of a call in flight on another replica, within `bound_s`."""
        started = self._clock()
        deadline = started + bound_s
        while True:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(h, set()).add(fut)
            try:
                # checked after registering: a notice sent before this is not missed
                gone: tuple[bytes | None, int] = (None, 0)
                blob, flying = await self._health.do("wait", lambda: self._check(h), gone)
                if blob is not None:
                    return _decoded(blob, self._clock() - started)
                left = deadline - self._clock()
                if not flying or left <= 0 or not self._health.up:
                    # failed, invalidated, or too slow: the agent goes upstream
                    log.info(
                        "store.wait_ended",
                        waited_s=round(self._clock() - started, 3),
                        why="gone" if not flying else "too slow" if left <= 0 else "degraded",
                    )
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, min(left, RECHECK_S))
            finally:
                self._unwait(h, fut)

    async def _check(self, h: str) -> tuple[bytes | None, int]:
        """(the result if stored, whether the call is still in flight)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._key("res", h))
        pipe.exists(self._key("flight", h))
        blob, flying = await pipe.execute()
        return (blob if isinstance(blob, bytes) else None), int(flying)

    def _unwait(self, h: str, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(h)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[h]

    async def invalidate(self, scope: str, stale: Stale) -> int:
        idx = self._key("idx", scope)

        async def run() -> int:
            reply = await self._redis.zrange(idx, 0, -1)
            members = [m for m in reply if isinstance(m, bytes)]
            doomed: list[str] = []
            pipe = self._redis.pipeline(transaction=False)
            for member in members:
                try:
                    h, tool, tag = orjson.loads(member)
                except (orjson.JSONDecodeError, ValueError):
                    continue
                if stale(tool, tag):
                    doomed.append(h)
                    pipe.delete(self._key("res", h), self._key("uses", h), self._key("flight", h))
                    pipe.zrem(idx, member)
            if doomed:
                notice = orjson.dumps({"by": self._replica, "h": doomed})
                pipe.publish(self.ch_inval, notice)
                await pipe.execute()
            return len(doomed)

        return await self._health.do("invalidate", run, 0, timeout_s=self._health.timeout_s * 2)


def _decoded(blob: bytes, waited: float | None) -> Taken | None:
    try:
        result, tool, kind = decode_result(blob)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("store.bad_result", error=repr(exc))
        return None
    return Taken(result, tool, kind, waited)
