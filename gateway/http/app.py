"""The HTTP application: GraphQL endpoints per register version, health, schema downloads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from gateway.dls.descriptors import Report, load_registers
from gateway.dls.report import External
from gateway.events import bus as events_bus
from gateway.events.recorder import Recorder
from gateway.exports import routes as exports
from gateway.exports.catalog import Served
from gateway.graphql.execute import Runtime
from gateway.graphql.response_cache import ResponseCache
from gateway.graphql.schema import GatewaySchema, SchemaSpec, build_schema
from gateway.history.store import HistoryStore
from gateway.http.auth import Authenticator
from gateway.http.config import LOCALHOST_ORIGINS, Settings
from gateway.http.edge import Edge
from gateway.http.protocol import CredentialsHandler, error_response
from gateway.http.ratelimit import RateLimiter, TrustedProxies
from gateway.http.view import GatewayView, view_routes
from gateway.model.datamodel import Register
from gateway.model.errors import DescriptorError
from gateway.sources import kinds
from gateway.sources.cache import Cache
from gateway.sources.metrics import Metrics
from gateway.sources.port import Services, Source
from gateway.sources.redis import RedisOwner
from gateway.sources.unconfigured import Unconfigured

__all__ = ["Gateway", "create_app"]

log = logging.getLogger("gateway.http.app")


@dataclass
class Gateway:
    """The loaded registers, their sources, and the schemas served (built on first use)."""

    settings: Settings
    report: Report
    runtime: Runtime
    sources: dict[str, Source]
    history: HistoryStore | None = None
    recorder: Recorder | None = None
    exports: Any = None  # the export routes' handlers (gateway/exports/routes.py Exports)
    views: dict[tuple[str, int | None], GatewayView] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def services_cache(self) -> Cache:
        assert self.runtime.cache is not None
        return self.runtime.cache

    @property
    def registers(self) -> dict[str, Register]:
        return {r.name: r for r in self.report.registers}

    def endpoints(self) -> dict[str, SchemaSpec]:
        """Path → what it serves: ``/graphql`` and ``/{REG}/v{N}`` per external version (each
        also an Apollo Federation 2 subgraph; ``/graphql`` is not one)."""
        out = {"/graphql": SchemaSpec(self.report.registers)}
        for register in self.report.registers:
            externals = self.report.versions.get(register.name) or [
                External(v, register, v) for v in sorted(register.relation_versions, key=int)
            ]
            for external in externals:
                out[f"/{register.name}/v{external.number}"] = SchemaSpec(
                    [external.register], {register.name: external.relation_version}, federated=True
                )
        return out

    def schema_for(self, path: str, level: int | None = None) -> GatewaySchema:
        """The schema served at ``path`` (building it if needed)."""
        return self.view_for(path, level).schema  # type: ignore[return-value]

    def view_for(self, path: str, level: int | None = None) -> GatewayView:
        """The view for ``path``; per caller level when per-level schemas are on."""
        key = level if self.settings.per_level_schema else None
        view = self.views.get((path, key))
        if view is None:
            spec = self.endpoints()[path]
            spec.max_level = key
            responses = None
            if self.settings.response_cache and self.runtime.cache is not None:
                ttls = {
                    name: float(r.source.get("responseTtl", r.source.get("ttl", 0)))  # type: ignore[arg-type]
                    for name, r in self.registers.items()
                }
                # Only sources that learn deletions change their epoch.
                sources = [s for s in self.sources.values() if s.records_rows]
                responses = ResponseCache(
                    self.runtime.cache,
                    path,
                    ttls,
                    self.settings.response_cache_max_ttl,
                    # Deletions learnt upstream: answers cached before them are not served.
                    version=((lambda: str(sum(s.data_epoch for s in sources))) if sources else str),
                )
            schema = build_schema(
                spec,
                self.settings.limits,
                self.settings.introspection,
                responses,
                fast_path=self.settings.fast_path,
            )
            view = self.views[(path, key)] = _View(schema, self.runtime, self.settings)
        return view


class _View(GatewayView):
    """The view with the HTTP stage's WebSocket rules: credentials in ``connection_init``,
    and pages on the origins CORS allows may open a WebSocket too."""

    graphql_transport_ws_handler_class = CredentialsHandler

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        return self.settings.http.allows_origin(origin)


class _Dispatch:
    """The ASGI endpoint behind every GraphQL path: picks the view for the path."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.paths = set(gateway.endpoints())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].rstrip("/") or "/"
        if path not in self.paths:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4404})
                return
            await _not_found(self.gateway, scope["path"])(scope, receive, send)
            return
        caller = scope.get("caller")
        level = caller.level if caller is not None else None
        await self.gateway.view_for(path, level)(scope, receive, send)


def load_gateway(settings: Settings) -> Gateway:
    """Load and validate the registers, and create (not start) their sources."""
    report = load_registers(
        settings.registers_dir, overrides=settings.sources, include=settings.include
    )
    for warning in report.warnings:
        log.warning("%s", warning)
    if not report.ok:
        raise DescriptorError("the registers are invalid:\n" + report.render())
    metrics = Metrics()
    # One Redis owner for the cache, the rate limits and the events (closed in the lifespan).
    redis = RedisOwner(settings.cache_url) if settings.cache_url else None
    cache = Cache(
        settings.cache_url,
        redis=redis,
        version=_model_version(
            [*report.registers, *(e.register for es in report.versions.values() for e in es)]
        ),
        max_bytes={
            "upstream": settings.upstream_cache_max_bytes,
            "response": settings.response_cache_max_bytes,
            "apq": settings.apq_cache_max_bytes,
        },
        sweep_interval=settings.cache_sweep_interval,
    )
    history = None
    if settings.history:
        history = HistoryStore(
            settings.history_path,
            retention_days=settings.history_retention_days,
            url=settings.history_url,
        )
    services = Services(cache=cache, metrics=metrics, history=history)
    sources: dict[str, Source] = {}
    served = [*report.registers]
    served += [e.register for es in report.versions.values() for e in es if e.register.variant]
    for register in served:
        if register.source_key in sources:
            continue
        if "kind" not in register.source:
            sources[register.source_key] = Unconfigured(register, register.source, services)
            continue
        kind = str(register.source["kind"])
        try:
            cls = kinds.kind(kind).source
        except KeyError as exc:
            raise DescriptorError(f"{register.name}: unknown source kind {kind!r}") from exc
        sources[register.source_key] = cls(register, register.source, services)
    runtime = Runtime(
        registers={r.name: r for r in report.registers},
        sources=sources,
        default_first=settings.default_first,
        max_first=settings.max_first,
        cache=services.cache,
        metrics=metrics,
    )
    metrics.watch(cache, {name: source.guard for name, source in sources.items()})
    unknown = sorted(spec for spec in settings.history_record if not _recordable(spec, sources))
    if unknown:
        raise DescriptorError(
            f"history.record names registers or entities that are not loaded: "
            f"{', '.join(unknown)} (write REG or REG.Entity)"
        )
    unscheduled = sorted(set(settings.exports.scheduled) - set(sources))
    if unscheduled:
        raise DescriptorError(
            f"exports.scheduled names registers that are not loaded: {', '.join(unscheduled)}"
        )
    gateway = Gateway(settings, report, runtime, sources, history)
    gateway.view_for("/graphql")  # the main schema is built up front: fail fast
    return gateway


def _recordable(spec: str, sources: dict[str, Source]) -> bool:
    """Whether a ``[history] record`` entry (``REG`` or ``REG.Entity``) names what is loaded."""
    register, _, entity = spec.partition(".")
    source = sources.get(register)
    return source is not None and (not entity or entity in source.register.datamodel.entities)


def create_app(settings: Settings) -> Starlette:
    """The ASGI app. Registers load now (the app refuses to exist if they are invalid)."""
    gateway = load_gateway(settings)
    metrics = gateway.runtime.metrics
    assert metrics is not None

    redis = gateway.services_cache.redis
    limiter = None
    if settings.rate_limit:
        same = redis is not None and redis.url == settings.rate_limit.redis_url
        limiter = RateLimiter(settings.rate_limit, redis=redis if same else None)

    async def sweep_caches() -> None:
        # Expired entries go even when nothing is looked up or stored.
        while True:
            await asyncio.sleep(settings.cache_sweep_interval)
            gateway.services_cache.sweep()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        history = gateway.history
        if history is not None:
            await history.start()
            for source in gateway.sources.values():
                describer = source.describer()
                if describer is not None:
                    history.describe(source.register.name, describer)
        for source in gateway.sources.values():
            await source.start()
        if history is not None and settings.history_record:
            gateway.recorder = Recorder(
                gateway.runtime.sources, gateway.runtime.cache, history, settings.history_record
            )
            await gateway.recorder.start()
        if gateway.exports is not None:
            await gateway.exports.start()
        sweeper = asyncio.create_task(sweep_caches())
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            # Subscriptions first: their pollers use the sources.
            if gateway.recorder is not None:
                await gateway.recorder.aclose()
            if gateway.exports is not None:
                await gateway.exports.aclose()
            await events_bus.close_bus(gateway.runtime.sources)
            for source in gateway.sources.values():
                await source.aclose()
            if history is not None:
                await history.aclose()
            if limiter is not None:
                await limiter.aclose()
            if gateway.runtime.cache is not None:
                await gateway.runtime.cache.close()
            if redis is not None:
                await redis.aclose()

    graphql = _Dispatch(gateway)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    cache = gateway.services_cache

    async def readyz(request: Request) -> Response:
        upstreams: dict[str, dict[str, Any]] = {}
        for name, source in sorted(gateway.sources.items()):
            upstreams[name] = {
                "circuit": source.guard.breaker.state,
                "ready": await source.ready(),
            }
            if not source.kind:
                # Delivered without Source.json: nothing to wait for, so it does not make
                # the gateway unready (its queries say that no upstream is configured).
                upstreams[name]["configured"] = False
        ready = all(u["ready"] for u in upstreams.values() if u.get("configured", True))
        body = {
            "status": "ready" if ready else "degraded",
            "registers": sorted(gateway.registers),
            "upstreams": upstreams,
            "cache": {"redis": bool(cache.url), "redisAvailable": cache.redis_available},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def sdl(request: Request) -> Response:
        path = request.url.path.removesuffix("/schema") or "/graphql"
        if path not in gateway.endpoints():
            return _not_found(gateway, request.url.path)
        if not settings.introspection:
            return error_response(404, "The schema is not published here.", "NOT_FOUND")
        caller = request.scope.get("caller")
        level = caller.level if caller is not None else None
        return PlainTextResponse(gateway.schema_for(path, level).as_str() + "\n")

    handlers = exports.Exports(
        Served(
            registers=gateway.registers,
            runtime=gateway.runtime,
            limits=gateway.settings.limits,
            anonymous_level=gateway.settings.auth.anonymous_level,
            per_level_schema=gateway.settings.per_level_schema,
            introspection=gateway.settings.introspection,
            files=gateway.settings.exports,
            numbers={
                name: {e.relation_version: e.number for e in externals if not e.register.variant}
                for name, externals in gateway.report.versions.items()
            },
            externals={
                name: tuple(
                    (e.number, e.register.datamodel.version, e.relation_version) for e in externals
                )
                for name, externals in gateway.report.versions.items()
            },
            scheduled=gateway.settings.exports.scheduled,
        )
    )
    gateway.exports = handlers
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
        Route("/graphql/schema", sdl),
        Route("/{register}/v{version:int}/schema", sdl),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/{register}/v{version:int}", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        WebSocketRoute("/{register}/v{version:int}", graphql),
        *handlers.routes(),
        *view_routes(gateway.settings),
    ]
    cors = None
    if settings.http.cors:
        localhost = LOCALHOST_ORIGINS.pattern if settings.http.cors_localhost else None
        cors = {
            "allow_origins": list(settings.http.cors_origins),
            "allow_origin_regex": localhost,
            "allow_methods": ["GET", "POST", "OPTIONS"],
            "allow_headers": list(CORS_HEADERS),
            "expose_headers": [
                "etag",
                "retry-after",
                "x-request-id",
                "x-total-count",
                "content-disposition",
            ],
            "max_age": 600,
        }
    # One layer, in the order of its checks: oversized headers, CORS, who the client is
    # (behind trusted proxies only), request ids and logs, who is calling, then how often;
    # GraphQL requests then go straight to their endpoint (:mod:`gateway.http.edge`).
    middleware = [
        Middleware(
            Edge,
            metrics=metrics,
            authenticator=Authenticator(settings.auth),
            proxies=TrustedProxies(settings.trusted_proxies),
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            limiter=limiter,
            cors=cors,
            graphql=graphql,
            graphql_paths=graphql.paths,
        )
    ]

    async def unrouted(request: Request, exc: Exception) -> Response:
        # Starlette's own 404 and 405 (no route, or a route without that method), as JSON.
        status = getattr(exc, "status_code", 500)
        detail = str(getattr(exc, "detail", ""))
        if status == 404 and detail in ("", "Not Found"):
            return _not_found(gateway, request.url.path)
        if status == 404:
            return error_response(404, detail, "NOT_FOUND")
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405:
            allow = headers.get("allow") or headers.get("Allow") or "GET"
            message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
            return error_response(405, message, "METHOD_NOT_ALLOWED", headers={"allow": allow})
        return error_response(status, detail, "BAD_REQUEST", headers=headers)

    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: unrouted, 405: unrouted},
    )
    app.state.gateway = gateway
    return app


# Request headers a cross-origin page may send: GraphQL clients' (Apollo Client's included).
CORS_HEADERS = (
    "accept",
    "content-type",
    "authorization",
    "x-api-key",
    "if-none-match",
    "x-request-id",
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "graphql-client-name",
    "graphql-client-version",
)


def _not_found(gateway: Gateway, path: str) -> Response:
    """A 404 that lists what is served: the GraphQL endpoints and the other paths."""
    endpoints = sorted(gateway.endpoints())
    others = ["/catalog.json", "/healthz", "/readyz", "/metrics"]
    message = f"nothing is served at {path}; GraphQL endpoints: {', '.join(endpoints)}"
    body = {
        "errors": [
            {
                "message": message,
                "extensions": {"code": "NOT_FOUND", "endpoints": endpoints, "other": others},
            }
        ]
    }
    return JSONResponse(body, status_code=404, headers={"cache-control": "no-store"})


def _model_version(registers: list[Register]) -> str:
    """A short hash of every datamodel and relation set: cache keys carry it."""
    digest = hashlib.sha256()
    for register in sorted(registers, key=lambda r: r.source_key):
        digest.update(register.source_key.encode())
        for entity in register.datamodel.entities.values():
            digest.update(repr((entity.name, entity.key, entity.fields)).encode())
        for version, relations in sorted(register.relation_versions.items()):
            digest.update(repr((version, relations)).encode())
    return digest.hexdigest()[:12]
