"""Every request's way in, as one ASGI layer: what used to be a stack of middleware.

In order, as the layers ran: the size and number of request headers (431), CORS (when
configured; a preflight is answered there), the client address behind trusted proxies, the
request id, log line and metrics (:mod:`gateway.http.observe`), who is calling (401, 429
after many failures: :mod:`gateway.http.auth`), then how often (429:
:mod:`gateway.http.ratelimit`). An HTTP request to a GraphQL endpoint then goes straight to
it; anything else to the application's routes. One layer costs one call and one wrapped
``send`` per request instead of one of each per layer.

WebSockets pass the same header limits and client address, then the authentication and
rate-limit middleware as they are (credentials in ``connection_init``, limits per
``subscribe``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.auth import Authenticator, AuthMiddleware
from gateway.http.observe import Observer
from gateway.http.ratelimit import (
    HeaderLimitMiddleware,
    RateLimiter,
    RateLimitMiddleware,
    TrustedProxies,
)
from gateway.sources.metrics import Metrics

__all__ = ["Edge"]

_GRAPHQL_METHODS = frozenset({"GET", "POST"})


class Edge:
    """Header limits, CORS, client address, observation, authentication and rate limits."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        authenticator: Authenticator,
        proxies: TrustedProxies,
        max_header_bytes: int,
        max_headers: int,
        limiter: RateLimiter | None = None,
        cors: dict[str, Any] | None = None,
        graphql: ASGIApp | None = None,
        graphql_paths: Collection[str] = (),
    ) -> None:
        """``cors``: :class:`CORSMiddleware`'s options (None: no CORS); ``graphql``: the
        endpoint that answers HTTP requests to ``graphql_paths`` (else the routes do)."""
        self.app = app
        self.headers = HeaderLimitMiddleware(app, max_header_bytes, max_headers)
        self.proxies = proxies
        self.observer = Observer(metrics)
        inner: ASGIApp = RateLimitMiddleware(app, limiter) if limiter is not None else app
        self.auth = AuthMiddleware(inner, authenticator)
        self.limiter = limiter
        self.graphql = graphql
        self.graphql_paths = frozenset(graphql_paths)
        self.guarded: ASGIApp = self._guarded
        if cors is not None:
            self.guarded = CORSMiddleware(self._guarded, **cors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if await self.headers.admit(scope, send):
            await self.guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.proxies.rewrite(scope)
        if scope["type"] != "http":
            await self.auth(scope, receive, send)
            return
        observed = self.observer.begin(scope)
        send = observed.send(send)
        try:
            if await self.auth.authenticate(scope, send) is None:
                return
            limiter = self.limiter
            if (
                limiter is not None
                and scope.get("path") != "/healthz"
                and not await limiter.admit(scope, send)
            ):
                return
            if (
                self.graphql is not None
                and scope["path"] in self.graphql_paths
                and scope["method"] in _GRAPHQL_METHODS
                and not scope.get("root_path")
            ):
                await self.graphql(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.observer.end(scope, observed, observed.status)
