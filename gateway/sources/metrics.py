"""Operations, source side: the request id every layer logs and passes upstream, and the
Prometheus metrics (HTTP requests, upstream calls, bytes and latency, cache, circuits)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.sources.cache import TIERS

if TYPE_CHECKING:
    from gateway.sources.cache import Cache
    from gateway.sources.guard import Guard

__all__ = ["REQUEST_ID", "Metrics"]

REQUEST_ID: ContextVar[str] = ContextVar("dls_request_id", default="-")

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _LiveCollector(Collector):
    """Values read at scrape time from the cache and the upstreams' guards."""

    def __init__(self, cache: Cache | None, guards: Mapping[str, Guard]) -> None:
        self.cache = cache
        self.guards = guards

    def collect(self) -> Iterator[Any]:
        if self.cache is not None:
            stats = self.cache.stats
            hits = CounterMetricFamily("dls_cache_hits", "Cache hits by tier", labels=["tier"])
            hits.add_metric(["l1"], stats.hits - stats.l2_hits)
            hits.add_metric(["l2"], stats.l2_hits)
            yield hits
            misses = CounterMetricFamily("dls_cache_misses", "Cache misses (fetches)")
            misses.add_metric([], stats.misses)
            yield misses
            stale = CounterMetricFamily("dls_cache_stale_served", "Stale values served")
            stale.add_metric([], stats.stale_served)
            yield stale
            coalesced = CounterMetricFamily("dls_cache_coalesced", "Fetches shared with others")
            coalesced.add_metric([], stats.coalesced)
            yield coalesced
            redis = CounterMetricFamily("dls_cache_redis_errors", "Redis failures")
            redis.add_metric([], stats.redis_errors)
            yield redis
            self.cache.sweep()
            size = GaugeMetricFamily(
                "dls_cache_bytes", "In-process cache memory (estimated bytes)", labels=["tier"]
            )
            budget = GaugeMetricFamily(
                "dls_cache_max_bytes", "In-process cache budget (bytes)", labels=["tier"]
            )
            entries = GaugeMetricFamily(
                "dls_cache_entries", "In-process cache entries", labels=["tier"]
            )
            for tier in TIERS:
                size.add_metric([tier], self.cache.bytes[tier])
                budget.add_metric([tier], self.cache.max_bytes[tier])
                entries.add_metric([tier], self.cache.entries(tier))
            yield size
            yield budget
            yield entries
        states = {"closed": 0, "half-open": 1, "open": 2}
        circuit = GaugeMetricFamily(
            "dls_upstream_circuit_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
            labels=["register"],
        )
        attempts = CounterMetricFamily(
            "dls_upstream_requests", "Upstream requests (attempts)", labels=["register"]
        )
        failures = CounterMetricFamily(
            "dls_upstream_errors", "Failed upstream requests", labels=["register"]
        )
        for name, guard in sorted(self.guards.items()):
            circuit.add_metric([name], states[guard.breaker.state])
            attempts.add_metric([name], guard.attempts)
            failures.add_metric([name], guard.failures)
        yield circuit
        yield attempts
        yield failures


class Metrics:
    """The gateway's Prometheus metrics (a registry of its own per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dls_http_requests",
            "HTTP requests",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dls_http_request_seconds",
            "HTTP request latency",
            ["path"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # Per attempt, as the adapters see it (the guard's own count is dls_upstream_requests).
        self.upstream_requests = Counter(
            "dls_upstream_calls",
            "Upstream requests (attempts) by outcome: ok, not_found, unavailable, timeout, invalid",
            ["register", "outcome"],
            registry=self.registry,
        )
        self.upstream_bytes = Counter(
            "dls_upstream_bytes",
            "Bytes received from upstreams",
            ["register"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "dls_upstream_request_seconds",
            "Upstream request latency",
            ["register"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "dls_signature_failures",
            "Upstream files rejected because their signature did not verify",
            ["register"],
            registry=self.registry,
        )
        self.denied = Counter(
            "dls_denied_accesses",
            "Accesses denied by security level",
            ["required_level", "caller_level"],
            registry=self.registry,
        )

    def watch(self, cache: Cache | None, guards: Mapping[str, Guard]) -> None:
        """Read live values from the cache and the upstreams' guards (by register) at each
        scrape."""
        self.registry.register(_LiveCollector(cache, guards))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
