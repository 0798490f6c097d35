"""Whether Redis answers: every operation within a short timeout; a failure marks the
store degraded (one `store.degraded` warning) until a background probe reconnects
(`store.recovered`). While degraded, shared operations answer what an embedded store
would, so the agent's traffic never fails because of Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

T = TypeVar("T")

RECOVER_MAX_S = 5.0


class Health:
    def __init__(
        self,
        safe_url: str,
        clients: tuple[Redis, ...],
        timeout_s: float,
        on_down: Callable[[], None],
        on_up: Callable[[], None],
    ) -> None:
        self.safe_url = safe_url
        self.timeout_s = timeout_s
        self._clients = clients
        self._on_down = on_down
        self._on_up = on_up
        self.up = True
        self.ready = asyncio.Event()  # set while up
        self.ready.set()
        self.closing = False
        self._recovering: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()  # writes in the background

    async def do(
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
            self.degrade(what, exc)
            return fallback

    def degrade(self, what: str, exc: BaseException) -> None:
        if not self.up or self.closing:
            return
        self.up = False
        self.ready.clear()
        log.warning(
            "store.degraded",
            store=self.safe_url,
            op=what,
            error=repr(exc),
            effect="shared patterns and results paused; serving from this replica alone",
        )
        self._on_down()
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        delay = 0.2
        while not self.closing:
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(max(self.timeout_s * 5, 0.5)):
                    # pooled connections to the server that went away are dead: drop them all
                    for client in self._clients:
                        await client.connection_pool.disconnect()
                    await self._clients[0].ping()
            except Exception:
                delay = min(delay * 2, RECOVER_MAX_S)
                continue
            self.up = True
            self.ready.set()
            self._on_up()
            log.info("store.recovered", store=self.safe_url)
            return

    def spawn(
        self, what: str, fn: Callable[[], Awaitable[Any]], timeout_s: float | None = None
    ) -> None:
        """Run a write in the background: the request path never waits for Redis."""
        if not self.up or self.closing:
            return
        task = asyncio.ensure_future(self.do(what, fn, None, timeout_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the writes in the background to end."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        """Stop probing and writing (the store is closing: failures are no news now)."""
        self.closing = True
        for task in self._pending:
            task.cancel()
        if self._recovering is not None:
            self._recovering.cancel()
            with contextlib.suppress(BaseException):
                await self._recovering
