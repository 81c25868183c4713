"""The interface every upstream adapter implements (the kinds are in :mod:`gateway.sources.kinds`).

A :class:`Source` answers :class:`gateway.model.query.Query` objects for the entities of one
register. Relations are resolved by the gateway as ordinary queries
(``target_field in [values]``), so an adapter has one method to get right: ``fetch``.

Every adapter's ``fetch`` is wrapped (:meth:`Source.__init_subclass__`): text in the filter
that no upstream can carry is refused before any request, and upstream requests reserved in
advance (:func:`gateway.sources.upstream_budget.spend`) but not made — answered from a cache — are
given back to the request's budget when the call ends.
"""

from __future__ import annotations

import datetime as dt
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from gateway.history import events, temporal_fields
from gateway.history.events import EVENTS_MARK
from gateway.history.instants import required
from gateway.history.objects import Describer
from gateway.history.periods import HISTORY_ROWS
from gateway.history.store import HistoryStore
from gateway.model.datamodel import Entity, Register
from gateway.model.errors import HistoryUnavailableError
from gateway.model.filters import check_text
from gateway.model.query import Page, Query
from gateway.sources import upstream_budget
from gateway.sources.cache import Cache
from gateway.sources.guard import Guard, GuardSettings
from gateway.sources.metrics import Metrics

__all__ = ["REGISTRATION", "Services", "Source"]

# The option of a query asked at an instant of the register's history (``registreringstid``:
# what the register said then), a timezone-aware datetime.
REGISTRATION = "registreringstid"


@dataclass(frozen=True, slots=True)
class Services:
    """Shared facilities handed to every adapter."""

    cache: Cache
    metrics: Metrics | None = None
    # The history store (what each register said when), if the gateway keeps one.
    history: HistoryStore | None = None


class Source(ABC):
    """One register's upstream, as seen by the gateway.

    ``options`` is the register's ``Source.json`` merged with the gateway configuration
    (e.g. a replica's URL replacing the real one).
    """

    kind = ""
    # Whether the adapter answers queries at an instant (the REGISTRATION option).
    keeps_history = False
    # Whether it records row versions and their events (the register then has an
    # ``Events`` entity, gateway/history/events.py, answered here from the history store).
    records_rows = False
    # Whether its history is file versions that hold objects (gateway/history/objects.py):
    # the register has an ``Events`` entity too, from the objects' changes (see describer).
    describes_files = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("fetch")
        if own is not None and not getattr(own, "__isabstractmethod__", False):
            setattr(cls, "fetch", _accounted(own))  # noqa: B010 - wrapping each subclass

    def __init__(self, register: Register, options: Mapping[str, Any], services: Services) -> None:
        self.register = register
        self.options = options
        self.services = services
        self.requests = 0
        self.guard_settings = GuardSettings.from_options(options)
        if _loopback(options):
            # Politeness is owed to public services, not to a replica on this machine.
            self.guard_settings = replace(self.guard_settings, rate=0.0)
        # Every upstream call goes through the guard: limits, retries, circuit breaker.
        self.guard = Guard(register.name, self.guard_settings)
        # The entities with the temporal fields (gateway/history/temporal_fields.py).
        self.temporals = {
            name: temporal_fields.Temporals(entity, register.temporal[name], register.zone)
            for name, entity in register.datamodel.entities.items()
            if name in register.temporal
            and any(temporal_fields.is_temporal(f) for f in entity.fields)
        }

    def cache_windows(self) -> dict[str, float]:
        """Keyword arguments for ``Cache.get_or_fetch``: this register's stale windows."""
        return {
            "stale_if_error": self.guard_settings.stale_if_error,
            "stale_while_revalidate": self.guard_settings.stale_while_revalidate,
        }

    def record(self, seconds: float, size: int, outcome: str = "ok") -> None:
        """Count one upstream request (an attempt) for the metrics: its outcome (``ok``,
        ``not_found``, ``unavailable``, ``timeout``, ``invalid``), latency and bytes received.
        """
        metrics = self.services.metrics
        if metrics is not None:
            metrics.upstream_requests.labels(self.register.name, outcome).inc()
            metrics.upstream_latency.labels(self.register.name).observe(seconds)
            metrics.upstream_bytes.labels(self.register.name).inc(size)

    async def ready(self) -> bool:
        """Whether the upstream answers (default: its circuit is not open)."""
        return self.guard.breaker.state != "open"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections and clients (called once, in the app's lifespan)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Close what ``start`` opened."""

    @property
    def data_epoch(self) -> int:
        """Changes whenever rows are learnt deleted upstream (0 for kinds that find none):
        whole answers and export files cached before a deletion are not served after it."""
        return 0

    async def read_for_history(self, entity: Entity, since: dt.datetime | None) -> int:
        """Read ``entity``'s rows registered after ``since`` (None: every row) so that they
        are recorded; how many were read. Only kinds that record rows have it."""
        raise NotImplementedError(f"{self.kind} sources record no rows")

    def describer(self) -> Describer | None:
        """What this register's file versions hold (kinds whose ``describes_files``)."""
        return None

    @abstractmethod
    async def fetch(self, query: Query) -> Page:
        """Answer ``query``: the rows in the window and what is known beyond it."""


_Fetch = Callable[["Source", Query], Coroutine[Any, Any, Page]]


def _accounted(fetch: _Fetch) -> _Fetch:
    if getattr(fetch, "_accounted", False):
        return fetch

    @functools.wraps(fetch)
    async def accounted(self: Source, query: Query) -> Page:
        check_text(query.where)
        if query.options:
            _check_options(self, query.options)
        if query.entity.eaid == EVENTS_MARK:  # the register's Events (gateway/history/events)
            return await events.answer(
                required(self.services.history, self.register.name), self.register.name, query
            )
        view = self.temporals.get(query.entity.name) if self.temporals else None
        if view is None:
            with upstream_budget.account():
                return await fetch(self, query)
        # The temporal fields (gateway/history/temporal_fields): asked of the declared ones;
        # at an instant a kind that records rows gives them from its history itself.
        instant = query.options.get(REGISTRATION) is not None if query.options else False
        asked = query if instant and self.records_rows else temporal_fields.rewrite(query, view)
        if asked is None:
            return Page(rows=[], has_more=False, total=0 if query.count else None)
        with upstream_budget.account():
            page = await fetch(self, asked)
        if not query.fields or query.fields & view.names:  # (else nobody reads them)
            page.rows = temporal_fields.filled(page.rows, view)
        return page

    accounted._accounted = True  # type: ignore[attr-defined]
    return accounted


def _check_options(source: Source, options: Mapping[str, Any]) -> None:
    """Refuse what the source cannot answer before any request: an instant of a register
    whose history is not kept, a delta of one whose rows are not recorded."""
    name = source.register.name
    if options.get(REGISTRATION) is not None and not source.keeps_history:
        raise HistoryUnavailableError(
            f"{name}: the gateway keeps no history of this register; "
            "registreringstid is answered for the registers whose history is kept",
            register=name,
        )
    if options.get(HISTORY_ROWS) is not None and not source.records_rows:
        raise HistoryUnavailableError(
            f"{name}: the gateway records no row versions of this register; "
            "deltas and versions are offered for the registers whose rows it records",
            register=name,
        )


def _loopback(options: Mapping[str, Any]) -> bool:
    host = options.get("host") or urlsplit(str(options.get("url", ""))).hostname
    return str(host) in ("127.0.0.1", "localhost", "::1")
