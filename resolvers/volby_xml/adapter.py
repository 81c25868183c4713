"""The adapter for ČSÚ election results on volby.cz (Source.json kind ``volby-xml``).

Result documents (national, district, council) are read as the filter needs them
(:mod:`resolvers.volby_xml.plan`) and cached for the upstream's own web-cache period (``ttl``,
60 s). Precinct batches are read in order from 1 up to the newest and merged
(:mod:`resolvers.volby_xml.batches`); they are kept for good. Everything else a query asks is
evaluated on the rows in the gateway.

The ``Source.json`` options (``url``, ``elections``, ``districts``, ``documents``, ``ttl``,
``maxBytes``, …) are read and checked by :mod:`resolvers.volby_xml.options`.

HTTP goes through :class:`resolvers.transport.Transport` (one client, the error translation,
metrics and ``X-Request-ID``).

CPU-heavy steps run in a worker thread so the event loop keeps serving other requests: a
document of at least :data:`OFFLOAD_BYTES` is parsed and mapped to rows there, and a query
over at least :data:`OFFLOAD_ROWS` rows is filtered, ordered and copied there. The worker
returns what it built; caches, batch streams and learnt districts are updated on the loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from gateway.history.instants import before_history, in_utc, required
from gateway.model.datamodel import Datamodel, Register
from gateway.model.errors import (
    BadUserInputError,
    HistoryUnavailableError,
    UpstreamError,
    UpstreamInvalidError,
)
from gateway.model.filters import apply_in_memory
from gateway.model.query import Page, Query, Row
from gateway.sources import upstream_budget
from gateway.sources.port import REGISTRATION, Services, Source
from resolvers.transport import Transport
from resolvers.volby_xml.batches import BatchNames, BatchStream
from resolvers.volby_xml.describe import VolbyDescriber, batch_folder
from resolvers.volby_xml.parse import BATCH_MISSING, Chyba
from resolvers.volby_xml.plan import (
    DocRequest,
    Election,
    VolbyConfig,
    batch_request,
    elections_for,
    plan_documents,
)
from resolvers.volby_xml.rows import MappedDocument, read_document
from resolvers.volby_xml.totals import CouncilTotals

__all__ = ["VolbySource"]

# A document at least this large is parsed in a worker thread; smaller ones inline (a thread
# hop costs more than parsing them).
OFFLOAD_BYTES = 64 * 1024
# A query over at least this many rows is answered in a worker thread.
OFFLOAD_ROWS = 5_000
# Batch streams of past instants kept (each as large as the batches it merged).
_PAST_KEPT = 4


class VolbySource(Source):
    """Answers queries on the CZ and CZPREZ registers from volby.cz XML."""

    kind = "volby-xml"
    # The precinct batches are kept in the history as they are read (see _batch): a query
    # at a registreringstid merges the batches published by then.
    keeps_history = True
    # The batches hold precincts and their votes: the register's events (describe.py).
    describes_files = True

    def __init__(self, register: Register, options: Mapping[str, Any], services: Services) -> None:
        super().__init__(register, options, services)
        self.config = VolbyConfig.of(options)
        self.transport = Transport(
            self, label="volby.cz", headers={"Accept": "application/xml, text/xml"}
        )
        self._streams: dict[str, BatchStream] = {}
        # Streams merged from the history (see _stream_of), the least recently used out first.
        self._past: OrderedDict[tuple[str, tuple[tuple[int, str], ...]], BatchStream] = (
            OrderedDict()
        )
        # Which district each council was seen in: district membership does not change.
        self._districts: dict[tuple[str, str], str] = {}
        spec = self.config.families.batches or {}
        self._names = BatchNames(sequence=str(spec.get("sequence", "PORADI_ZPRAC")))
        self._totals = CouncilTotals.of(register.datamodel, self.config.families.councils)

    def describer(self) -> VolbyDescriber:
        """The rows of this register's batches (its events)."""
        return VolbyDescriber(self.register, self.config)

    async def start(self) -> None:
        """Open the HTTP client."""
        await self.transport.start()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.transport.aclose()

    async def fetch(self, query: Query) -> Page:
        """Rows of ``query.entity`` from the documents the filter needs."""
        families = self.config.families.of(query.entity.name)
        instant = query.options.get(REGISTRATION) if query.options else None
        if instant is not None and "batches" not in families:
            raise HistoryUnavailableError(
                f"{self.register.name}: the history keeps the precinct batches; "
                f"{query.entity.graphql_name} is answered as it stands now only",
                register=self.register.name,
            )
        if "batches" in families:
            if instant is None:
                rows, notices = await self._batch_rows(query)
            else:
                rows, notices = await self._batch_rows_at(query, instant)
        elif families:
            rows, notices = await self._document_rows(query)
        else:
            rows, notices = [], []
        if len(rows) >= OFFLOAD_ROWS:
            page = await asyncio.to_thread(_answer, rows, query)
        else:
            page = _answer(rows, query)
        page.notices.extend(notices)
        return page

    # ----------------------------------------------------------------- result documents

    async def _document_rows(self, query: Query) -> tuple[list[Row], list[dict[str, Any]]]:
        plan = plan_documents(query, self.config, self.register.datamodel, self._district_of)
        upstream_budget.spend(len(plan.requests), f"{len(plan.requests)} volby.cz documents")
        # At most ``concurrency`` in flight: the guard's limit, applied by the transport.
        documents = await asyncio.gather(
            *(self._document(r, self.config.ttl) for r in plan.requests)
        )
        rows: list[Row] = []
        waiting: dict[tuple[str, int | None], int] = {}
        for request, document in zip(plan.requests, documents, strict=True):
            if document.error is not None:
                if not document.error.not_yet_available:
                    raise self._refusal(request, document.error)
                place = (request.election.label, document.error.code)
                waiting[place] = waiting.get(place, 0) + 1
                continue
            self._learn_districts(request, document)
            rows.extend(document.of(query.entity.name))
        notices = [self._cost(query, plan.requests, plan.fanout)]
        for (label, code), count in waiting.items():
            notices.append(_not_yet(label, Chyba(code, ""), count))
        return rows, notices

    def _district_of(self, election: Election, council: str) -> str | None:
        return self._districts.get((election.label, council))

    def _learn_districts(self, request: DocRequest, document: MappedDocument) -> None:
        spec = self.config.families.councils
        if spec is None or request.endpoint != spec["districtEndpoint"]:
            return
        district = request.params[str(spec["districtParameter"])]
        for name, rows in document.rows.items():
            field = self.register.datamodel.entities[name].by_source.get(str(spec["councilField"]))
            if field is not None:
                for row in rows:
                    self._districts[(request.election.label, str(row[field.name]))] = district

    def _refusal(self, request: DocRequest, error: Chyba) -> Exception:
        text = f"volby.cz refused {request.endpoint} {request.query_params}: {error.describe()}"
        if request.from_filter:
            return BadUserInputError(text)
        return UpstreamInvalidError(text)

    def _cost(self, query: Query, requests: list[DocRequest], fanout: bool) -> dict[str, Any]:
        endpoints: dict[str, int] = {}
        for request in requests:
            endpoints[request.endpoint] = endpoints.get(request.endpoint, 0) + 1
        message = f"{len(requests)} volby.cz document(s) for {query.entity.graphql_name}"
        if fanout:
            message += (
                f"; no council or district filter, so every configured district was read"
                f" ({self.config.concurrency} at a time)"
            )
        return {
            "code": "UPSTREAM_COST",
            "register": self.register.name,
            "entity": query.entity.graphql_name,
            "documents": len(requests),
            "endpoints": endpoints,
            "fanout": fanout,
            "concurrency": self.config.concurrency,
            "message": message,
        }

    # ----------------------------------------------------------------- batches

    async def _batch_rows(self, query: Query) -> tuple[list[Row], list[dict[str, Any]]]:
        rows: list[Row] = []
        notices: list[dict[str, Any]] = []
        for election in elections_for(query, self.config, self.register.datamodel):
            stream = self._stream(election)
            try:
                await stream.refresh(
                    functools.partial(self._batch, election, None),
                    functools.partial(self._batch, election),
                    concurrency=self.config.concurrency,
                )
            except UpstreamError as exc:
                if not stream.batches:
                    raise
                notices.append(_stale(election, stream, exc))
            if not stream.batches:
                waiting = stream.waiting or Chyba(BATCH_MISSING, "")
                notices.append(_not_yet(election.label, waiting, 1))
            rows.extend(stream.rows(query.entity))
        return rows, notices

    async def _batch_rows_at(
        self, query: Query, instant: dt.datetime
    ) -> tuple[list[Row], list[dict[str, Any]]]:
        """The batch rows as they stood at ``instant``: the batches the history holds that
        were published by then, merged in order (the highest PORADI_ZPRAC of a precinct)."""
        history = required(self.services.history, self.register.name)
        instant = in_utc(instant)
        rows: list[Row] = []
        notices: list[dict[str, Any]] = []
        for election in elections_for(query, self.config, self.register.datamodel):
            folder = batch_folder(election)
            versions, _ = await history.listing(self.register.name, folder, instant)
            numbered = tuple(
                sorted((n, v.path) for v in versions if (n := _batch_number(v.name)) is not None)
            )
            stream = await self._stream_of(election, numbered)
            if not numbered:
                known = await history.known_from(self.register.name)
                notices.append(
                    before_history(self.register.name, instant, known, election=election.label)
                )
            rows.extend(stream.rows(query.entity))
        return rows, notices

    async def _stream_of(
        self, election: Election, numbered: tuple[tuple[int, str], ...]
    ) -> BatchStream:
        """The batches ``numbered`` (number, history path) merged; kept per set of batches,
        so that queries at instants between the same two batches read and parse none again."""
        key = (election.label, numbered)
        stream = self._past.get(key)
        if stream is not None:
            self._past.move_to_end(key)
            return stream
        history = required(self.services.history, self.register.name)
        stream = BatchStream(election.context, self.register.datamodel, self._names)
        read = functools.partial(
            _read, datamodel=self.register.datamodel, context=election.context, totals=None
        )
        for number, path in numbered:
            found = await history.read(self.register.name, path)
            if found is None:
                continue
            data = found[0]
            offload = len(data) >= OFFLOAD_BYTES
            stream.merge(number, await asyncio.to_thread(read, data) if offload else read(data))
        if len(self._past) >= _PAST_KEPT:
            self._past.popitem(last=False)
        self._past[key] = stream
        return stream

    def _record_batch(self, election: Election, number: int | None, data: bytes) -> None:
        """Keep a batch just read (the newest: numbered by its PORADI_DAVKY), as published
        at its generation time."""
        history = self.services.history
        if number is None:
            number = batch_number_in(data)
        if history is None or number is None:
            return
        seen = dt.datetime.now(dt.UTC)
        published = batch_time(data) or seen
        path = f"{batch_folder(election)}/davka-{number}.xml"
        history.record(self.register.name, path, data, None, published, seen)

    def _stream(self, election: Election) -> BatchStream:
        stream = self._streams.get(election.label)
        if stream is None:
            stream = BatchStream(election.context, self.register.datamodel, self._names)
            self._streams[election.label] = stream
        return stream

    async def _batch(self, election: Election, number: int | None) -> MappedDocument:
        spec = self.config.families.batches or {}
        request = batch_request(election, spec, number)
        # The newest batch changes every few minutes; a numbered batch never changes.
        ttl = self.config.ttl if number is None else None
        return await self._document(
            request, ttl, functools.partial(self._record_batch, election, number)
        )

    # ----------------------------------------------------------------- HTTP

    async def _document(
        self,
        request: DocRequest,
        ttl: float | None,
        record: Callable[[bytes], None] | None = None,
    ) -> MappedDocument:
        url = request.url(self.config.url)
        params = request.query_params
        key = f"volby:{self.register.name}:{url}?" + "&".join(
            f"{k}={v}" for k, v in sorted(params.items())
        )

        async def load() -> MappedDocument:
            data = await self._get(url, params)
            if data is None:
                return MappedDocument("", None, {}, Chyba(BATCH_MISSING, "HTTP 404"))
            read = functools.partial(
                _read,
                datamodel=self.register.datamodel,
                context=request.context,
                totals=self._totals,
            )
            if len(data) >= OFFLOAD_BYTES:
                document = await asyncio.to_thread(read, data)
            else:
                document = read(data)
            if record is not None and document.error is None:
                record(data)
            return document

        return await self.services.cache.get_or_fetch(key, load, ttl, **self.cache_windows())

    async def _get(self, url: str, params: Mapping[str, str]) -> bytes | None:
        # The static-file layout answers a batch that does not exist yet with 404.
        reply = await self.transport.get(
            url, params=params, passing=(404,), max_bytes=self.config.max_bytes
        )
        return None if reply.status == 404 else reply.content


def _read(
    data: bytes,
    *,
    datamodel: Datamodel,
    context: Mapping[str, Any],
    totals: CouncilTotals | None,
) -> MappedDocument:
    """A response as rows, with the council totals derived (it may run in a worker thread)."""
    document = read_document(data, datamodel, context)
    return document if totals is None else totals.add(document)


def _answer(rows: list[Row], query: Query) -> Page:
    """The page of ``query`` from ``rows`` (only read: it may run in a worker thread)."""
    page = apply_in_memory(rows, query)
    # Cached rows are shared; callers get their own copies.
    page.rows = [dict(row) for row in page.rows]
    return page


_GENERATED = re.compile(rb'DATUM_CAS_GENEROVANI="(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})"')
_PRAGUE = ZoneInfo("Europe/Prague")
_NUMBER = re.compile(r"^davka-(\d+)\.xml$")


def batch_time(data: bytes) -> dt.datetime | None:
    """When ČSÚ generated a batch document (``DATUM_CAS_GENEROVANI``, Prague time), in UTC."""
    found = _GENERATED.search(data[:2048])
    if found is None:
        return None
    try:
        local = dt.datetime.fromisoformat(found.group(1).decode())
    except ValueError:
        return None
    return local.replace(tzinfo=_PRAGUE).astimezone(dt.UTC)


_PORADI_DAVKY = re.compile(rb'<DAVKA\b[^>]*\bPORADI_DAVKY="(\d+)"')


def batch_number_in(data: bytes) -> int | None:
    found = _PORADI_DAVKY.search(data[:4096])
    return int(found.group(1)) if found is not None else None


def _batch_number(name: str) -> int | None:
    found = _NUMBER.match(name)
    return int(found.group(1)) if found is not None else None


def _not_yet(label: str, error: Chyba, count: int) -> dict[str, Any]:
    """The notice of documents that are not there yet (errors 10, 20, 30): no rows from them."""
    meaning = error.meaning or "no data yet"
    message = f"volby.cz has no data yet for {label}: error {error.code}, {meaning}"
    if count > 1:
        message += f" ({count} documents)"
    return {
        "code": "NOT_YET_AVAILABLE",
        "election": label,
        "upstreamCode": error.code,
        "documents": count,
        "message": message,
    }


def _stale(election: Election, stream: BatchStream, exc: UpstreamError) -> dict[str, Any]:
    return {
        "code": "STALE",
        "election": election.label,
        "batches": len(stream.batches),
        "message": f"new batches could not be read ({exc.message}); older ones are shown",
    }
