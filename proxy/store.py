"""What replicas share: learned patterns, speculative results, calls in flight.

`Store` is the embedded default: nothing is shared, every shared operation is a
no-op, and a replica learns and serves alone, from its own memory and the state
file, as before. `RedisStore` (`prefire run --store redis://HOST:PORT/DB`) lets
several replicas behind a load balancer learn and serve as one:

- Patterns: every replica appends the events its observer produced, and how it
  linked each request into a conversation, to one Redis Stream, and applies the
  others' to its own sessions and model. A replica names the conversations it
  started with bare ids and the others' as "REPLICA~ID" (`localize`), so a
  conversation whose requests the balancer spreads over several replicas stays
  one conversation on all of them, and each event is learned once by each
  replica: counts merge exactly, nothing is last-writer-wins. Publishing is
  queued and sent in batches by a background task, never from the request path.
  A starting replica reads the stream from where its snapshot left off (from the
  start when it has none), bounded by the stream's MAXLEN.
- Results, keyed by a hash of the cache key (which holds the scope, so tenants
  stay apart by construction): firing claims the call (uses + flight, set only
  if no other replica has it in flight or ready); a result is stored with the
  rule's TTL and announced; taking decrements the uses atomically, so a result
  is served once across all replicas; an agent request that meets another
  replica's call in flight waits for it (bounded) instead of sending a second.
  Errors are never stored. Writes drop the scope's shared reads they may change.
- Calls this replica cannot make (it has no binding for the client: the agent's
  MCP traffic went to another replica) are relayed to the replicas that can.

Every Redis operation has a short timeout. A failure marks the store degraded
(one `store.degraded` warning): shared operations are skipped, so the replica
behaves as an embedded one, until a background probe reconnects
(`store.recovered`). The agent's traffic never fails because of Redis and never
waits on it longer than the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson
import structlog
from lru import LRU

from prefire.patterns.events import Event, SessionKey, to_record
from prefire.proxy.cache import CacheKey, Result

log = structlog.get_logger(__name__)

T = TypeVar("T")

REPLICA_FILE = "replica-id"
STREAM_MAXLEN = 100_000  # events kept in the shared stream (approximate trim)
MAX_EVENT_BYTES = 1 << 20  # a larger event (a huge tool result) is not shared
OUTBOX_MAX = 20_000  # events queued while Redis is slow or away; the oldest go first
READ_COUNT = 500  # events read and applied per batch
READ_BLOCK_S = 0.5
FLIGHT_MS = 60_000  # how long a claimed call may run (the speculator's call timeout)
RECOVER_MAX_S = 5.0
LINK = "link"  # a stream record that is not an event: how a request joined a conversation

# (stream id, origin replica, event record)
RemoteEvents = Callable[[list[tuple[str, dict[str, Any]]], str], None]


def result_key(key: CacheKey) -> str:
    """The shared name of a cache key. The key holds the scope, so two tenants' results
    never share a name."""
    # the tuple's repr: the names replicas of earlier versions gave the same calls
    ident = repr((key.scope, key.binding, key.tool, key.args)).encode()
    return hashlib.blake2b(ident, digest_size=16, person=b"prefire-result").hexdigest()


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


def replica_id(state_root: Path) -> str:
    """This replica's id, kept in its state dir so that after a restart it still knows
    which events in the shared stream are its own (its snapshot already has them)."""
    path = state_root / REPLICA_FILE
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    rid = secrets.token_hex(6)
    with contextlib.suppress(OSError):
        path.write_text(rid + "\n")
    return rid


def localize(conversation: str, origin: str, me: str) -> str:
    """A conversation id from replica `origin`'s stream, as this replica names it. A
    replica names the conversations it started with bare ids and another replica's as
    "REPLICA~ID", so the id one replica publishes names the same conversation for all."""
    owner, sep, rest = conversation.partition("~")
    if not sep:
        return f"{origin}~{conversation}"
    return rest if owner == me else conversation


def redact(url: str) -> str:
    """The store URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def store_id(url: str | None, prefix: str) -> str:
    """Names a shared store (host, port, database, prefix; no credentials) so that a saved
    stream position is only reused against the same store."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}#{prefix}"


class Store:
    """The embedded store: nothing is shared. Every shared operation answers "no shared
    state" (None or nothing), and the speculator keeps to its own cache."""

    shared = False

    def __init__(self, replica: str = "local") -> None:
        self.replica = replica
        self.position = "0"  # last shared-stream id applied
        self.on_events: RemoteEvents = _ignore2
        self.on_used: Callable[[str], None] = _ignore
        self.on_invalidated: Callable[[list[str]], None] = _ignore
        self.on_fire: Callable[[dict[str, Any]], None] = _ignore

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

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

    async def take(self, h: str) -> tuple[Result, str, str, float | None] | None:
        """Another replica's result for this key: (result, tool, kind, seconds waited for
        it while it was in flight, or None when it was ready), or None."""
        return None

    async def invalidate(self, scope: str, stale: Callable[[str, str], bool]) -> int:
        """Drop the scope's shared results for which stale(tool, tag) holds."""
        return 0

    def relay(self, request: dict[str, Any]) -> None:
        """Ask the replicas that can make a call to fire it."""


def _ignore(_: Any) -> None:
    return None


def _ignore2(_: Any, __: Any) -> None:
    return None


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


class RedisStore(Store):
    shared = True

    def __init__(
        self,
        url: str,
        *,
        replica: str,
        prefix: str = "prefire",
        wait_s: float = 5.0,
        timeout_s: float = 0.1,
        start_after: str = "0",
    ) -> None:
        super().__init__(replica)
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.safe_url = redact(url)
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self.position = start_after or "0"
        self._rid = replica.encode()
        common: dict[str, Any] = {
            "socket_connect_timeout": timeout_s,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # raises ValueError on a URL it cannot use
        self._redis = Redis.from_url(url, socket_timeout=timeout_s, **common)
        # blocking reads (XREAD BLOCK, pub/sub) on their own connections, bounded by us
        self._blocking = Redis.from_url(url, socket_timeout=None, **common)
        p = prefix
        self._k_events = f"{p}:events"
        self._ch_done, self._ch_used = f"{p}:done", f"{p}:used"
        self._ch_inval, self._ch_fire = f"{p}:inval", f"{p}:fire"
        self._ch_claimed = f"{p}:claimed"
        # calls claimed anywhere, as announced: name -> when the claim lapses (monotonic).
        # An agent request whose call is not here costs no Redis round trip.
        self._known: LRU[str, float] = LRU(100_000)
        self._p = p
        self._claim = self._redis.register_script(_CLAIM)
        self._put = self._redis.register_script(_PUT)
        self._release = self._redis.register_script(_RELEASE)
        self._consume = self._redis.register_script(_CONSUME)
        self._take = self._redis.register_script(_TAKE)
        self.up = True
        self._up = asyncio.Event()
        self._up.set()
        self._closing = False
        self._outbox: deque[dict[str, Any]] = deque(maxlen=OUTBOX_MAX)
        self._wake = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[Any]] = set()
        self._recovering: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.skipped_events = 0

    def _key(self, kind: str, h: str) -> str:
        return f"{self._p}:{kind}:{h}"

    # -- health -----------------------------------------------------------------

    async def _do(
        self,
        what: str,
        fn: Callable[[], Awaitable[T]],
        fallback: T,
        timeout_s: float | None = None,
    ) -> T:
        """Run one Redis operation within the timeout; on any failure mark the store
        degraded and answer `fallback` (what an embedded store would)."""
        from redis.exceptions import RedisError

        if not self.up:
            return fallback
        try:
            async with asyncio.timeout(timeout_s or self.timeout_s):
                return await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            self._degrade(what, exc)
            return fallback

    def _degrade(self, what: str, exc: BaseException) -> None:
        if not self.up or self._closing:
            return
        self.up = False
        self._up.clear()
        log.warning(
            "store.degraded",
            store=self.safe_url,
            op=what,
            error=repr(exc),
            effect="shared patterns and results paused; serving from this replica alone",
        )
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        delay = 0.2
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(max(self.timeout_s * 5, 0.5)):
                    # pooled connections to the server that went away are dead: drop them all
                    for client in (self._redis, self._blocking):
                        await client.connection_pool.disconnect()
                    await self._redis.ping()
            except Exception:
                delay = min(delay * 2, RECOVER_MAX_S)
                continue
            self.up = True
            self._up.set()
            self._wake.set()
            log.info("store.recovered", store=self.safe_url)
            return

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        async def ping() -> bool:
            return bool(await self._redis.ping())

        if await self._do("connect", ping, False, timeout_s=max(self.timeout_s * 5, 0.5)):
            log.info("store.connected", store=self.safe_url, replica=self.replica)
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._publisher()),
            loop.create_task(self._reader()),
            loop.create_task(self._subscriber()),
        ]
        if self.up:  # started means listening: notices sent from now on are heard
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self.timeout_s * 5, 0.5)):
                    await self._subscribed.wait()

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while self._pending:
                    await asyncio.gather(*list(self._pending), return_exceptions=True)
                await self._flush()
        self._closing = True
        for task in [*self._loops, *self._pending, self._recovering]:
            if task is not None:
                task.cancel()
        for task in [*self._loops, self._recovering]:
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        for client in (self._redis, self._blocking):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()

    # -- events -------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        if self._closing:
            return
        self._outbox.append(to_record(event))
        self._wake.set()

    def publish_link(self, kind: str, session: SessionKey, value: Any) -> None:
        if self._closing:
            return
        record = {"kind": LINK, "link": kind, "session": str(session), "value": value}
        self._outbox.append(record)
        self._wake.set()

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._up.wait()
            await self._flush()

    async def _flush(self) -> None:
        while self._outbox and self.up:
            batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 256))]
            pipe = self._redis.pipeline(transaction=False)
            for record in batch:
                try:
                    data = orjson.dumps(record)
                except TypeError:
                    data = b""
                if not data or len(data) > MAX_EVENT_BYTES:
                    self.skipped_events += 1
                    continue
                pipe.xadd(
                    self._k_events,
                    {b"r": self._rid, b"e": data},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            if not len(pipe):
                continue
            sent = await self._do("publish", pipe.execute, None, timeout_s=self.timeout_s * 10)
            if sent is None:  # degraded: keep them for when Redis is back
                self._outbox.extendleft(reversed(batch))
                return

    async def _reader(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await self._up.wait()
            try:
                async with asyncio.timeout(READ_BLOCK_S + max(self.timeout_s * 10, 1.0)):
                    reply: Any = await self._blocking.xread(
                        {self._k_events: self.position},
                        count=READ_COUNT,
                        block=int(READ_BLOCK_S * 1000),
                    )
            except (RedisError, OSError, TimeoutError) as exc:
                self._degrade("read", exc)
                continue
            streams = reply.items() if isinstance(reply, dict) else (reply or [])
            for _name, entries in streams:
                batch: list[tuple[str, dict[str, Any]]] = []
                last = self.position
                for sid, fields in entries:
                    last = sid.decode() if isinstance(sid, bytes) else str(sid)
                    origin = fields.get(b"r", b"")
                    if origin == self._rid:
                        continue
                    try:
                        batch.append((origin.decode(), orjson.loads(fields[b"e"])))
                    except (KeyError, orjson.JSONDecodeError, UnicodeDecodeError):
                        continue
                self.position = last
                if batch:
                    try:
                        self.on_events(batch, last)
                    except Exception as exc:  # a bad record must not stop the reader
                        log.warning("store.apply_failed", error=repr(exc))
            await asyncio.sleep(0)  # let requests through between batches (catch-up)

    # -- notices --------------------------------------------------------------------

    async def _subscriber(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await self._up.wait()
            pubsub = self._blocking.pubsub()
            try:
                async with asyncio.timeout(max(self.timeout_s * 5, 0.5)):
                    await pubsub.subscribe(
                        self._ch_claimed,
                        self._ch_done,
                        self._ch_used,
                        self._ch_inval,
                        self._ch_fire,
                    )
                self._subscribed.set()
                while self.up:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if msg is not None:
                        self._dispatch(msg.get("channel"), msg.get("data"))
            except (RedisError, OSError, TimeoutError) as exc:
                self._degrade("subscribe", exc)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(0.5):
                        await pubsub.aclose()

    def _dispatch(self, channel: Any, data: Any) -> None:
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        if not isinstance(data, bytes | str):
            return
        text = data.decode() if isinstance(data, bytes) else data
        try:
            if channel == self._ch_claimed:
                h, _, span_ms = text.partition(" ")
                self._known[h] = time.monotonic() + int(span_ms) / 1000
            elif channel == self._ch_done:
                for fut in self._waiters.get(text, ()):
                    if not fut.done():
                        fut.set_result(None)
            elif channel == self._ch_used:
                self.on_used(text)
            elif channel == self._ch_inval:
                notice = orjson.loads(text)
                if notice.get("by") != self.replica:
                    self.on_invalidated([str(h) for h in notice.get("h", [])])
            elif channel == self._ch_fire:
                request = orjson.loads(text)
                if isinstance(request, dict) and request.get("from") != self.replica:
                    self.on_fire(request)
        except Exception as exc:
            log.warning("store.notice_failed", channel=channel, error=repr(exc))

    # -- results ----------------------------------------------------------------------

    async def claim(
        self, h: str, scope: str, tool: str, tag: str, reuse: int, ttl_s: float
    ) -> bool | None:
        member = orjson.dumps([h, tool, tag])
        keys = [self._key("uses", h), self._key("flight", h), self._key("res", h)]
        keys.append(self._key("idx", scope))
        ttl_ms = max(1, int(ttl_s * 1000))
        args: list[Any] = [self._rid, max(1, reuse), ttl_ms, FLIGHT_MS, member, self._ch_claimed, h]
        got = await self._do("claim", lambda: self._claim(keys=keys, args=args), None)
        return None if got is None else bool(got)

    def settle(self, h: str, result: Result | None, tool: str = "", kind: str = "") -> None:
        if not self.up or self._closing:
            return
        if result is None:
            keys = [self._key("flight", h), self._key("uses", h)]
            args: list[Any] = [self._rid, h, self._ch_done]
            self._spawn(self._do("release", lambda: self._release(keys=keys, args=args), None))
            return
        blob = encode_result(result, tool, kind)
        keys = [self._key("flight", h), self._key("res", h), self._key("uses", h)]
        grace = int((self.wait_s + 5) * 1000)
        args = [self._rid, blob, grace, h, self._ch_done]
        self._spawn(
            self._do("put", lambda: self._put(keys=keys, args=args), None, self.timeout_s * 5)
        )

    async def consume(self, h: str) -> bool | None:
        keys = [self._key("uses", h), self._key("res", h)]
        got = await self._do("consume", lambda: self._consume(keys=keys), None)
        return None if got is None else bool(got)

    async def take(self, h: str) -> tuple[Result, str, str, float | None] | None:
        lapses = self._known.get(h)
        if lapses is None or lapses < time.monotonic():
            return None  # never claimed (as far as we heard), or long gone
        keys = [self._key("uses", h), self._key("res", h), self._key("flight", h)]
        got = await self._do("take", lambda: self._take(keys=keys, args=[h, self._ch_used]), None)
        if not got or int(got[0]) == 0:
            return None
        if int(got[0]) == 1:
            return self._decoded(got[1], None)
        # in flight on another replica: wait for it rather than send the call twice
        started = time.monotonic()
        deadline = started + min(int(got[1]) / 1000, self.wait_s)
        res_key, flight_key = keys[1], keys[2]

        async def check() -> tuple[bytes | None, int]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(res_key)
            pipe.exists(flight_key)
            blob, flying = await pipe.execute()
            return blob, int(flying)

        while True:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(h, set()).add(fut)
            try:
                # checked after registering: a notice sent before this is not missed
                no_reply: tuple[bytes | None, int] = (None, 0)
                blob, flying = await self._do("wait", check, no_reply)
                if blob is not None:
                    return self._decoded(blob, time.monotonic() - started)
                left = deadline - time.monotonic()
                if not flying or left <= 0 or not self.up:
                    # failed, invalidated, or too slow: the agent goes upstream
                    log.info(
                        "store.wait_ended",
                        waited_s=round(time.monotonic() - started, 3),
                        why="gone" if not flying else "too slow" if left <= 0 else "degraded",
                    )
                    return None
                with contextlib.suppress(TimeoutError):
                    # notices can be missed while pub/sub reconnects: look again now and then
                    await asyncio.wait_for(fut, min(left, 0.25))
            finally:
                waiters = self._waiters.get(h)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        del self._waiters[h]

    def _decoded(
        self, blob: bytes, waited: float | None
    ) -> tuple[Result, str, str, float | None] | None:
        try:
            result, tool, kind = decode_result(blob)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("store.bad_result", error=repr(exc))
            return None
        return result, tool, kind, waited

    async def invalidate(self, scope: str, stale: Callable[[str, str], bool]) -> int:
        idx = self._key("idx", scope)

        async def run() -> int:
            members: list[Any] = await self._redis.zrange(idx, 0, -1)
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
                pipe.publish(self._ch_inval, orjson.dumps({"by": self.replica, "h": doomed}))
                await pipe.execute()
            return len(doomed)

        return await self._do("invalidate", run, 0, timeout_s=self.timeout_s * 2)

    def relay(self, request: dict[str, Any]) -> None:
        if not self.up or self._closing:
            return
        data = orjson.dumps({**request, "from": self.replica})
        self._spawn(self._do("relay", lambda: self._redis.publish(self._ch_fire, data), None))


def check_url(url: str | None) -> None:
    """Raise ValueError, saying what to write instead, for a `--store` it cannot use."""
    if not url or url == "embedded":
        return
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"--store {redact(url)!r}: use 'embedded' or a Redis URL "
            "(redis://[USER:PASS@]HOST:PORT/DB, rediss://... for TLS, unix:///path.sock)"
        )


def make_store(
    url: str | None,
    *,
    state_root: Path,
    prefix: str = "prefire",
    wait_s: float = 5.0,
    timeout_s: float = 0.1,
    start_after: str = "0",
) -> Store:
    """The store a `--store` value names: embedded (None, "", "embedded") or Redis
    (redis://, rediss://, unix://). Raises ValueError saying what is wrong."""
    check_url(url)
    if not url or url == "embedded":
        return Store()
    return RedisStore(
        url,
        replica=replica_id(state_root),
        prefix=prefix,
        wait_s=wait_s,
        timeout_s=timeout_s,
        start_after=start_after,
    )
