"""The Redis store (`prefire run --store redis://HOST:PORT/DB`): replicas behind a load
balancer learn and serve as one. It puts together replication (patterns), shared results,
notices and health, each in its own module, behind the store's interface (base.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from prefire.patterns.events import Event, SessionKey
from prefire.proxy.cache import Result
from prefire.proxy.store.base import Stale, Store, StoreListener, Taken
from prefire.proxy.store.health import Health
from prefire.proxy.store.names import redact
from prefire.proxy.store.notices import Notices
from prefire.proxy.store.replication import Replication
from prefire.proxy.store.results import SharedResults

log = structlog.get_logger(__name__)


class RedisStore(Store):
    shared = True

    def __init__(
        self,
        url: str,
        *,
        replica: str,
        listener: StoreListener | None = None,
        prefix: str = "prefire",
        wait_s: float = 5.0,
        timeout_s: float = 0.1,
        start_after: str = "0",
    ) -> None:
        super().__init__(replica, listener)
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.safe_url = redact(url)
        self.timeout_s = timeout_s
        common: dict[str, Any] = {
            "socket_connect_timeout": timeout_s,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # raises ValueError on a URL it cannot use
        self._redis = Redis.from_url(url, socket_timeout=timeout_s, **common)
        # blocking reads (XREAD BLOCK, pub/sub) on their own connections, bounded by us
        self._blocking = Redis.from_url(url, socket_timeout=None, **common)
        self.health = Health(
            self.safe_url,
            (self._redis, self._blocking),
            timeout_s,
            on_down=self._down,
            on_up=self._back,
        )
        self.replication = Replication(
            self._redis,
            self._blocking,
            self.health,
            f"{prefix}:events",
            replica.encode(),
            self.listener,
            start_after,
        )
        self.results = SharedResults(self._redis, self.health, prefix, replica, wait_s)
        self.notices = Notices(
            self._redis, self._blocking, self.health, self.results, prefix, replica, self.listener
        )
        self._loops: list[asyncio.Task[None]] = []

    @property
    def up(self) -> bool:
        return self.health.up

    def _down(self) -> None:
        self.results.wake_all()

    def _back(self) -> None:
        self.replication.wake.set()

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        async def ping() -> bool:
            return bool(await self._redis.ping())

        wait = max(self.timeout_s * 5, 0.5)
        if await self.health.do("connect", ping, False, timeout_s=wait):
            log.info("store.connected", store=self.safe_url, replica=self.replica)
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self.replication.publisher()),
            loop.create_task(self.replication.reader()),
            loop.create_task(self.notices.subscriber()),
        ]
        if self.up:  # started means listening: notices sent from now on are heard
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.notices.subscribed.wait()

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.health.drain()
                await self.replication.flush()
        await self.health.close()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(BaseException):
                await task
        for client in (self._redis, self._blocking):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()

    # -- the store's primitives, by the part that does them -----------------------------

    def publish(self, event: Event) -> None:
        self.replication.publish(event)

    def publish_link(self, kind: str, session: SessionKey, value: Any) -> None:
        self.replication.publish_link(kind, session, value)

    async def claim(
        self, h: str, scope: str, tool: str, tag: str, reuse: int, ttl_s: float
    ) -> bool | None:
        return await self.results.claim(h, scope, tool, tag, reuse, ttl_s)

    def settle(self, h: str, result: Result | None, tool: str = "", kind: str = "") -> None:
        self.results.settle(h, result, tool, kind)

    async def consume(self, h: str) -> bool | None:
        return await self.results.consume(h)

    async def take(self, h: str) -> Taken | None:
        return await self.results.take(h)

    async def invalidate(self, scope: str, stale: Stale) -> int:
        return await self.results.invalidate(scope, stale)

    def relay(self, request: dict[str, Any]) -> bool:
        return self.notices.relay(request)
