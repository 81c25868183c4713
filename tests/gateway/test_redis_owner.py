"""One Redis owner: the cache, the rate limits and the events of an app share its client, and
follow its one reconnect policy (an immediate retry, then a pause for every user)."""

from __future__ import annotations

import pytest

from gateway.http.ratelimit import RateLimiter, RateLimitSettings
from gateway.sources.cache import Cache
from gateway.sources.redis import RedisOwner, RedisUnavailable
from resolvers.odata.replica.server import ODataReplica
from tests.support import free_port, gateway_client, register_subset

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(60)]


async def test_the_cache_and_the_rate_limits_share_one_client(redis_url: str) -> None:
    owner = RedisOwner(redis_url)
    cache = Cache(version="owner-test", redis=owner, url=redis_url)
    limiter = RateLimiter(RateLimitSettings(redis_url=redis_url), redis=owner)
    try:
        assert cache.redis is owner
        await cache.set("k", 1, 60)
        other = Cache(redis_url, version="owner-test")  # another process's cache
        assert await other.get("k") == 1
        await other.close()
        assert await limiter.hit("ip:owner-test", 100) is None
        assert await owner.client.exists("dls:bucket:ip:owner-test")
        await cache.close()
        await limiter.aclose()
        assert await owner.client.ping()  # neither closed what the owner holds
    finally:
        await owner.aclose()


async def test_one_failure_pauses_redis_for_every_user() -> None:
    owner = RedisOwner(f"redis://127.0.0.1:{free_port()}/0", retry_after=60)
    cache = Cache(version="t", redis=owner)
    limiter = RateLimiter(RateLimitSettings(redis_url=owner.url), redis=owner)
    calls = 0

    async def ping() -> object:
        nonlocal calls
        calls += 1
        return await owner.client.ping()

    try:
        with pytest.raises(RedisUnavailable):
            await owner.run("test", ping)
        assert calls == 2  # one immediate retry on a fresh connection
        assert not owner.available
        assert not cache.redis_available
        # Paused: refused at once, the users carry on alone.
        with pytest.raises(RedisUnavailable):
            await owner.run("test", ping)
        assert calls == 2
        assert await limiter.hit("ip:x", 1) is None
        assert await limiter.hit("ip:x", 1) is not None  # counted in memory
        assert await cache.get_or_fetch("k", _value, 60) == "v"
    finally:
        await owner.aclose()


async def _value() -> str:
    return "v"


async def test_the_app_builds_one_owner_for_cache_rate_limits_and_events(redis_url: str) -> None:
    async with ODataReplica() as replica:
        with register_subset("FT") as registers:
            async with gateway_client(
                registers,
                {"FT": {"url": replica.url}},
                cache_url=redis_url,
            ) as client:
                gateway = client.app.state.gateway  # type: ignore[attr-defined]
                cache = gateway.services_cache
                owner = cache.redis
                assert isinstance(owner, RedisOwner)
                assert owner.url == redis_url
                from gateway.events.bus import bus_for

                bus = bus_for(gateway.runtime.sources, cache)
                shared = bus._shared("FT")
                assert shared is not None
                assert shared.redis is owner
                body = (await client.get("/readyz")).json()
                assert body["cache"] == {"redis": True, "redisAvailable": True}
