"""The one module that talks to aiocache: two cache tiers, coalescing, stale answers.

- **L1** is in process: an LRU bounded in entries and, per tier, in bytes (an estimate of
  each value's size). The tiers are the response cache (keys ``response-json:…``), learnt
  persisted documents (``apq:…``) and everything else, the upstream rows and files. An entry
  larger than half its tier's budget is not kept in process. Expired entries are swept every
  ``sweep_interval`` seconds (on insert, and by :meth:`Cache.sweep`), looked up or not.
- **L2** is Redis (aiocache's ``RedisCache``, on the client of the app's
  :class:`gateway.sources.redis.RedisOwner`) when a URL is configured, so that several
  gateway processes share what any of them fetched. If Redis fails, the cache keeps working
  on L1 alone, and the owner's policy (one immediate retry, then a pause of a few seconds,
  one warning) decides when Redis is tried again.

``get_or_fetch`` returns a fresh value, or runs ``fetch`` once for a key however many
callers (in this process, and in other processes through a Redis lock that expires if its
holder dies) ask at the same time. A value past its TTL may still be served:

- *stale-while-revalidate*: within ``stale_while_revalidate`` seconds after expiry the old
  value is returned at once and refreshed in the background;
- *stale-if-error*: within ``stale_if_error`` seconds after expiry the old value is returned
  when the upstream fails.

Either way a notice with the value's age is recorded for the response's ``extensions``.
Keys carry a version (a hash of the datamodels), so a changed datamodel never reads entries
of an old shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiocache import RedisCache
from aiocache.serializers import PickleSerializer

from gateway.model.errors import QueryTooComplexError, UpstreamError
from gateway.sources.redis import RedisOwner, RedisUnavailable

__all__ = ["DEFAULT_MAX_BYTES", "NOTICES", "TIERS", "Cache", "CacheStats", "Entry", "size_of"]

log = logging.getLogger("gateway.sources.cache")

T = TypeVar("T")

# Notices about stale answers, collected per request (the request context sets the list).
NOTICES: ContextVar[list[dict[str, Any]] | None] = ContextVar("dls_cache_notices", default=None)

TIERS = ("upstream", "response", "apq")
# In-process bytes per tier unless the configuration says otherwise.
DEFAULT_MAX_BYTES: Mapping[str, int] = {
    "upstream": 128 * 1024 * 1024,
    "response": 64 * 1024 * 1024,
    "apq": 8 * 1024 * 1024,
}
# What an entry costs besides its value: the key, the Entry, the LRU links.
_ENTRY_OVERHEAD = 240


def _tier(key: str) -> str:
    if key.startswith("response-json:"):
        return "response"
    if key.startswith("apq:"):
        return "apq"
    return "upstream"


def size_of(value: Any) -> int:
    """A cheap estimate of the memory ``value`` holds: containers are sampled (32 members)
    and at most some 2,000 objects are looked at, the rest extrapolated."""
    return _size(value, [2000])


def _size(value: Any, budget: list[int]) -> int:
    size = sys.getsizeof(value)
    budget[0] -= 1
    if budget[0] <= 0 or isinstance(value, str | bytes | bytearray | int | float | None):
        return size
    if isinstance(value, dict):
        items = list(value.items())
        return size + _sampled(
            len(items), items[:32], lambda kv: _size(kv[0], budget) + _size(kv[1], budget)
        )
    if isinstance(value, list | tuple | set | frozenset):
        members = value if isinstance(value, list | tuple) else list(value)
        return size + _sampled(len(members), members[:32], lambda m: _size(m, budget))
    slots = getattr(type(value), "__slots__", None)
    if slots is not None:
        names = (slots,) if isinstance(slots, str) else slots
        return size + sum(_size(getattr(value, n, None), budget) for n in names)
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return size + _size(attributes, budget)
    return size


def _sampled(count: int, sample: Sequence[Any], measure: Callable[[Any], int]) -> int:
    if not sample:
        return 0
    measured = sum(measure(m) for m in sample)
    return measured if count == len(sample) else measured * count // len(sample)


@dataclass(slots=True)
class Entry:
    """A cached value, when it was stored, and for how long it is fresh."""

    value: Any
    stored: float
    ttl: float  # math.inf: fresh until evicted

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored)

    def fresh(self, now: float) -> bool:
        return now < self.stored + self.ttl


@dataclass(slots=True)
class CacheStats:
    """Counters, for metrics, tests and benchmarks."""

    hits: int = 0
    l1_hits: int = 0
    l2_hits: int = 0
    misses: int = 0
    coalesced: int = 0
    stale_served: int = 0
    redis_errors: int = 0
    by_prefix: dict[str, list[int]] = field(default_factory=dict)

    def count(self, key: str, hit: bool) -> None:
        prefix = key.split(":", 1)[0]
        pair = self.by_prefix.setdefault(prefix, [0, 0])
        pair[0 if hit else 1] += 1


class Cache:
    """Two-tier cache of immutable values with per-key coalescing and stale answers."""

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "dls",
        version: str = "",
        max_entries: int = 20_000,
        max_bytes: Mapping[str, int] | None = None,
        sweep_interval: float = 10.0,
        lock_timeout: float = 30.0,
        redis: RedisOwner | None = None,
    ) -> None:
        """``redis``: the app's Redis owner (closed by the app); without it, a ``url`` makes
        one that :meth:`close` closes.
        """
        self.namespace = f"{namespace}:{version}:" if version else f"{namespace}:"
        self.max_entries = max_entries
        self.max_bytes = {**DEFAULT_MAX_BYTES, **(max_bytes or {})}
        self.sweep_interval = sweep_interval
        self.lock_timeout = lock_timeout
        self._l1: OrderedDict[str, Entry] = OrderedDict()
        # Per key: its tier, its estimated size and when it may be dropped.
        self._meta: dict[str, tuple[str, int, float]] = {}
        self._order: dict[str, OrderedDict[str, None]] = {t: OrderedDict() for t in TIERS}
        self.bytes: dict[str, int] = dict.fromkeys(TIERS, 0)
        self._next_sweep = time.time() + sweep_interval
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._refreshing: set[asyncio.Task[Any]] = set()
        self._redis: RedisCache | None = None
        self._owns_redis = redis is None and bool(url)
        self.redis = redis if redis is not None else (RedisOwner(url) if url else None)
        self.url = self.redis.url if self.redis is not None else None
        if self.redis is not None:
            self._redis = _redis_cache(self.redis, self.namespace)
        self.stats = CacheStats()

    # -- tiers ------------------------------------------------------------------------

    @property
    def redis_available(self) -> bool:
        return self.redis is not None and self.redis.available

    @property
    def _redis_down_until(self) -> float:
        """Until when Redis is paused (the owner's; settable, e.g. to end a pause in a test)."""
        return self.redis.down_until if self.redis is not None else 0.0

    @_redis_down_until.setter
    def _redis_down_until(self, value: float) -> None:
        if self.redis is not None:
            self.redis.down_until = value

    async def _redis_call(self, call: Callable[[RedisCache], Awaitable[Any]]) -> Any:
        """Run a Redis operation under the owner's policy; None (L1 only for a while) if
        Redis fails. aiocache's ``ValueError`` (``add`` of an existing key) is an answer.
        """
        if self.redis is None or self._redis is None:
            return None
        backend = self._redis
        try:
            return await self.redis.run("cache", lambda: call(backend), passing=(ValueError,))
        except RedisUnavailable:
            self.stats.redis_errors += 1
            return None

    async def _l2_get(self, key: str) -> Entry | None:
        found = await self._redis_call(lambda redis: redis.get(key))
        return found if isinstance(found, Entry) else None

    async def _l2_set(self, key: str, entry: Entry, keep: float) -> None:
        lifetime = None if math.isinf(entry.ttl + keep) else max(1, math.ceil(entry.ttl + keep))
        await self._redis_call(lambda redis: redis.set(key, entry, ttl=lifetime))

    def _l1_get(self, key: str, now: float, keep: float) -> Entry | None:
        entry = self._l1.get(key)
        if entry is None:
            return None
        if now >= entry.stored + entry.ttl + keep:
            self._l1_drop(key)
            return None
        self._l1.move_to_end(key)
        self._order[self._meta[key][0]].move_to_end(key)
        return entry

    def _l1_set(self, key: str, entry: Entry, keep: float = 0.0) -> None:
        now = time.time()
        if now >= self._next_sweep:
            self.sweep(now)
        tier = _tier(key)
        size = _ENTRY_OVERHEAD + len(key) + size_of(entry.value)
        self._l1_drop(key)
        budget = self.max_bytes[tier]
        if size > budget // 2:
            return  # would crowd out its whole tier: Redis (if any) keeps it
        self._l1[key] = entry
        self._meta[key] = (tier, size, entry.stored + entry.ttl + keep)
        self._order[tier][key] = None
        self.bytes[tier] += size
        order = self._order[tier]
        while self.bytes[tier] > budget and order:
            self._l1_drop(next(iter(order)))
        while len(self._l1) > self.max_entries:
            self._l1_drop(next(iter(self._l1)))

    def _l1_drop(self, key: str) -> None:
        meta = self._meta.pop(key, None)
        if meta is None:
            return
        tier, size, _ = meta
        del self._l1[key]
        del self._order[tier][key]
        self.bytes[tier] -= size

    def sweep(self, now: float | None = None) -> int:
        """Drop the expired entries (past their TTL and stale windows); how many."""
        now = time.time() if now is None else now
        self._next_sweep = now + self.sweep_interval
        expired = [key for key, (_, _, until) in self._meta.items() if now >= until]
        for key in expired:
            self._l1_drop(key)
        return len(expired)

    def entries(self, tier: str) -> int:
        """How many entries a tier keeps in process."""
        return len(self._order[tier])

    async def _lookup(self, key: str, keep: float) -> Entry | None:
        now = time.time()
        entry = self._l1_get(key, now, keep)
        if entry is not None:
            return entry
        entry = await self._l2_get(key)
        if entry is not None and now < entry.stored + entry.ttl + keep:
            self._l1_set(key, entry, keep)
            return entry
        return None

    # -- plain get/set --------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        """The fresh cached value, or None."""
        entry = await self._lookup(key, 0.0)
        return entry.value if entry is not None and entry.fresh(time.time()) else None

    async def set(self, key: str, value: Any, ttl: float | None, keep: float = 0.0) -> None:
        """Store ``value`` for ``ttl`` seconds (None: until evicted; 0: not at all)."""
        if ttl == 0:
            return
        entry = Entry(value, time.time(), math.inf if ttl is None else float(ttl))
        self._l1_set(key, entry, keep)
        await self._l2_set(key, entry, keep)

    # -- get or fetch ---------------------------------------------------------------

    async def get_or_fetch(
        self,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        ttl: float | None,
        *,
        stale_while_revalidate: float = 0.0,
        stale_if_error: float = 0.0,
    ) -> T:
        """The value for ``key``: fresh, stale within the windows, or fetched once."""
        keep = max(stale_while_revalidate, stale_if_error)
        entry = await self._lookup(key, keep)
        now = time.time()
        if entry is not None and entry.fresh(now):
            self.stats.hits += 1
            self.stats.count(key, True)
            result: T = entry.value
            return result
        if entry is not None and now < entry.stored + entry.ttl + stale_while_revalidate:
            self._notice(key, entry, now, "STALE_REVALIDATING")
            self._refresh_in_background(key, fetch, ttl, keep)
            stale: T = entry.value
            return stale
        self.stats.misses += 1
        self.stats.count(key, False)
        try:
            return await self._fetch_once(key, fetch, ttl, keep)
        except UpstreamError:
            if entry is not None and now < entry.stored + entry.ttl + stale_if_error:
                self._notice(key, entry, time.time(), "STALE_IF_ERROR")
                kept: T = entry.value
                return kept
            raise

    def _notice(self, key: str, entry: Entry, now: float, code: str) -> None:
        self.stats.stale_served += 1
        notices = NOTICES.get()
        if notices is not None:
            notices.append({"code": code, "ageSeconds": round(entry.age(now), 1), "key": key})

    def _refresh_in_background(
        self, key: str, fetch: Callable[[], Awaitable[Any]], ttl: float | None, keep: float
    ) -> None:
        if key in self._inflight:
            return

        async def refresh() -> None:
            with contextlib.suppress(Exception):
                await self._fetch_once(key, fetch, ttl, keep)

        task = asyncio.get_running_loop().create_task(refresh())
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _fetch_once(
        self, key: str, fetch: Callable[[], Awaitable[T]], ttl: float | None, keep: float
    ) -> T:
        pending = self._inflight.get(key)
        if pending is not None:
            self.stats.coalesced += 1
            try:
                shared: T = await asyncio.shield(pending)
            except QueryTooComplexError:
                # The first caller's own budget stopped its fetch: no answer for this one,
                # which fetches under its own budget.
                return await self._fetch_once(key, fetch, ttl, keep)
            return shared
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._fetch_across_processes(key, fetch, ttl, keep)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _fetch_across_processes(
        self, key: str, fetch: Callable[[], Awaitable[T]], ttl: float | None, keep: float
    ) -> T:
        token = await self._lock(key)
        if token is None:
            # Another process holds the lock: wait for its result, or for the lock to lapse.
            waited = await self._wait_for_other(key, keep)
            if waited is not None:
                self.stats.coalesced += 1
                found: T = waited.value
                return found
        try:
            value = await fetch()
            await self.set(key, value, ttl, keep)
            return value
        finally:
            if token:
                await self._unlock(key, token)

    async def _lock(self, key: str) -> str | None:
        """A cross-process lock on ``key``: a token, "" without Redis, None if held elsewhere."""
        if not self.redis_available:
            return ""
        token = secrets.token_hex(8)
        try:
            taken = await self._redis_call(
                lambda redis: redis.add(f"lock:{key}", token, ttl=self.lock_timeout)
            )
        except ValueError:
            return None  # aiocache: the key exists
        if taken is None:
            return ""  # Redis failed: fetch locally
        return token

    async def _unlock(self, key: str, token: str) -> None:
        assert self._redis is not None
        with contextlib.suppress(Exception):
            if await self._redis.get(f"lock:{key}") == token:
                await self._redis.delete(f"lock:{key}")

    async def _wait_for_other(self, key: str, keep: float) -> Entry | None:
        started = time.time()
        deadline = time.monotonic() + self.lock_timeout
        while time.monotonic() < deadline and self.redis_available:
            await asyncio.sleep(0.05)
            entry = await self._l2_get(key)
            if entry is not None and entry.stored >= started - 0.001 and entry.fresh(time.time()):
                self._l1_set(key, entry, keep)
                return entry
            held = await self._redis_call(lambda redis: redis.exists(f"lock:{key}"))
            if held is None:
                return None
            if not held:
                entry = await self._l2_get(key)
                return entry if entry is not None and entry.fresh(time.time()) else None
        return None

    # -- housekeeping -----------------------------------------------------------------

    async def clear(self) -> None:
        """Forget everything in this process (L2 entries expire on their own)."""
        self._l1.clear()
        self._meta.clear()
        for order in self._order.values():
            order.clear()
        self.bytes = dict.fromkeys(TIERS, 0)

    async def close(self) -> None:
        """Stop background refreshes and release Redis."""
        for task in list(self._refreshing):
            task.cancel()
        if self._owns_redis and self.redis is not None:
            await self.redis.aclose()


def _redis_cache(owner: RedisOwner, namespace: str) -> RedisCache:
    from urllib.parse import urlsplit

    parts = urlsplit(owner.url)
    cache = RedisCache(
        serializer=PickleSerializer(),
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        password=parts.password,
        namespace=namespace,
        timeout=1,
    )
    # The owner's client (its pool and timeouts) instead of a pool of aiocache's own.
    cache.client = owner.client
    return cache
