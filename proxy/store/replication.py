"""Learned patterns across replicas: every replica appends the events its observer
produced, and how it linked each request into a conversation, to one Redis Stream, and
applies the others' to its own sessions and model (the listener's `remote_events`).

Publishing is queued and sent in batches by a background task, never from the request
path; while Redis is away the queue keeps the newest OUTBOX_MAX records. A starting
replica reads the stream from where its snapshot left off (from the start when it has
none), bounded by the stream's MAXLEN.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from prefire.patterns.events import Event, SessionKey, to_record
from prefire.proxy.store.base import RemoteBatch, StoreListener
from prefire.proxy.store.health import Health

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

STREAM_MAXLEN = 100_000  # events kept in the shared stream (approximate trim)
MAX_EVENT_BYTES = 1 << 20  # a larger event (a huge tool result) is not shared
OUTBOX_MAX = 20_000  # events queued while Redis is slow or away; the oldest go first
READ_COUNT = 500  # events read and applied per batch
READ_BLOCK_S = 0.5
PUBLISH_BATCH = 256
LINK = "link"  # a stream record that is not an event: how a request joined a conversation

# XREAD's reply: [(stream, [(entry id, {field: value})])] (a dict of streams in RESP3)
StreamEntries = list[tuple[bytes | str, dict[bytes, bytes]]]


class Replication:
    def __init__(
        self,
        redis: Redis,
        blocking: Redis,
        health: Health,
        stream: str,
        replica: bytes,
        listener: StoreListener,
        start_after: str,
    ) -> None:
        self._redis = redis
        self._blocking = blocking  # XREAD BLOCK on a connection of its own, bounded by us
        self._health = health
        self._stream = stream
        self._rid = replica
        self._listener = listener
        self.position = start_after or "0"  # last stream id applied
        self._outbox: deque[dict[str, Any]] = deque(maxlen=OUTBOX_MAX)
        self.wake = asyncio.Event()
        self.skipped_events = 0

    def publish(self, event: Event) -> None:
        self._queue(to_record(event))

    def publish_link(self, kind: str, session: SessionKey, value: Any) -> None:
        self._queue({"kind": LINK, "link": kind, "session": str(session), "value": value})

    def _queue(self, record: dict[str, Any]) -> None:
        if self._health.closing:
            return
        self._outbox.append(record)
        self.wake.set()

    async def publisher(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self._health.ready.wait()
            await self.flush()

    async def flush(self) -> None:
        while self._outbox and self._health.up:
            n = min(len(self._outbox), PUBLISH_BATCH)
            batch = [self._outbox.popleft() for _ in range(n)]
            pipe = self._redis.pipeline(transaction=False)
            for record in batch:
                data = _encoded(record)
                if data is None:
                    self.skipped_events += 1
                    continue
                pipe.xadd(
                    self._stream,
                    {b"r": self._rid, b"e": data},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            if not len(pipe):
                continue
            timeout = self._health.timeout_s * 10
            sent = await self._health.do("publish", pipe.execute, None, timeout_s=timeout)
            if sent is None:  # degraded: keep them for when Redis is back
                self._outbox.extendleft(reversed(batch))
                return

    async def reader(self) -> None:
        while True:
            await self._health.ready.wait()
            entries = await self._read()
            if entries is None:
                continue
            batch: RemoteBatch = []
            last = self.position
            for sid, fields in entries:
                last = sid.decode() if isinstance(sid, bytes) else str(sid)
                record = self._foreign(fields)
                if record is not None:
                    batch.append(record)
            self.position = last
            if batch:
                try:
                    self._listener.remote_events(batch, last)
                except Exception as exc:  # a bad record must not stop the reader
                    log.warning("store.apply_failed", error=repr(exc))
            await asyncio.sleep(0)  # let requests through between batches (catch-up)

    async def _read(self) -> StreamEntries | None:
        """The next entries after `position` (blocking a while when there are none), or
        None when Redis failed (the store is degraded then)."""
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(READ_BLOCK_S + max(self._health.timeout_s * 10, 1.0)):
                reply: Any = await self._blocking.xread(
                    {self._stream: self.position},
                    count=READ_COUNT,
                    block=int(READ_BLOCK_S * 1000),
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._health.degrade("read", exc)
            return None
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        return [entry for _name, entries in streams for entry in entries]

    def _foreign(self, fields: dict[bytes, bytes]) -> tuple[str, dict[str, Any]] | None:
        """Another replica's record (origin, record); None for our own or a broken one."""
        origin = fields.get(b"r", b"")
        if origin == self._rid:
            return None
        try:
            return origin.decode(), orjson.loads(fields[b"e"])
        except (KeyError, orjson.JSONDecodeError, UnicodeDecodeError):
            return None


def _encoded(record: dict[str, Any]) -> bytes | None:
    """The record as sent, or None when it cannot be (not JSON, or too large)."""
    try:
        data = orjson.dumps(record)
    except TypeError:
        return None
    return data if data and len(data) <= MAX_EVENT_BYTES else None
