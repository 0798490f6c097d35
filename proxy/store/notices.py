"""What replicas tell each other over pub/sub: a call was claimed, a claimed call ended,
another replica used a result, a write dropped shared results, a call this replica has
no binding for should be made by one that has (relayed)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from prefire.proxy.store.base import StoreListener
from prefire.proxy.store.health import Health
from prefire.proxy.store.results import SharedResults

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

POLL_S = 0.5


class Notices:
    def __init__(
        self,
        redis: Redis,
        blocking: Redis,
        health: Health,
        results: SharedResults,
        prefix: str,
        replica: str,
        listener: StoreListener,
    ) -> None:
        self._redis = redis
        self._blocking = blocking  # pub/sub on a connection of its own
        self._health = health
        self._results = results
        self._replica = replica
        self._listener = listener
        self._ch_fire = f"{prefix}:fire"
        self.subscribed = asyncio.Event()

    def relay(self, request: dict[str, Any]) -> bool:
        data = orjson.dumps({**request, "from": self._replica})
        self._health.spawn("relay", lambda: self._redis.publish(self._ch_fire, data))
        return True

    async def subscriber(self) -> None:
        from redis.exceptions import RedisError

        r = self._results
        channels = (r.ch_claimed, r.ch_done, r.ch_used, r.ch_inval, self._ch_fire)
        while True:
            await self._health.ready.wait()
            pubsub = self._blocking.pubsub()
            try:
                async with asyncio.timeout(max(self._health.timeout_s * 5, 0.5)):
                    await pubsub.subscribe(*channels)
                self.subscribed.set()
                while self._health.up:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                    if msg is not None:
                        self.dispatch(msg.get("channel"), msg.get("data"))
            except (RedisError, OSError, TimeoutError) as exc:
                self._health.degrade("subscribe", exc)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(0.5):
                        await pubsub.aclose()

    def dispatch(self, channel: Any, data: Any) -> None:
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        if not isinstance(data, bytes | str):
            return
        text = data.decode() if isinstance(data, bytes) else data
        r = self._results
        try:
            if channel == r.ch_claimed:
                r.claimed(text)
            elif channel == r.ch_done:
                r.done(text)
            elif channel == r.ch_used:
                self._listener.used_elsewhere(text)
            elif channel == r.ch_inval:
                notice = orjson.loads(text)
                if notice.get("by") != self._replica:
                    self._listener.invalidated_elsewhere([str(h) for h in notice.get("h", [])])
            elif channel == self._ch_fire:
                request = orjson.loads(text)
                if isinstance(request, dict) and request.get("from") != self._replica:
                    self._listener.fire_requested(request)
        except Exception as exc:
            log.warning("store.notice_failed", channel=channel, error=repr(exc))
