"""File exports generated from the datamodel (the DLS file downloads) and the catalogue.

``GET /{REG}/v{N}/download/{Entity}.{csv|ndjson|parquet}`` streams every row of an entity
the register's ``Automated_Predefined_Filedownloads.json`` offers, optionally narrowed by
``?where=`` and ordered by ``?order=`` (JSON shaped like the GraphQL arguments; see
:mod:`gateway.exports.where`). ``GET /catalog.json`` lists what there is
(:mod:`gateway.exports.catalog`).

Security is the GraphQL API's: an entity above the caller's level answers ``403 FORBIDDEN``
before any upstream request, columns above it are absent from the file (not blank), and
filtering or ordering on them is ``403`` too.

The export pages through the register's source in windows of ``max_first`` rows (one window
fetched ahead while the previous one is written), so it holds about two windows whatever the
entity's size. Headers go out once the first window is in: ``X-Total-Count`` (the matching
rows, when the source can count) and ``Content-Disposition``. Errors up to then are JSON
with a status (400, 403, 404, 502, 504). An upstream failure after the response has started
cannot change the status any more; the response is then ended without its final chunk (the
connection closes), so a client sees an incomplete transfer rather than a shorter file.

Encoding a window (CSV, NDJSON, Parquet) runs in a worker thread once it holds more than
:data:`OFFLOAD_VALUES` values, so an export does not hold up the event loop and the other
requests it serves. The encoder is only ever used by one call at a time (each is awaited
before the next), in whichever thread.

Parquet, and CSV or NDJSON asked for as a file (``HEAD``, a ``Range`` header, or
``?finished=1``), are built once into the exports folder and served from there with
``Content-Length``, ``ETag`` and byte ranges (:mod:`gateway.exports.files`); a plain ``GET``
of CSV or NDJSON streams. Beside each CSV, ``{Entity}.csv-metadata.json`` describes its
columns (W3C CSVW, :mod:`gateway.exports.csvw`); the CSV links it
(``Link: <…>; rel="describedby"``). Every export names the attribution its register declares
(:mod:`gateway.dls.attribution`): in a ``Link`` header (``rel="author"``, the text as
``title*``), in the Parquet key-value metadata and in the CSVW file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gateway.dls.attribution import Attribution, attribution
from gateway.exports.catalog import (
    CSVW_SUFFIX,
    Downloads,
    Served,
    catalogue,
    export_name,
    read_downloads,
)
from gateway.exports.csvw import csvw_document
from gateway.exports.files import FileStore, file_key, finished_at, serve_file
from gateway.exports.formats import ENCODING_ERRORS, FORMATS, Encoder, EncoderFactory
from gateway.exports.scheduled import Planned, Scheduler
from gateway.exports.where import decode_json, order_from_json, where_from_json
from gateway.graphql.execute import Binding, RequestContext
from gateway.history.periods import HISTORY_ROWS, Asked, columns as period_columns
from gateway.history.temporal_fields import is_temporal
from gateway.model.callers import Caller
from gateway.model.datamodel import Entity, Field, Register
from gateway.model.errors import BadUserInputError, GatewayError, UpstreamInvalidError
from gateway.model.keys import key_order
from gateway.model.query import Filter, Page, Query, Row, SortKey
from gateway.sources.port import Source

__all__ = ["OFFLOAD_VALUES", "ExportInterruptedError", "Exports", "NotFoundError", "routes"]

log = logging.getLogger("gateway.exports.routes")

_STATUS = {
    "BAD_USER_INPUT": 400,
    "QUERY_TOO_COMPLEX": 400,
    "FORBIDDEN": 403,
    "HISTORY_UNAVAILABLE": 409,
    "NOT_FOUND": 404,
    "EXPORT_TOO_LARGE": 413,
    "UPSTREAM_UNAVAILABLE": 502,
    "UPSTREAM_INVALID": 502,
    "UPSTREAM_TIMEOUT": 504,
}

# A hint to adapters (Query.options): an export reads every page once, so storing the
# upstream's answers would only fill the cache with the whole entity.
_CACHE_OPTION = "cache"


# A page of at least this many values (rows times columns) is encoded in a worker thread;
# smaller ones inline, where a thread hop would cost more than the encoding.
OFFLOAD_VALUES = 2_000

# What ends an export that has started: the upstream failed, or a value cannot be written.
_FAILURES: tuple[type[BaseException], ...] = (GatewayError, *ENCODING_ERRORS)


class NotFoundError(GatewayError):
    """No such register version, entity download or format."""

    code = "NOT_FOUND"


class ExportInterruptedError(Exception):
    """An export failed after its response had started; the response is left incomplete."""


def _error(exc: GatewayError) -> Response:
    body = {"errors": [{"message": exc.message, "extensions": exc.extensions}]}
    return JSONResponse(body, status_code=_STATUS.get(exc.code, 500))


@dataclass(frozen=True, slots=True)
class _Export:
    """One export: what to ask the source for, window by window."""

    source: Source
    binding: Binding
    where: Filter | None
    order: tuple[SortKey, ...]
    columns: tuple[Field, ...]
    window: int
    # A delta (the changes of a period) or every version, from the history; None: the
    # current rows.
    asked: Asked | None = None

    @property
    def label(self) -> str:
        return self.binding.entity.graphql_name

    def query(self, offset: int, limit: int, count: bool) -> Query:
        entity = self.binding.entity
        fields = frozenset(f.name for f in self.columns if f.name in entity.by_name)
        options: dict[str, Any] = {_CACHE_OPTION: False}
        if self.asked is not None:
            options[HISTORY_ROWS] = self.asked
        return Query(entity, self.where, self.order, offset, limit, fields, count, options)

    async def fetch(self, offset: int, count: bool = False) -> Page:
        page = await self.source.fetch(self.query(offset, self.window, count))
        if len(page.rows) <= self.window:
            return page
        # An adapter may answer more than asked; the window is what the next offset assumes.
        return Page(page.rows[: self.window], True, page.total, page.notices)

    async def count(self) -> int | None:
        return (await self.source.fetch(self.query(0, 0, True))).total


async def _encode(encoder: Encoder, rows: Sequence[Row], columns: int) -> bytes:
    """``encoder.page(rows)``, in a worker thread when the page is large."""
    if len(rows) * max(1, columns) < OFFLOAD_VALUES:
        return encoder.page(rows)
    return await asyncio.to_thread(encoder.page, rows)


async def _stream(
    export: _Export, encoder: Encoder, head: bytes, first: Page, sent_rows: list[int] | None = None
) -> AsyncGenerator[bytes, None]:
    """The file: ``head`` (already encoded), then each further window as it arrives.

    ``sent_rows`` gets the number of rows once the file is complete.
    """
    started = time.monotonic()
    sent = offset = len(first.rows)
    pending: asyncio.Task[Page] | None = None
    if first.has_more and first.rows:
        pending = asyncio.ensure_future(export.fetch(offset))
    try:
        yield head
        while pending is not None:
            page = await pending
            pending = None
            if not page.rows:
                if page.has_more:
                    raise UpstreamInvalidError(f"{export.label}: an empty page before the end")
                break
            offset += len(page.rows)
            if page.has_more:
                # Fetch the next window while this one is written to the client.
                pending = asyncio.ensure_future(export.fetch(offset))
            chunk = await _encode(encoder, page.rows, len(export.columns))
            sent += len(page.rows)
            yield chunk
        yield encoder.end()
        if sent_rows is not None:
            sent_rows.append(sent)
    except _FAILURES as exc:
        log.warning("export of %s interrupted after %d rows: %s", export.label, sent, exc)
        raise ExportInterruptedError(
            f"the export of {export.label} failed after {sent} rows: {exc}"
        ) from exc
    finally:
        if pending is not None:
            await _discard(pending)
    log.info("exported %s: %d rows in %.1f s", export.label, sent, time.monotonic() - started)


async def _discard(task: asyncio.Task[Page]) -> None:
    """Cancel a prefetch nobody will read, and collect its outcome (no "never retrieved")."""
    if not task.done():
        task.cancel()
        await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


class _ExportResponse(StreamingResponse):
    """A streamed export whose generator is always closed (cancelling its prefetch)."""

    def __init__(
        self, stream: AsyncGenerator[bytes, None], media_type: str, headers: Mapping[str, str]
    ) -> None:
        super().__init__(stream, media_type=media_type, headers=headers)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.stream.aclose()


async def _nothing() -> AsyncGenerator[bytes, None]:
    return
    yield b""  # an async generator that yields nothing


# A finished file rather than a stream: asked for in so many words.
_FINISHED = frozenset({"1", "true", "yes"})
# Query parameters that do not change a file's bytes (credentials never go into a link).
_NOT_CONTENT = frozenset({"finished", "apikey", "api_key", "access_token"})


def _content_query(request: Request) -> str:
    """The request's query without credentials and ``finished``, for links to related files."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in _NOT_CONTENT]
    return urlencode(kept, quote_via=quote)


def _zone(register: Register) -> dt.tzinfo:
    """The zone of the register's wall-clock date-times (``timeZone`` in Source.json)."""
    zone = register.zone
    if zone is None and register.source and register.source.get("timeZone"):
        name = register.source.get("timeZone")
        log.warning("%s: unknown timeZone %r; date-times read as UTC", register.name, name)
    return zone or dt.UTC


def _attribution_link(found: Attribution) -> str:
    """A ``Link`` header value naming the source (RFC 8288, the text as RFC 8187 ``title*``)."""
    target = found.url or "/catalog.json"
    return f"<{target}>; rel=\"author\"; title*=UTF-8''{quote(found.line(), safe='')}"


class _Exports:
    """The route handlers, with what they look up per request prepared once."""

    def __init__(self, gateway: Served) -> None:
        self.gateway = gateway
        self.store = FileStore(gateway.files)
        self.downloads: dict[str, Downloads] = {
            name: read_downloads(register) for name, register in gateway.registers.items()
        }
        self.by_export_name: dict[str, dict[str, Entity]] = {
            name: {export_name(register, e): e for e in register.datamodel.entities.values()}
            for name, register in gateway.registers.items()
        }
        # The external versions of each register's newest datamodel (downloads are of it).
        self.versions = {
            (name, gateway.number(name, version))
            for name, register in gateway.registers.items()
            for version in register.relation_versions
        }
        self.attributions = {
            name: found
            for name, register in gateway.registers.items()
            if (found := attribution(register)) is not None
        }
        self.zones = {name: _zone(register) for name, register in gateway.registers.items()}
        self.scheduler = Scheduler(
            [gateway.registers[n] for n in gateway.scheduled if n in gateway.registers],
            self.downloads,
            lambda: self.store.folder,
            self._write_scheduled,
        )

    def routes(self) -> list[BaseRoute]:
        """The export, scheduled-file and catalogue routes."""
        return [
            Route("/catalog.json", self.catalog, methods=["GET"]),
            Route("/{register}/v{version:int}/download/{filename}", self.download, methods=["GET"]),
            Route("/{register}/v{version:int}/files/{filename}", self.scheduled, methods=["GET"]),
        ]

    async def start(self) -> None:
        """Start writing the scheduled files."""
        self.scheduler.start()

    async def aclose(self) -> None:
        await self.scheduler.aclose()

    # -- scheduled files --------------------------------------------------------------

    async def _write_scheduled(self, planned: Planned, path: Path) -> None:
        register, entity = planned.register, planned.entity
        caller = Caller("scheduled", planned.level, "scheduled")
        export = self.plan(caller, {}, register, entity, planned.asked)
        _, make_encoder = FORMATS["csv"]
        metadata = self._metadata(register, entity)
        written: list[int] = []
        build = _build(export, make_encoder, metadata, self.zones[register.name], written)
        await self.store.write(path, build, lambda: written[0] if written else None)

    async def scheduled(self, request: Request) -> Response:
        try:
            name = request.path_params["register"]
            version = str(request.path_params["version"])
            register = self.gateway.registers.get(name)
            if register is None or (name, version) not in self.versions:
                raise NotFoundError(f"no register version /{name}/v{version} is served here")
            filename = request.path_params["filename"]
            path = self.scheduler.find(register, filename, self.caller(request).level)
            found = None if path is None else finished_at(path)
            if found is None:
                raise NotFoundError(
                    f"{name} has no scheduled file {filename!r} for this caller; "
                    "/catalog.json lists them (scheduledFiles)"
                )
            media_type, _ = FORMATS["csv"]
            headers = {
                "content-disposition": f'attachment; filename="{filename}"',
                "cache-control": "private, no-cache",
                "vary": "authorization, x-api-key",
                "x-content-type-options": "nosniff",
            }
            if found.rows is not None:
                headers["x-total-count"] = str(found.rows)
            return serve_file(request, self.store, found, media_type, headers)
        except GatewayError as exc:
            return _error(exc)

    def caller(self, request: Request) -> Caller:
        caller: Caller | None = request.scope.get("caller")
        if caller is None:
            return Caller("anonymous", self.gateway.anonymous_level, "anonymous")
        return caller

    # -- /catalog.json ----------------------------------------------------------------

    async def catalog(self, request: Request) -> Response:
        caller = self.caller(request)
        document = catalogue(
            self.gateway,
            {"level": caller.level, "method": caller.method},
            caller.level,
            self.downloads,
            lambda register: self.scheduler.files(register, caller.level),
        )
        # The document depends on the caller's level: never from a shared cache.
        headers = {"cache-control": "private, no-cache", "vary": "authorization, x-api-key"}
        return JSONResponse(document, headers=headers)

    # -- downloads --------------------------------------------------------------------

    async def download(self, request: Request) -> Response:
        try:
            return await self._download(request)
        except GatewayError as exc:
            return _error(exc)

    def _target(self, request: Request) -> tuple[Register, Entity, str]:
        name = request.path_params["register"]
        version = str(request.path_params["version"])
        filename = request.path_params["filename"]
        register = self.gateway.registers.get(name)
        if register is None or (name, version) not in self.versions:
            raise NotFoundError(f"no register version /{name}/v{version} is served here")
        if filename.endswith(CSVW_SUFFIX):
            stem, fmt = filename.removesuffix(CSVW_SUFFIX), CSVW_SUFFIX
        else:
            stem, _, fmt = filename.rpartition(".")
            if fmt not in FORMATS:
                raise NotFoundError(
                    f"unknown format {fmt!r}; exports come as {', '.join(FORMATS)} "
                    f"(and {{Entity}}{CSVW_SUFFIX} describes a CSV)",
                    formats=list(FORMATS),
                )
        entity = self.by_export_name[name].get(stem)
        if entity is None or entity.name not in self.downloads[name].offered:
            raise NotFoundError(
                f"{name} offers no download {stem!r}; see /catalog.json "
                "(entities are named by their GraphQL type name without the register prefix)"
            )
        return register, entity, fmt

    def _plan(self, request: Request, register: Register, entity: Entity) -> _Export:
        return self.plan(self.caller(request), request.query_params, register, entity)

    def plan(
        self,
        caller: Caller,
        params: Mapping[str, str],
        register: Register,
        entity: Entity,
        asked: Asked | None = None,
    ) -> _Export:
        """One export as ``caller`` asks for it (``asked`` given: instead of the period
        parameters)."""
        runtime = self.gateway.runtime
        ctx = RequestContext(runtime=runtime, level=caller.level, caller=caller.name)
        binding = Binding(register, entity, {})
        # The entity first: a caller who may not read it learns nothing from the parameters.
        ctx.require(binding.level, entity.graphql_name)
        limits = self.gateway.limits
        where = where_from_json(
            entity,
            decode_json(params.get("where"), "where", limits.max_document_bytes),
            limits.max_depth,
        )
        order = order_from_json(
            entity, decode_json(params.get("order"), "order", limits.max_document_bytes)
        )
        binding.check(ctx, where, order)
        full_order = key_order(entity, order)
        # The register's own columns (the temporal fields are the gateway's: a temporal
        # download gives the periods of the versions themselves).
        columns = tuple(
            f
            for f in entity.fields
            if binding.field_level(f.name) <= caller.level and not is_temporal(f)
        )
        if asked is None:
            asked = _asked(params)
        if asked is not None:
            columns = (*columns, *period_columns(asked))
        return _Export(
            runtime.sources[register.name],
            binding,
            where,
            full_order,
            columns,
            max(1, runtime.max_first),
            asked,
        )

    def _headers(self, register: Register, entity: Entity, fmt: str, query: str) -> dict[str, str]:
        headers = {
            "content-disposition": f'attachment; filename="{entity.graphql_name}.{fmt}"',
            "x-content-type-options": "nosniff",
            # The file depends on the caller's level: never from a shared cache.
            "vary": "authorization, x-api-key",
        }
        links = []
        if fmt == "csv":
            # Relative to the CSV's own URL (RFC 3986): beside it, with the same query.
            target = f"{export_name(register, entity)}{CSVW_SUFFIX}" + (
                f"?{query}" if query else ""
            )
            links.append(f'<{target}>; rel="describedby"; type="application/csvw+json"')
        found = self.attributions.get(register.name)
        if found is not None:
            links.append(_attribution_link(found))
        if links:
            headers["link"] = ", ".join(links)
        return headers

    def _metadata(self, register: Register, entity: Entity) -> dict[str, str]:
        metadata = {"register": register.name, "rc": register.rc, "entity": entity.name}
        found = self.attributions.get(register.name)
        if found is not None:
            metadata["attribution"] = found.text
            metadata["attribution_required"] = "true" if found.required else "false"
            if found.name:
                metadata["attribution_name"] = found.name
            if found.url:
                metadata["attribution_url"] = found.url
        return metadata

    async def _download(self, request: Request) -> Response:
        register, entity, fmt = self._target(request)
        export = self._plan(request, register, entity)
        if fmt == CSVW_SUFFIX:
            return self._csvw(request, register, entity, export)
        media_type, make_encoder = FORMATS[fmt]
        headers = self._headers(register, entity, fmt, _content_query(request))
        finished = (
            fmt == "parquet"
            or request.method == "HEAD"
            or "range" in request.headers
            or request.query_params.get("finished", "").lower() in _FINISHED
        )
        metadata = self._metadata(register, entity)
        zone = self.zones[register.name]
        if finished:
            return await self._finished(request, export, fmt, metadata, zone, headers)
        headers["cache-control"] = "no-store"
        first = await export.fetch(0, count=True)
        try:
            encoder = make_encoder(export.columns, metadata, zone)
            head = encoder.begin() + await _encode(encoder, first.rows, len(export.columns))
        except ENCODING_ERRORS as exc:
            raise UpstreamInvalidError(f"{export.label}: a value cannot be written: {exc}") from exc
        if first.total is not None:
            headers["x-total-count"] = str(first.total)
        return _ExportResponse(_stream(export, encoder, head, first), media_type, headers)

    async def _finished(
        self,
        request: Request,
        export: _Export,
        fmt: str,
        metadata: Mapping[str, str],
        zone: dt.tzinfo,
        headers: dict[str, str],
    ) -> Response:
        caller = self.caller(request)
        register = export.binding.register
        number = str(request.path_params["version"])
        key = file_key(
            {
                "register": register.name,
                "version": number,
                "datamodel": register.datamodel.version,
                "entity": export.binding.entity.name,
                "format": fmt,
                "where": _canonical(export.where),
                "order": [(k.field, k.descending) for k in export.order],
                "columns": [f.name for f in export.columns],
                "level": caller.level,
                "metadata": dict(metadata),
                "zone": str(zone),
                # rows learnt deleted upstream: a file built before is not served after
                "epoch": export.source.data_epoch,
                "asked": None
                if export.asked is None
                else [_text(export.asked.since), _text(export.asked.until)],
            }
        )
        media_type, make_encoder = FORMATS[fmt]
        written: list[int] = []
        found = await self.store.get(
            key,
            fmt,
            caller.level,
            _build(export, make_encoder, metadata, zone, written),
            lambda: written[0] if written else None,
        )
        headers["cache-control"] = "private, no-cache"
        if found.rows is not None:
            headers["x-total-count"] = str(found.rows)
        return serve_file(request, self.store, found, media_type, headers)

    def _csvw(
        self, request: Request, register: Register, entity: Entity, export: _Export
    ) -> Response:
        document = csvw_document(
            register,
            entity,
            export.columns,
            csv_url=f"{export_name(register, entity)}.csv"
            + (f"?{query}" if (query := _content_query(request)) else ""),
            attribution=self.attributions.get(register.name),
        )
        headers = {"cache-control": "private, no-cache", "vary": "authorization, x-api-key"}
        found = self.attributions.get(register.name)
        if found is not None:
            headers["link"] = _attribution_link(found)
        return JSONResponse(document, headers=headers, media_type="application/csvw+json")


def _text(instant: dt.datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


def _instant(params: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadUserInputError(
            f"{name}: {raw!r} is not an ISO 8601 date-time (e.g. 2026-12-01T00:00:00Z)",
            argument=name,
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _asked(params: Mapping[str, str]) -> Asked | None:
    """``since``/``until`` (a delta) or ``versions=1`` (every version); None: current rows."""
    since, until = _instant(params, "since"), _instant(params, "until")
    versions = params.get("versions", "").lower() in _FINISHED
    if since is None:
        if until is not None:
            raise BadUserInputError("until: a delta is asked with since (and until)")
        return Asked() if versions else None
    if versions:
        raise BadUserInputError("versions and since: ask for a delta or for every version")
    until = until or dt.datetime.now(dt.UTC)
    if until <= since:
        raise BadUserInputError("since: a delta's period ends after it begins (until > since)")
    return Asked(since, until)


def _canonical(where: Filter | None) -> str:
    """A stable text of a filter (its dataclass repr: fields in declaration order)."""
    return repr(where)


async def _build(
    export: _Export,
    make_encoder: EncoderFactory,
    metadata: Mapping[str, str],
    zone: dt.tzinfo,
    written: list[int],
) -> AsyncGenerator[bytes, None]:
    """The whole file, for the exports folder; errors are raised as they are (no response
    has started), an interrupted export as the failure that ended it."""
    first = await export.fetch(0, count=True)
    try:
        encoder = make_encoder(export.columns, metadata, zone)
        head = encoder.begin() + await _encode(encoder, first.rows, len(export.columns))
    except ENCODING_ERRORS as exc:
        raise UpstreamInvalidError(f"{export.label}: a value cannot be written: {exc}") from exc
    stream = _stream(export, encoder, head, first, written)
    try:
        async for chunk in stream:
            yield chunk
    except ExportInterruptedError as exc:
        cause = exc.__cause__
        if isinstance(cause, GatewayError):
            raise cause from None
        raise UpstreamInvalidError(str(exc)) from exc
    finally:
        await stream.aclose()


Exports = _Exports


def routes(gateway: Served) -> list[BaseRoute]:
    """The export and catalogue routes of ``gateway`` (without a lifespan: no scheduled files
    are written; use :class:`Exports` for that)."""
    return _Exports(gateway).routes()
