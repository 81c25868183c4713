"""Per-key and per-IP rate limits: fixed one-minute windows, in memory or in Redis.

With Redis, several gateway processes share the counters. If Redis cannot be reached the
limiter counts in memory (per process) and logs a warning, so a Redis outage never stops
the gateway from answering.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "RateLimitSettings", "RateLimiter"]

log = logging.getLogger("gateway.ratelimit")

WINDOW = 60


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Requests per minute: per API key / token subject, and per IP for anonymous callers."""

    per_key: int = 1200
    per_ip: int = 300
    redis_url: str | None = None


class RateLimiter:
    """Counts requests per identity and window."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._counts: dict[tuple[str, int], int] = {}
        self._redis: Any = None
        if settings.redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=0.5)

    async def hit(self, identity: str, limit: int) -> int | None:
        """Count one request; None if allowed, else the seconds until the window ends."""
        now = self.clock()
        window = int(now // WINDOW)
        retry = int((window + 1) * WINDOW - now) + 1
        count = await self._count(identity, window)
        return retry if count > limit else None

    async def _count(self, identity: str, window: int) -> int:
        if self._redis is not None:
            key = f"dls:rate:{identity}:{window}"
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW * 2)
                    count, _ = await pipe.execute()
                return int(count)
            except Exception as exc:  # any Redis failure: degrade, do not fail requests
                log.warning("rate limiting in memory: Redis unavailable (%s)", type(exc).__name__)
        for stale in [k for k in self._counts if k[1] < window]:
            del self._counts[stale]
        key_local = (identity, window)
        self._counts[key_local] = self._counts.get(key_local, 0) + 1
        return self._counts[key_local]

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class RateLimitMiddleware:
    """Answers 429 with ``Retry-After`` once an identity exceeds its limit."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
            return
        caller = scope.get("caller")
        settings = self.limiter.settings
        if caller is not None and caller.method != "anonymous":
            identity, limit = f"key:{caller.method}:{caller.name}", settings.per_key
        else:
            client = scope.get("client")
            identity, limit = f"ip:{client[0] if client else '?'}", settings.per_ip
        retry = await self.limiter.hit(identity, limit)
        if retry is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "errors": [
                    {
                        "message": f"rate limit of {limit} requests per minute exceeded",
                        "extensions": {"code": "RATE_LIMITED", "retryAfter": retry, "limit": limit},
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
