"""Per-key and per-IP rate limits: token buckets, in memory or in Redis.

Each identity (an API key or token subject; the client address without one) has a bucket of
``burst`` requests (by default one minute's worth) that refills at its rate per minute: a
client may send a burst at once (page through a whole entity, say), then goes on at the rate.
A refused request is answered with the seconds until the bucket holds one again.

With Redis (the app's :class:`gateway.sources.redis.RedisOwner`), several gateway processes
share the counters. If Redis cannot be reached the limiter counts in memory (per process)
under the owner's policy (a warning, a pause of a few seconds, then Redis again), so a Redis
outage never stops the gateway from answering.

Every operation counts: an HTTP request, and each ``subscribe`` message on a WebSocket
(answered, over the limit, with a graphql-transport-ws ``error`` for that operation; a
connection that keeps sending far beyond the limit is closed with code 4429).

Also here, the limits on what reaches the application at all: the client address behind
configured trusted proxies only (:class:`TrustedProxyMiddleware`) and the size and number
of request headers (:class:`HeaderLimitMiddleware`). See ``docs/limits-operations.md``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.auth import send_error
from gateway.sources.redis import RedisOwner, RedisUnavailable

__all__ = [
    "HeaderLimitMiddleware",
    "RateLimitMiddleware",
    "RateLimitSettings",
    "RateLimiter",
    "TrustedProxies",
    "TrustedProxyMiddleware",
]

log = logging.getLogger("gateway.http.ratelimit")

WINDOW = 60

# Buckets kept in memory before the full ones are forgotten.
_MAX_BUCKETS = 100_000

# Take one token from a bucket (KEYS[1]; ARGV: capacity, rate per second, now, lifetime):
# {1, tokens} when taken, {0, tokens} when not (tokens as text: Lua numbers lose fractions).
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {taken, tostring(tokens)}
"""


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Requests per minute: per API key / token subject, and per IP for anonymous callers."""

    per_key: int = 1200
    per_ip: int = 300
    redis_url: str | None = None
    # Requests an identity may send at once (its bucket); None or less: its rate per minute.
    burst: int | None = None
    # Operations refused on one WebSocket before the connection is closed (4429).
    websocket_flood: int = 20


class RateLimiter:
    """Counts requests per identity and window."""

    def __init__(
        self,
        settings: RateLimitSettings,
        clock: Callable[[], float] = time.time,
        redis: RedisOwner | None = None,
    ) -> None:
        """``redis``: the app's Redis owner (closed by the app); without it, a ``redis_url``
        in the settings makes one that :meth:`aclose` closes.
        """
        self.settings = settings
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, when)
        self._owns_redis = redis is None and bool(settings.redis_url)
        self._redis = redis
        if redis is None and settings.redis_url:
            self._redis = RedisOwner(settings.redis_url)

    def identity(self, scope: Scope) -> tuple[str, int]:
        """Whose bucket a request counts in, and that identity's rate per minute."""
        caller = scope.get("caller")
        if caller is not None and caller.method != "anonymous":
            return f"key:{caller.method}:{caller.name}", self.settings.per_key
        client = scope.get("client")
        return f"ip:{client[0] if client else '?'}", self.settings.per_ip

    async def admit(self, scope: Scope, send: Send) -> bool:
        """Count an HTTP request: True if it may go on, else False once answered 429."""
        identity, limit = self.identity(scope)
        retry = await self.hit(identity, limit)
        if retry is None:
            return True
        error = _limited(limit, retry, self.capacity(limit))
        await send_error(send, 429, error, [(b"retry-after", str(retry).encode())])
        return False

    def capacity(self, limit: int) -> int:
        """The bucket of an identity whose rate is ``limit`` a minute."""
        return max(limit, self.settings.burst or 0)

    async def hit(self, identity: str, limit: int) -> int | None:
        """Count one request; None if allowed, else the seconds until one is allowed again."""
        now = self.clock()
        capacity = self.capacity(limit)
        rate = max(limit, 0) / WINDOW  # tokens per second
        tokens = await self._take(identity, capacity, rate, now)
        if tokens is None:
            return None
        if rate <= 0:
            return WINDOW
        return max(1, math.ceil((1 - tokens) / rate))

    async def _take(self, identity: str, capacity: int, rate: float, now: float) -> float | None:
        """Take a token from ``identity``'s bucket: None if taken, else the tokens left."""
        if self._redis is not None and self._redis.available:
            key = f"dls:bucket:{identity}"
            client = self._redis.client
            lifetime = math.ceil(capacity / rate) + WINDOW if rate > 0 else WINDOW * 2

            async def take() -> Any:
                return await client.eval(_TAKE, 1, key, capacity, repr(rate), repr(now), lifetime)

            with contextlib.suppress(RedisUnavailable):  # degrade, do not fail requests
                taken, left = await self._redis.run("rate limits", take)
                return None if int(taken) else float(left)
        if len(self._buckets) > _MAX_BUCKETS:
            self._sweep(now)
        tokens, at = self._buckets.get(identity, (float(capacity), now))
        tokens = min(float(capacity), tokens + max(0.0, now - at) * rate)
        if tokens >= 1:
            self._buckets[identity] = (tokens - 1, now)
            return None
        self._buckets[identity] = (tokens, now)
        return tokens

    def _sweep(self, now: float) -> None:
        # Too many identities: forget those untouched for a window (one forgotten starts
        # full again: more lenient, never stricter).
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < WINDOW}

    async def aclose(self) -> None:
        if self._owns_redis and self._redis is not None:
            await self._redis.aclose()


class RateLimitMiddleware:
    """Answers 429 with ``Retry-After`` once an identity exceeds its limit."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
            return
        if await self.limiter.admit(scope, send):
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count each ``subscribe`` message as a request; refuse, then close, beyond the limit."""
        identity, limit = self.limiter.identity(scope)
        flood = self.limiter.settings.websocket_flood
        refused = 0
        closed = False

        async def counted_receive() -> Message:
            nonlocal refused, closed
            while True:
                if closed:
                    return {"type": "websocket.disconnect", "code": 4429}
                message = await receive()
                operation = _operation_id(message)
                if operation is None:
                    return message
                retry = await self.limiter.hit(identity, limit)
                if retry is None:
                    return message
                refused += 1
                if refused > flood:
                    closed = True
                    log.info("closing a WebSocket of %s: rate limit flood", identity)
                    await send(
                        {"type": "websocket.close", "code": 4429, "reason": "rate limit exceeded"}
                    )
                    continue
                limited = _limited(limit, retry, self.limiter.capacity(limit))
                error = {"id": operation, "type": "error", "payload": [limited]}
                await send({"type": "websocket.send", "text": json.dumps(error)})

        async def guarded_send(message: Message) -> None:
            if not closed:  # nothing more once the connection was closed here
                await send(message)

        await self.app(scope, counted_receive, guarded_send)


def _limited(limit: int, retry: int, burst: int | None = None) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": "RATE_LIMITED", "retryAfter": retry, "limit": limit}
    message = f"rate limit of {limit} requests per minute exceeded"
    if burst is not None and burst > limit:
        message += f" (after a burst of {burst})"
        extensions["burst"] = burst
    return {"message": message, "extensions": extensions}


def _operation_id(message: Message) -> str | None:
    """The id of a graphql-transport-ws ``subscribe`` message, else None."""
    if message["type"] != "websocket.receive":
        return None
    text = message.get("text")
    if not isinstance(text, str) or "subscribe" not in text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("type") != "subscribe":
        return None
    ident = document.get("id")
    return ident if isinstance(ident, str) else None


# -- who the client is -------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` / ``Forwarded`` headers are believed."""

    def __init__(self, proxies: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip()
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def rewrite(self, scope: Scope) -> None:
        """Set ``scope["client"]`` to the address a trusted proxy forwarded for, if any."""
        client = scope.get("client")
        if client and self.networks:
            address = self.client(str(client[0]), scope["headers"])
            if address != client[0]:
                scope["client"] = (address, 0)

    def client(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client's address: the nearest hop before the trusted proxies."""
        if not self.trusted(peer):
            return peer
        forwarded: list[str] = []
        x_forwarded: list[str] = []
        for name, value in headers:
            if name == b"forwarded":
                forwarded.extend(_forwarded_for(value.decode("latin-1")))
            elif name == b"x-forwarded-for":
                x_forwarded.extend(v.strip() for v in value.decode("latin-1").split(","))
        hops = forwarded or x_forwarded
        client = peer
        for hop in reversed(hops):
            address = _bare_address(hop)
            if address is None:
                break  # garbage: trust nothing further out
            client = address
            if not self.trusted(address):
                break
        return client


def _forwarded_for(value: str) -> list[str]:
    out = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, item = pair.strip().partition("=")
            if name.strip().lower() == "for":
                out.append(item.strip().strip('"'))
    return out


def _bare_address(hop: str) -> str | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80`` or ``::1`` → the address (None if not one)."""
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


class TrustedProxyMiddleware:
    """Sets ``scope["client"]`` to the address a trusted proxy forwarded for.

    Without trusted proxies (the default) the headers are ignored: the client is the
    direct peer. The server must not rewrite the client itself (uvicorn runs with
    ``proxy_headers`` off, see :mod:`gateway.cli`).
    """

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.proxies.rewrite(scope)
        await self.app(scope, receive, send)


# -- request headers ---------------------------------------------------------------------


class HeaderLimitMiddleware:
    """Answers 431 when a request's headers exceed ``max_bytes`` in total or ``max_count``.

    Sizes count every name and value. WebSocket upgrades are refused the same way (an
    HTTP 431 where the server can send one before the handshake, else a close).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_count: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if await self.admit(scope, send):
            await self.app(scope, receive, send)

    async def admit(self, scope: Scope, send: Send) -> bool:
        """True if the headers are within the limits, else False once refused."""
        headers = scope["headers"]
        problem = None
        if len(headers) > self.max_count:
            problem = f"too many request headers (more than {self.max_count})"
        elif sum(map(len, itertools.chain.from_iterable(headers))) > self.max_bytes:
            problem = f"request headers larger than {self.max_bytes} bytes"
        if problem is None:
            return True
        log.info("refused request from %s: %s", _peer(scope), problem)
        body = json.dumps(
            {"errors": [{"message": problem, "extensions": {"code": "HEADERS_TOO_LARGE"}}]}
        ).encode()
        start = {
            "status": 431,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
        if scope["type"] == "http":
            await send({"type": "http.response.start", **start})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return False


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"
