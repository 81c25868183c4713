"""The cache tiers: coalescing, Redis sharing, stale answers, versioning, Redis outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as redis

from gateway.model.errors import UpstreamUnavailableError
from gateway.sources.cache import NOTICES, Cache
from tests.support import RedisServer


@pytest_asyncio.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[str]:
    connection = redis.Redis.from_url(redis_url)
    await connection.flushdb()
    await connection.aclose()
    yield redis_url


class Counter:
    def __init__(self, value: object = "v", delay: float = 0.0) -> None:
        self.calls = 0
        self.value = value
        self.delay = delay

    async def __call__(self) -> object:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


async def test_concurrent_fetches_in_one_process_are_coalesced() -> None:
    cache = Cache()
    fetch = Counter(delay=0.05)
    results = await asyncio.gather(*(cache.get_or_fetch("k", fetch, 60) for _ in range(10)))
    assert results == ["v"] * 10
    assert fetch.calls == 1
    assert await cache.get_or_fetch("k", fetch, 60) == "v"
    assert fetch.calls == 1
    assert cache.stats.coalesced == 9


async def test_two_processes_share_values_and_one_fetch(clean_redis: str) -> None:
    first, second = Cache(clean_redis, version="t"), Cache(clean_redis, version="t")
    try:
        fetch = Counter(value={"rows": [1, 2]}, delay=0.3)
        results = await asyncio.gather(
            first.get_or_fetch("odata:x", fetch, 60), second.get_or_fetch("odata:x", fetch, 60)
        )
        assert results == [{"rows": [1, 2]}, {"rows": [1, 2]}]
        assert fetch.calls == 1
        third = Cache(clean_redis, version="t")
        assert await third.get_or_fetch("odata:x", fetch, 60) == {"rows": [1, 2]}
        assert fetch.calls == 1
        assert third.stats.hits == 1
        await third.close()
        other_version = Cache(clean_redis, version="u")
        assert await other_version.get_or_fetch("odata:x", Counter("new"), 60) == "new"
        await other_version.close()
    finally:
        await first.close()
        await second.close()


async def test_a_dead_lock_holder_does_not_block_forever(clean_redis: str) -> None:
    cache = Cache(clean_redis, version="t", lock_timeout=0.5)
    try:
        holder = Cache(clean_redis, version="t", lock_timeout=0.5)
        assert await holder._lock("k")  # a holder that dies without unlocking
        await holder.close()
        fetch = Counter()
        started = time.monotonic()
        assert await cache.get_or_fetch("k", fetch, 60) == "v"
        assert fetch.calls == 1
        assert time.monotonic() - started < 5
    finally:
        await cache.close()


async def test_stale_while_revalidate_answers_at_once_and_refreshes() -> None:
    cache = Cache()
    notices: list[dict[str, object]] = []
    NOTICES.set(notices)
    await cache.get_or_fetch("k", Counter("old"), 0.05, stale_while_revalidate=10)
    await asyncio.sleep(0.1)
    fresh = Counter("new", delay=0.05)
    assert await cache.get_or_fetch("k", fresh, 0.05, stale_while_revalidate=10) == "old"
    assert notices[0]["code"] == "STALE_REVALIDATING"
    await asyncio.sleep(0.2)
    assert fresh.calls == 1
    assert await cache.get_or_fetch("k", fresh, 60, stale_while_revalidate=10) == "new"


async def test_stale_if_error_within_its_window_only() -> None:
    cache = Cache()
    notices: list[dict[str, object]] = []
    NOTICES.set(notices)
    await cache.get_or_fetch("k", Counter("good"), 0.05, stale_if_error=0.3)

    async def failing() -> object:
        raise UpstreamUnavailableError("down")

    await asyncio.sleep(0.1)
    assert await cache.get_or_fetch("k", failing, 0.05, stale_if_error=0.3) == "good"
    assert notices[-1]["code"] == "STALE_IF_ERROR"
    assert 0.05 < float(notices[-1]["ageSeconds"]) < 0.5  # type: ignore[arg-type]
    await asyncio.sleep(0.35)
    with pytest.raises(UpstreamUnavailableError):
        await cache.get_or_fetch("k", failing, 0.05, stale_if_error=0.3)


async def test_l1_is_bounded() -> None:
    cache = Cache(max_entries=10)
    for i in range(50):
        await cache.set(f"k{i}", i, 60)
    assert len(cache._l1) == 10
    assert await cache.get("k49") == 49
    assert await cache.get("k0") is None


async def test_redis_outage_degrades_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer().start()
    url = server.url
    cache = Cache(url, version="t")
    try:
        await cache.set("a", 1, 60)
        server.stop()
        fetch = Counter("local")
        assert await cache.get_or_fetch("b", fetch, 60) == "local"
        assert await cache.get_or_fetch("b", fetch, 60) == "local"  # served from L1
        assert fetch.calls == 1
        assert "Redis cache unavailable" in caplog.text
        server.start()
        cache._redis_down_until = 0.0  # do not wait the retry interval in a test
        await cache.set("c", 3, 60)
        other = Cache(url, version="t")
        assert await other.get("c") == 3
        await other.close()
    finally:
        await cache.close()
        server.stop()
        server.stop()


async def test_a_budget_refusal_of_the_first_caller_is_not_shared_with_the_others() -> None:
    from gateway.sources.upstream_budget import UpstreamBudgetError

    cache = Cache()
    started = asyncio.Event()
    release = asyncio.Event()

    async def over_budget() -> str:
        started.set()
        await release.wait()
        raise UpstreamBudgetError("over", limit="upstreamRequests", allowed=1, measured=2)

    async def within() -> str:
        return "rows"

    try:
        first = asyncio.create_task(cache.get_or_fetch("k", over_budget, 60))
        await started.wait()
        second = asyncio.create_task(cache.get_or_fetch("k", within, 60))
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(UpstreamBudgetError):
            await first
        assert await second == "rows"  # fetched under its own budget
        assert cache.stats.coalesced >= 1
    finally:
        await cache.close()
