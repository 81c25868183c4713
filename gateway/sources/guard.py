"""Protecting upstreams and ourselves: timeouts, retries, a circuit breaker, politeness.

Every upstream call of an adapter goes through its register's :class:`Guard`:

- a concurrency limit and a request rate (politeness towards public services),
- retries with exponential backoff and full jitter for idempotent requests that failed in a
  way worth retrying (unavailable, timeout) — never for invalid data,
- a total time budget across the attempts,
- a circuit breaker that opens after consecutive failures, answers at once while open, and
  lets one probe through after ``breaker_reset`` seconds (half-open),
- the request's budget of upstream calls (:mod:`gateway.sources.upstream_budget`): each call is
  counted once (however many attempts it takes), and refused before it is made if the
  budget is spent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.model.errors import UpstreamTimeoutError, UpstreamUnavailableError
from gateway.sources import upstream_budget

__all__ = ["CircuitBreaker", "Guard", "GuardSettings"]

log = logging.getLogger("gateway.sources.guard")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Per-register protection settings (``Source.json`` options of the same names)."""

    timeout: float = 30.0
    connect_timeout: float = 10.0
    total_timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.2
    max_backoff: float = 5.0
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    concurrency: int = 4
    rate: float = 0.0  # requests per second; 0 = unlimited
    stale_if_error: float = 0.0
    stale_while_revalidate: float = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GuardSettings:
        names = {
            "timeout": "timeout",
            "connect_timeout": "connectTimeout",
            "total_timeout": "totalTimeout",
            "retries": "retries",
            "backoff": "backoff",
            "max_backoff": "maxBackoff",
            "breaker_failures": "breakerFailures",
            "breaker_reset": "breakerReset",
            "concurrency": "concurrency",
            "rate": "rate",
            "stale_if_error": "staleIfError",
            "stale_while_revalidate": "staleWhileRevalidate",
        }
        values: dict[str, Any] = {}
        for attribute, option in names.items():
            if option in options:
                kind = int if attribute in ("retries", "breaker_failures", "concurrency") else float
                values[attribute] = kind(options[option])
        return cls(**values)


class CircuitBreaker:
    """closed → (failures) → open → (reset time) → half-open → (probe) → closed | open."""

    def __init__(self, name: str, failures: int, reset: float) -> None:
        self.name = name
        self.threshold = failures
        self.reset = reset
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at >= self.reset:
            return "half-open"
        return "open"

    def before(self) -> None:
        state = self.state
        if state == "open" or (state == "half-open" and self._probing):
            raise UpstreamUnavailableError(
                f"{self.name}: the upstream is failing; not calling it for a while (circuit open)",
                circuit="open",
            )
        if state == "half-open":
            self._probing = True

    def success(self) -> None:
        if self.opened_at is not None:
            log.info("%s: upstream recovered; circuit closed", self.name)
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        probing, self._probing = self._probing, False
        if probing or (self.opened_at is None and self.failures >= self.threshold):
            if self.opened_at is None or probing:
                log.warning("%s: circuit open after %d failures", self.name, self.failures)
            self.opened_at = time.monotonic()


class _Rate:
    """At most ``rate`` starts per second (a simple spacing of starts)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_start = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class Guard:
    """Runs upstream calls of one register under its protection settings."""

    def __init__(self, name: str, settings: GuardSettings) -> None:
        self.name = name
        self.settings = settings
        self.breaker = CircuitBreaker(name, settings.breaker_failures, settings.breaker_reset)
        self._slots = asyncio.Semaphore(max(1, settings.concurrency))
        self._rate = _Rate(settings.rate)
        self.attempts = 0
        self.failures = 0

    async def run(self, call: Callable[[], Awaitable[T]], *, idempotent: bool = True) -> T:
        """Call the upstream with retries, inside the time budget and the breaker."""
        # Counted (or refused) before anything else: a refused call never reaches the
        # upstream and tells the breaker nothing about it.
        upstream_budget.draw(self.name)
        self.breaker.before()
        try:
            async with asyncio.timeout(self.settings.total_timeout):
                return await self._attempts(call, idempotent)
        except TimeoutError:
            self.breaker.failure()
            raise UpstreamTimeoutError(
                f"{self.name}: no answer within {self.settings.total_timeout:g} s"
            ) from None

    async def _attempts(self, call: Callable[[], Awaitable[T]], idempotent: bool) -> T:
        attempt = 0
        while True:
            attempt += 1
            async with self._slots:
                await self._rate.wait()
                self.attempts += 1
                try:
                    result = await call()
                except (UpstreamUnavailableError, UpstreamTimeoutError) as exc:
                    self.failures += 1
                    self.breaker.failure()
                    if (
                        not idempotent
                        or attempt > self.settings.retries
                        or exc.extensions.get("status") in (404,)
                    ):
                        raise
                    if self.breaker.state == "open":
                        raise
                    log.info(
                        "%s: attempt %d failed (%s); retrying", self.name, attempt, exc.message
                    )
                else:
                    self.breaker.success()
                    return result
            ceiling = min(self.settings.max_backoff, self.settings.backoff * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(0, ceiling))
