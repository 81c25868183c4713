"""The one owner of a Redis connection, shared by the cache, the rate limits and the events.

A :class:`RedisOwner` holds the URL, one ``redis.asyncio`` client (one connection pool), and
the one reconnect policy every user of Redis follows:

- an operation that fails is tried once more at once, on a fresh connection from the pool (a
  pooled connection may have died with a Redis restart: the second try tells a dead connection
  from a dead server);
- if that fails too, Redis is *paused* for ``retry_after`` seconds (5): :attr:`available` is
  False, :meth:`run` refuses at once with :class:`RedisUnavailable`, and each user falls back
  to what it does alone (the cache on its in-process tier, the rate limits counting in memory,
  the events polling for this process's subscribers). A warning is logged once per outage;
- after the pause the next operation tries Redis again.

Socket and connect timeouts are one second: Redis is on the request path of the cache and the
rate limits. :meth:`aclose` closes the pool; whoever made the owner closes it (the app, in its
lifespan; a cache or a rate limiter given only a URL makes and closes its own).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["RETRY_AFTER", "RedisOwner", "RedisUnavailable"]

log = logging.getLogger("gateway.sources.redis")

T = TypeVar("T")

RETRY_AFTER = 5.0
TIMEOUT = 1.0


class RedisUnavailable(Exception):
    """Redis failed (or is paused after a failure): do without it for now."""


class RedisOwner:
    """One Redis URL, one client with its pool, one reconnect policy."""

    def __init__(
        self, url: str, *, timeout: float = TIMEOUT, retry_after: float = RETRY_AFTER
    ) -> None:
        import redis.asyncio as redis

        self.url = url
        self.retry_after = retry_after
        # Typed loosely: redis-py's command methods are typed sync-or-async.
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.down_until = 0.0
        self.errors = 0

    @property
    def available(self) -> bool:
        """Whether Redis is to be used now (not within a pause after a failure)."""
        return time.monotonic() >= self.down_until

    def failed(self, what: str, exc: BaseException) -> None:
        """Pause Redis after a failure of its user ``what`` (logged once per outage)."""
        self.errors += 1
        if self.available:
            log.warning(
                "Redis %s unavailable (%s); working without Redis for %g s",
                what,
                type(exc).__name__,
                self.retry_after,
            )
        self.down_until = time.monotonic() + self.retry_after

    async def run(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        passing: tuple[type[BaseException], ...] = (),
    ) -> T:
        """``call()`` under the policy, for the user ``what`` (``cache``, ``rate limits``,
        ``events``); exceptions of ``passing`` are the caller's answer.

        Raises :class:`RedisUnavailable` if Redis is paused, or fails twice.
        """
        if not self.available:
            raise RedisUnavailable(what)
        for attempt in (1, 2):
            try:
                return await call()
            except passing:
                raise
            except Exception as exc:  # any Redis failure
                if attempt == 2:
                    self.failed(what, exc)
                    raise RedisUnavailable(what) from exc
        raise AssertionError("unreachable")

    def pubsub(self) -> Any:
        """A pub/sub of the client (its own connection from the pool)."""
        return self.client.pubsub()

    async def aclose(self) -> None:
        """Close the client and its pool."""
        with contextlib.suppress(Exception):
            await self.client.aclose(close_connection_pool=True)
