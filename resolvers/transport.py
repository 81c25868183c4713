"""The one HTTP transport of the HTTP kinds (``odata``, ``volby-xml``, ``wahldaten-csv``).

A :class:`Transport` owns one ``httpx`` client per upstream and makes every GET of its source:

- **options**: ``timeout`` and ``connectTimeout`` (seconds) are the guard's
  (:class:`gateway.sources.guard.GuardSettings`, the ``Source.json`` options of those names);
  the connection pool (``max_connections``, ``max_keepalive``), the headers every request
  carries and whether redirects are followed are the kind's, as each kind had them;
- **retries**: each request runs through the source's guard (``Source.guard``), which retries
  what is worth retrying, keeps the circuit breaker and spends the request's upstream budget;
- **concurrency** is limited once, by that guard (``concurrency``, 4 in flight per register by
  default). The adapters no longer hold semaphores of their own: ``volby-xml`` limited its
  documents a second time with the same option, and ``wahldaten-csv`` with a default of 8
  that the guard's 4 always undercut;
- **errors** are translated here and nowhere else (:func:`translate`, :func:`classify`):
  httpx failures and HTTP statuses become the :class:`gateway.model.errors.UpstreamError`
  family. A body cut off in flight is unavailable (retried) unless the kind says its data is
  then invalid (``cut_off_invalid``: ``wahldaten-csv``, whose files are read whole);
- **observability**: every request carries ``X-Request-ID``, the id of the gateway request that
  caused it (:data:`gateway.sources.metrics.REQUEST_ID`), and every attempt is recorded in the
  metrics (:meth:`gateway.sources.port.Source.record`: requests by outcome, bytes, latency per
  register) and counted in ``Source.requests``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import httpx

from gateway.model.errors import (
    UpstreamError,
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.sources.metrics import REQUEST_ID
from gateway.sources.port import Source

__all__ = ["Reply", "Transport", "classify", "outcome_of", "translate"]

log = logging.getLogger("resolvers.transport")


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream's answer: status, headers and the whole body."""

    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        charset = _charset(self.headers.get("content-type", "")) or "utf-8"
        return self.content.decode(charset, errors="replace")


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return None


def classify(label: str, status: int) -> UpstreamError | None:
    """The error an HTTP status stands for, or None for an answer to use (2xx, 3xx).

    404 and 429/5xx are unavailable (404 is not retried by the guard), any other 4xx is
    invalid: the upstream refused what we sent and will refuse it again.
    """
    if status < 400:
        return None
    if status == 404:
        return UpstreamUnavailableError(
            f"{label}: the upstream has no such resource (404)", status=404
        )
    if status >= 500 or status == 429:
        return UpstreamUnavailableError(
            f"{label}: the upstream answered HTTP {status}", status=status
        )
    return UpstreamInvalidError(
        f"{label}: the upstream refused the request (HTTP {status})", status=status
    )


def translate(label: str, exc: httpx.HTTPError, *, cut_off_invalid: bool = False) -> UpstreamError:
    """The gateway error for an httpx failure while talking to ``label``."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"{label}: the upstream did not answer in time")
    if isinstance(exc, httpx.RemoteProtocolError) and "complete message body" in str(exc):
        cls = UpstreamInvalidError if cut_off_invalid else UpstreamUnavailableError
        return cls(f"{label}: the upstream's answer was cut off ({exc})")
    return UpstreamUnavailableError(
        f"{label}: the upstream connection failed ({type(exc).__name__})"
    )


def outcome_of(error: UpstreamError | None) -> str:
    """The ``outcome`` label of an attempt: ok, not_found, unavailable, timeout or invalid."""
    if error is None:
        return "ok"
    if error.extensions.get("status") == 404:
        return "not_found"
    return error.code.removeprefix("UPSTREAM_").lower()


class Transport:
    """The HTTP client of one source: one pool, one translation, metrics and request ids."""

    def __init__(
        self,
        source: Source,
        *,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        max_connections: int | None = 100,
        max_keepalive: int | None = 20,
        cut_off_invalid: bool = False,
    ) -> None:
        self.source = source
        self.label = label or source.register.name
        self.headers = dict(headers or {})
        self.follow_redirects = follow_redirects
        self.limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive
        )
        self.cut_off_invalid = cut_off_invalid
        guard = source.guard_settings
        self.timeout = httpx.Timeout(
            guard.timeout, connect=min(guard.timeout, guard.connect_timeout)
        )
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The pool (opened on first use, so a source need not have been started)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                headers=self.headers,
                limits=self.limits,
                follow_redirects=self.follow_redirects,
            )
        return self._client

    async def start(self) -> None:
        """Open the pool."""
        _ = self.client

    async def aclose(self) -> None:
        """Close the pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        passing: Collection[int] = (),
        max_bytes: int | None = None,
        guarded: bool = True,
    ) -> Reply:
        """GET ``url`` through the guard; statuses in ``passing`` are answers, not errors."""

        async def attempt() -> Reply:
            return await self.attempt(
                url, params=params, headers=headers, passing=passing, max_bytes=max_bytes
            )

        if not guarded:
            return await attempt()
        return await self.source.guard.run(attempt)

    async def attempt(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        passing: Collection[int] = (),
        max_bytes: int | None = None,
    ) -> Reply:
        """One GET, without the guard: recorded, translated, with the request id."""
        sent = {**(headers or {}), "X-Request-ID": REQUEST_ID.get()}
        self.source.requests += 1
        started = time.perf_counter()
        size = 0
        error: UpstreamError | None = None
        try:
            with self._translated(url):
                async with self.client.stream("GET", url, params=params, headers=sent) as answer:
                    chunks: list[bytes] = []
                    async for chunk in answer.aiter_bytes():
                        size += len(chunk)
                        if max_bytes is not None and size > max_bytes:
                            raise UpstreamInvalidError(
                                f"{self.label}: the upstream's answer is larger than"
                                f" {max_bytes} bytes"
                            )
                        chunks.append(chunk)
            if answer.status_code not in passing:
                error = classify(self.label, answer.status_code)
                if error is not None:
                    raise error
            return Reply(answer.status_code, answer.headers, b"".join(chunks))
        except UpstreamError as exc:
            error = exc
            raise
        finally:
            self.source.record(time.perf_counter() - started, size, outcome_of(error))

    @contextlib.contextmanager
    def _translated(self, url: str) -> Iterator[None]:
        try:
            yield
        except httpx.HTTPError as exc:
            log.warning(
                "%s upstream failure on %s: %s",
                self.label,
                url,
                exc,
                extra={"fields": {"register": self.source.register.name}},
            )
            raise translate(self.label, exc, cut_off_invalid=self.cut_off_invalid) from exc
