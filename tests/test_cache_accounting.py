"""The result cache's serves and how every early call ends, counted by Accounting:
fired = used + wasted + failed + expired, whatever happens to the calls."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from prefire.proxy.accounting import Accounting, Ended, Fired, Served, Skipped, format_table
from prefire.proxy.cache import CacheKey, Entry, Result, ResultCache
from prefire.proxy.store import result_key


def result() -> Result:
    return Result(200, [], b"{}", "application/json", 0.01)


class Harness:
    """A cache whose entries are counted as the speculator counts them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.accounting = Accounting()
        self.ends: list[str] = []
        self.cache = ResultCache(on_end=self._ended, clock=clock)

    def _ended(self, entry: Entry, outcome: str) -> None:
        self.ends.append(outcome)
        self.accounting.record(Ended(entry.tool, None, outcome))

    def fire(self, key: CacheKey, fetch, ttl: float = 30, reuse: int = 1) -> Entry | None:
        entry = self.cache.start(
            key, "t", lambda _entry: fetch(), ttl=ttl, reuse=reuse, kind="eager", tags=()
        )
        if entry is not None:
            self.accounting.record(Fired("t", None, "eager"))
        return entry

    async def take(self, key: CacheKey, wait: float | None = None):
        got = await self.cache.take(key, None if wait is None else (lambda e: wait))
        if got is not None:
            self.accounting.record(Served("t", None, got[1].used == 1, got[2], 0.0))
        return got

    def balanced(self) -> bool:
        c = self.accounting.tool("t")
        return c.fired == c.used + c.wasted + c.failed + c.expired


def key(n: int = 0) -> CacheKey:
    return CacheKey("s", "b", "t", str(n).encode())


class Gate:
    """Early calls that run until the test opens the gate."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fetch(self, answer: Callable[[], Result | None] = result):
        async def fetch() -> Result | None:
            await self.event.wait()
            return answer()

        return fetch

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def gate() -> Gate:
    return Gate()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def waiting_for(h: Harness, entry: Entry | None) -> asyncio.Task:
    """A request for key() that is waiting for `entry`'s result (promoted)."""
    assert entry is not None
    before = entry.waiting
    task = asyncio.create_task(h.take(key(), wait=5))
    await until(lambda: entry.waiting == before + 1)
    return task


async def test_a_promoted_call_is_counted_used_only_once_its_result_is_in_hand(
    h: Harness, gate: Gate
) -> None:
    entry = h.fire(key(), gate.fetch())
    assert entry is not None
    waiting = await waiting_for(h, entry)
    assert entry.used == 0 and entry.waiting == 1  # held, not counted
    gate.open()
    assert (await waiting) is not None
    assert entry.used == 1 and h.ends == ["used"] and h.balanced()


async def test_a_promoted_call_that_comes_back_empty_is_counted_failed(
    h: Harness, gate: Gate
) -> None:
    entry = h.fire(key(), gate.fetch(lambda: None))
    waiting = await waiting_for(h, entry)
    gate.open()
    assert (await waiting) is None
    assert h.ends == ["failed"] and h.accounting.tool("t").failed == 1 and h.balanced()


async def test_a_promoted_call_that_raises_is_counted_failed(h: Harness) -> None:
    async def boom() -> Result:
        await asyncio.sleep(0.01)
        raise RuntimeError("x")

    h.fire(key(), boom)
    assert await h.take(key(), wait=5) is None
    assert h.ends == ["failed"] and h.balanced()


async def test_an_agent_request_cancelled_while_waiting_gives_its_serve_back(
    h: Harness, gate: Gate
) -> None:
    entry = h.fire(key(), gate.fetch())
    first = await waiting_for(h, entry)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert entry is not None and entry.waiting == 0 and entry.uses_left == 1
    assert not entry.task.cancelled()  # the call goes on: the next request may use it
    gate.open()
    assert await h.take(key(), wait=5) is not None
    assert h.ends == ["used"] and h.balanced()


async def test_a_speculative_call_cancelled_under_a_waiting_request_sends_it_upstream(
    h: Harness, gate: Gate
) -> None:
    """The call's cancellation is not the request's: the request gets None (it goes
    upstream), not a CancelledError that would cut the agent's connection."""
    entry = h.fire(key(), gate.fetch())  # never opened
    waiting = await waiting_for(h, entry)
    assert entry is not None and entry.waiting == 1
    entry.task.cancel()
    assert await waiting is None
    assert not waiting.cancelled() and entry.waiting == 0
    assert h.cache.lookup(key()) is None  # nothing left to serve
    assert h.ends == ["failed"] and h.balanced()


async def test_a_promotion_timeout_drops_the_call_as_wasted(h: Harness, gate: Gate) -> None:
    entry = h.fire(key(), gate.fetch())  # hung: never opened
    assert await h.take(key(), wait=0.05) is None
    await asyncio.sleep(0)
    assert entry is not None and entry.task.cancelled()
    assert h.ends == ["promotion_timeout"] and h.accounting.tool("t").wasted == 1
    assert h.balanced()


async def test_an_entry_dropped_while_a_request_waits_ends_when_that_request_is_done(
    h: Harness, gate: Gate
) -> None:
    entry = h.fire(key(), gate.fetch(), reuse=2)  # still in the cache while one request waits
    waiting = await waiting_for(h, entry)
    assert h.cache.invalidate(lambda e: True) == 1
    assert h.ends == [] and entry is not None and not entry.task.cancelled()
    gate.open()
    assert (await waiting) is not None
    assert h.ends == ["used"] and h.balanced()


async def test_expired_is_its_own_outcome() -> None:
    now = [100.0]  # the cache's clock, moved by the test
    h = Harness(clock=lambda: now[0])

    async def quick() -> Result:
        return result()

    h.fire(key(), quick, ttl=10)
    await asyncio.sleep(0)
    now[0] += 9.9
    assert h.cache.lookup(key()) is not None  # fresh until its ttl has passed on the clock
    now[0] += 0.1
    assert await h.take(key()) is None
    assert h.ends == ["expired"] and h.accounting.tool("t").expired == 1 and h.balanced()


async def test_reused_results_count_one_use_per_call(h: Harness) -> None:
    async def quick() -> Result:
        return result()

    h.fire(key(), quick, reuse=3)
    await asyncio.sleep(0)
    for _ in range(3):
        assert await h.take(key()) is not None
    assert await h.take(key()) is None
    c = h.accounting.tool("t")
    assert c.fired == 1 and c.used == 1 and h.balanced()


@pytest.mark.parametrize("seed", range(12))
async def test_every_early_call_ends_exactly_one_way(h: Harness, seed: int) -> None:
    """Random calls (quick, slow, failing, empty, hung), requests (waiting or not, some
    cancelled), invalidations and expiries; at shutdown the counts add up."""
    rng = random.Random(seed)

    def make_fetch():
        delay = rng.choice([0, 0.001, 0.02, 0.05, 0.3])
        ending = rng.choice(["ok", "ok", "ok", "none", "raise"])

        async def fetch() -> Result | None:
            await asyncio.sleep(delay)
            if ending == "raise":
                raise RuntimeError("down")
            return result() if ending == "ok" else None

        return fetch

    requests: list[asyncio.Task] = []
    for _ in range(60):
        op = rng.random()
        k = key(rng.randrange(8))
        if op < 0.4:
            h.fire(k, make_fetch(), ttl=rng.choice([0.01, 0.05, 30]), reuse=rng.choice([1, 1, 2]))
        elif op < 0.75:
            requests.append(asyncio.create_task(h.take(k, wait=rng.choice([None, 0.01, 0.2]))))
        elif op < 0.85 and requests:
            rng.choice(requests).cancel()
        elif op < 0.95:
            h.cache.invalidate(lambda e, k=k: e.key == k)
        await asyncio.sleep(rng.choice([0, 0, 0.005, 0.02]))
    await asyncio.gather(*requests, return_exceptions=True)
    h.cache.clear()
    await asyncio.sleep(0.01)
    c = h.accounting.tool("t")
    assert c.fired == len(h.ends), (c, h.ends)  # each call ended once, no more, no less
    assert h.balanced(), c


def test_stats_count_skip_reasons_and_say_they_show_the_last_run() -> None:
    a = Accounting()
    a.record(Fired("get_weather", None, "eager"))
    a.record(Ended("get_weather", None, "expired"))
    for reason in ("no_binding", "no_binding", "rule_denied"):
        a.record(Skipped(reason))
    report = a.report()
    assert report["skipped"] == {"no_binding": 2, "rule_denied": 1}
    assert report["totals"]["expired"] == 1 and report["totals"]["in_flight"] == 0
    table = format_table(report)
    assert table.startswith("The last run of the proxy only")
    assert "no_binding" in table and "expired" in table


def test_each_binding_builds_its_keys_one_way() -> None:
    """The early call and the agent's request build equal keys whatever the arguments'
    order or the URL's encoding, and different tenants never share one."""
    a = CacheKey.mcp("s1", "mcp:http://x/mcp|", "get", {"b": 1, "a": [1, 2]})
    assert a == CacheKey.mcp("s1", "mcp:http://x/mcp|", "get", {"a": [1, 2], "b": 1})
    assert a != CacheKey.mcp("s2", "mcp:http://x/mcp|", "get", {"a": [1, 2], "b": 1})
    r = CacheKey.rest("s1", "get", "https://api.example/w?q=Paris%20Nord", None)
    assert r == CacheKey.rest("s1", "GET", "https://api.example/w?q=Paris+Nord", None)
    assert r.binding == "rest" and r != CacheKey.rest("s1", "GET", "https://api.example/w", None)


def test_the_shared_name_of_a_key_is_the_one_earlier_versions_gave() -> None:
    """Replicas of two versions in one deployment still find each other's results."""
    key = CacheKey.mcp("scope-a", "mcp:http://x/mcp", "get_weather", {"city": "Oslo"})
    assert result_key(key) == "72bd2c5925b2eac718486a34ba044333"
