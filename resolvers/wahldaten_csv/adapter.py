"""The DE adapter: Offene Wahldaten CSV files from a web folder or a local directory.

How a query is answered:

1. The folder's listing (cached for ``ttl`` seconds, revalidated with a conditional GET) is
   grouped into publications by file name, and the newest version of each dataset is chosen.
2. Each publication's election is read from its content (the Wahlparameter file, else any
   other), so the ``wahl`` identity is what the files say, not what their names say; two
   publications of the same election are merged, the newest version of each dataset winning.
3. Only the elections the filter allows (``wahl`` or a ``wahl|…`` join key) and only the
   datasets the entity needs are read. A file version is parsed once and cached (its name and
   ``ETag`` identify it).
4. Rows are filtered, ordered and paged in memory; the data warnings of the files read (with
   file and line) come back in ``Page.notices`` and are logged once per file version.
5. A large answer (its files hold at least :data:`OFFLOAD_ROWS` rows) is kept: the filtered,
   ordered rows of one query shape (entity, filter, order) over one set of parsed files, as
   tuples of field values with the warnings building them gave. A further page of the same
   shape (the next window of an export, the next GraphQL page) is a slice of it, turned into
   fresh dicts; the newest :data:`KEPT` selections are kept (together at most
   :data:`KEPT_ROWS` rows), and a file read again (another version, or its TTL over) makes a
   new one.

Options (``Source.json`` merged with the configuration): ``url`` (a listing URL or a list of
them) or ``directory`` (a local folder, searched recursively; relative to the working
directory), ``ttl`` (listing, seconds), ``fileTtl`` (a parsed file version, seconds),
``timeout`` (seconds), ``concurrency`` (upstream requests at once: the register's guard, 4 by
default). HTTP goes through :class:`resolvers.transport.Transport`.

CPU-heavy steps run in a worker thread, so the event loop keeps serving other requests: a
file larger than :data:`OFFLOAD_BYTES` is parsed there, and a query whose files hold more than
:data:`OFFLOAD_ROWS` rows is answered (rows built, filtered, ordered) there. The worker only
reads the parsed files (immutable) and the query's own warning log; caches, the per-query memo
and the logged-warnings set are written on the loop once it returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.history.instants import before_history, in_utc, required
from gateway.model.datamodel import Entity, Register
from gateway.model.errors import DescriptorError, UpstreamError
from gateway.model.filters import equal_values, predicate
from gateway.model.query import Filter, Page, Query, Row, SortKey
from gateway.sources import upstream_budget
from gateway.sources.port import REGISTRATION, Services, Source
from resolvers.transport import Transport
from resolvers.wahldaten_csv.describe import WahldatenDescriber
from resolvers.wahldaten_csv.history import BERLIN, FOLDER, HistoryUpstream, published_at
from resolvers.wahldaten_csv.names import (
    ENTITY_DATASETS,
    IDENTITY_ORDER,
    FileName,
    newest_versions,
    parse_file_name,
)
from resolvers.wahldaten_csv.options import parse as parse_options
from resolvers.wahldaten_csv.parse import DataWarning, Table, WarningLog, read_table
from resolvers.wahldaten_csv.rows import (
    DERIVED,
    ENTITY_DATASET,
    Election,
    Sheet,
    StimmeFilter,
    build_sheet,
    election_prefix,
    entity_rows,
    partei_of,
    stimme_rows,
)
from resolvers.wahldaten_csv.upstream import (
    DirectoryUpstream,
    HttpUpstream,
    Listing,
    RemoteFile,
    Upstream,
)

__all__ = ["KEPT", "KEPT_ROWS", "WahldatenSource", "answer", "select"]

log = logging.getLogger(__name__)

# The datasets each entity reads, the first giving its rows.
NEEDS = ENTITY_DATASETS
# Fields whose values start with the ``wahl`` identity (join keys), by source name.
KEYED = ("wahl", *sorted(DERIVED - {"wahl", "datei", "zeile"}))

# A file at least this large is parsed in a worker thread; smaller ones inline (a thread
# hop costs more than parsing them).
OFFLOAD_BYTES = 64 * 1024
# A query whose files hold at least this many rows (vote rows: rows times vote columns) is
# answered in a worker thread.
OFFLOAD_ROWS = 2_000
# How many large answers (selections) are kept for their further pages, and how many rows
# they may hold together (a whole Stimme set, 170,000 rows, takes about 30 MB); the newest
# is kept whatever its size.
KEPT = 4
KEPT_ROWS = 400_000


@dataclass(frozen=True, slots=True)
class _Version:
    """The file chosen for one dataset of one publication."""

    file: RemoteFile
    name: FileName
    upstream: Upstream


@dataclass(frozen=True, slots=True)
class _Publication:
    """One election's newest files, by dataset."""

    election: Election
    files: Mapping[str, _Version]


@dataclass(frozen=True, slots=True)
class _Selection:
    """The filtered, ordered rows of one query shape over one set of parsed files.

    ``rows`` hold each row's values in the order of ``names``; ``sheets`` are the files they
    were built from (held, so that the identities in the selection's key stay theirs).
    """

    sheets: tuple[Sheet, ...]
    names: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    warnings: tuple[DataWarning, ...]

    def page(self, query: Query) -> Page:
        """``query``'s slice, as fresh dicts."""
        total = len(self.rows)
        end = None if query.limit is None else query.offset + query.limit
        names = self.names
        chosen = self.rows[query.offset : end]
        rows: list[Row] = [dict(zip(names, values, strict=True)) for values in chosen]
        return Page(rows=rows, has_more=end is not None and total > end, total=total)


class WahldatenSource(Source):
    """Answers DE queries from Offene Wahldaten CSV files."""

    kind = "wahldaten-csv"
    # Every file read is kept in the history: a query at a registreringstid reads the files
    # published by then (resolvers/wahldaten_csv/history.py).
    keeps_history = True
    # The files hold rows of their dataset's entity: the register's events (describe.py).
    describes_files = True

    def __init__(self, register: Register, options: Mapping[str, Any], services: Services) -> None:
        super().__init__(register, options, services)
        settings = parse_options(options)
        self._urls = list(settings.urls)
        if not self._urls and settings.directory is None:
            raise DescriptorError("DE Source.json needs a 'url' or a 'directory'")
        self._directory = Path(settings.directory) if settings.directory else None
        self._listing_ttl = settings.ttl
        self._file_ttl = settings.file_ttl
        # A cut-off file is invalid data: its rows must not be taken for the whole file.
        self.transport = Transport(self, follow_redirects=True, cut_off_invalid=True)
        self._upstreams: list[Upstream] = []
        self._stale: dict[str, Listing] = {}
        self._logged: set[tuple[str, str, str]] = set()
        self._validated: dict[str, tuple[str, Sheet]] = {}
        self._kept: dict[tuple[Any, ...], _Selection] = {}
        zone = options.get("timeZone")
        self._zone: dt.tzinfo = ZoneInfo(str(zone)) if zone else BERLIN

    async def start(self) -> None:
        """Open the HTTP client (for ``url``) and set up the folders to read."""
        if self._upstreams:
            return
        if self._urls:
            await self.transport.start()
            self._upstreams = [HttpUpstream(u, self.transport) for u in self._urls]
        elif self._directory is not None:
            self._upstreams = [DirectoryUpstream(self._directory)]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.transport.aclose()
        self._upstreams = []

    def describer(self) -> WahldatenDescriber:
        """The rows of this register's file versions (its events)."""
        return WahldatenDescriber(self.register)

    def _entity(self, name: str) -> Entity:
        return self.register.datamodel.entities[name]

    async def fetch(self, query: Query) -> Page:
        """Read the files ``query`` needs and answer it in memory."""
        await self.start()
        entity = query.entity
        if entity.name not in NEEDS:
            raise DescriptorError(f"DE has no dataset for entity {entity.name!r}")
        notes = WarningLog()
        memo: dict[str, Sheet] = {}  # a file read once per query, whatever its cache TTL
        instant = query.options.get(REGISTRATION) if query.options else None
        upstreams = self._upstreams
        if instant is not None:
            before = await self._before_history(query, instant)
            if before is not None:
                return before
            upstreams = [self._history_upstream(instant)]
        publications = await self._publications(notes, memo, upstreams)
        chosen = _select(publications, query.where, entity)
        sheets = await self._sheets(chosen, NEEDS[entity.name], memo)
        if _work(sheets.values()) >= OFFLOAD_ROWS:
            page = await self._kept_page(query, chosen, sheets, notes)
        else:
            page = self._answer(query, chosen, sheets, notes)
        warnings = notes.freeze()
        self._log(warnings)
        page.notices.extend(warning.as_notice() for warning in warnings)
        return page

    async def file_versions(self) -> dict[tuple[str, str], str]:
        """(election, dataset) → the file served now; change detection compares these."""
        await self.start()
        publications = await self._publications(WarningLog(), {})
        return {
            (p.election.wahl, dataset): version.file.name
            for p in publications
            for dataset, version in p.files.items()
        }

    # -- listing and elections ------------------------------------------------------------

    def _history_upstream(self, instant: dt.datetime) -> HistoryUpstream:
        history = required(self.services.history, self.register.name)
        return HistoryUpstream(history, self.register.name, in_utc(instant))

    async def _before_history(self, query: Query, instant: dt.datetime) -> Page | None:
        """The answer when the history cannot answer at ``instant`` (None: it can)."""
        history = required(self.services.history, self.register.name)
        instant = in_utc(instant)
        known = await history.known_from(self.register.name)
        if known is not None and instant >= known:
            return None
        notice = before_history(self.register.name, instant, known)
        total = 0 if query.count else None
        return Page(rows=[], has_more=False, total=total, notices=[notice])

    def _record(self, name: str, data: bytes) -> None:
        """Keep a file just read in the history, as published at its Zeitstempel."""
        history = self.services.history
        if history is None or not data:
            return
        seen = dt.datetime.now(dt.UTC)
        when = published_at(name, seen, self._zone)
        history.record(self.register.name, f"{FOLDER}/{name}", data, None, when, seen)

    async def _publications(
        self,
        notes: WarningLog,
        memo: dict[str, Sheet],
        upstreams: list[Upstream] | None = None,
    ) -> list[_Publication]:
        versions: list[_Version] = []
        for upstream in self._upstreams if upstreams is None else upstreams:
            listing = await self._listing(upstream, notes)
            notes.extend(listing.warnings)
            versions.extend(self._named(upstream, listing, notes))
        newest = newest_versions(v.name for v in versions)
        by_name = {(v.name.group, v.name.dataset, v.name.name): v for v in versions}
        groups: dict[str, dict[str, _Version]] = {}
        for (group, dataset), name in newest.items():
            groups.setdefault(group, {})[dataset] = by_name[(group, dataset, name.name)]
        upstream_budget.spend(len(groups), f"{len(groups)} DE files naming their election")
        elections = await asyncio.gather(
            *(self._election(files, notes, memo) for files in groups.values())
        )
        return _merge(zip(elections, groups.values(), strict=True))

    async def _listing(self, upstream: Upstream, notes: WarningLog) -> Listing:
        key = f"wahldaten:listing:{upstream.label}"
        try:
            listing = await self.services.cache.get_or_fetch(
                key, lambda: self.guard.run(upstream.listing), self._listing_ttl
            )
        except UpstreamError as exc:
            stale = self._stale.get(upstream.label)
            if stale is None:
                raise
            notes.add(
                "STALE_LISTING",
                f"the listing could not be read ({exc.message}); the last one read is used",
                upstream.label,
            )
            return stale
        self._stale[upstream.label] = listing
        return listing

    @staticmethod
    def _named(upstream: Upstream, listing: Listing, notes: WarningLog) -> Iterator[_Version]:
        for file in listing.files:
            name = parse_file_name(file.name)
            if name is None:
                notes.add(
                    "NOT_A_DATASET",
                    "the file name names none of the five datasets; the file was ignored",
                    file.name,
                )
                continue
            yield _Version(file, name, upstream)

    async def _election(
        self, files: Mapping[str, _Version], notes: WarningLog, memo: dict[str, Sheet]
    ) -> Election:
        """The election a publication's files are about, read from the first file naming it."""
        for dataset in IDENTITY_ORDER:
            version = files.get(dataset)
            if version is None:
                continue
            sheet = await self._sheet(version, dataset, memo)
            for gs, day, name in sheet.identities:
                if gs and day and name:
                    return Election(gs, day, name, version.file.name)
        fallback = next(iter(files.values()))
        said = fallback.name
        notes.add(
            "NO_IDENTITY",
            "no file of this publication names its election; the file name was used",
            fallback.file.name,
        )
        return Election(said.ags or "", said.day or "", said.election or said.group, said.name)

    # -- reading files ----------------------------------------------------------------------

    async def _sheets(
        self, publications: list[_Publication], datasets: tuple[str, ...], memo: dict[str, Sheet]
    ) -> dict[tuple[str, str], Sheet]:
        jobs = [
            (publication.election.wahl, dataset, publication.files[dataset])
            for publication in publications
            for dataset in datasets
            if dataset in publication.files
        ]
        sheets = await asyncio.gather(*(self._sheet(version, ds, memo) for _, ds, version in jobs))
        return {(wahl, ds): sheet for (wahl, ds, _), sheet in zip(jobs, sheets, strict=True)}

    async def _sheet(self, version: _Version, dataset: str, memo: dict[str, Sheet]) -> Sheet:
        file = version.file
        key = f"wahldaten:sheet:{dataset}:{file.location}\x00{file.version}"
        if key in memo:
            return memo[key]
        # A listing without versions (a plain HTML index) cannot tell a changed file: such
        # files are revalidated with their ETag as often as the listing is read.
        ttl = self._file_ttl if file.version else self._listing_ttl

        async def load() -> Sheet:
            known = self._validated.get(key)
            # At most ``concurrency`` in flight: the guard's limit.
            fetched = await self.guard.run(
                lambda: version.upstream.read(file, known[0] if known else None)
            )
            if fetched.data is None and known is not None:
                return known[1]
            data = fetched.data or b""
            if not isinstance(version.upstream, HistoryUpstream):
                self._record(file.name, data)
            if len(data) >= OFFLOAD_BYTES:
                sheet = await asyncio.to_thread(self._convert, data, file.name, dataset)
            else:
                sheet = self._convert(data, file.name, dataset)
            self._log(sheet.warnings)
            if not file.version and fetched.etag:
                self._validated[key] = (fetched.etag, sheet)
            return sheet

        sheet = memo[key] = await self.services.cache.get_or_fetch(
            key, load, ttl, **self.cache_windows()
        )
        return sheet

    def _convert(self, data: bytes, name: str, dataset: str) -> Sheet:
        entity = self._entity(_entity_of(dataset))
        vote_type = None
        if dataset == "Wahlergebnisse":
            vote_type = self._entity("Stimme").by_source["anzahl"].type
        try:
            table = read_table(data, name)
        except ValueError as exc:
            empty = Table(name, (), (), (DataWarning("EMPTY_FILE", str(exc), name),))
            return build_sheet(empty, entity, dataset, vote_type)
        return build_sheet(table, entity, dataset, vote_type)

    # -- rows -----------------------------------------------------------------------------

    def _answer(
        self,
        query: Query,
        publications: list[_Publication],
        sheets: Mapping[tuple[str, str], Sheet],
        notes: WarningLog,
    ) -> Page:
        """The page of ``query``: pure work on parsed files (may run in a worker thread)."""
        rows = self._rows(query.entity, query.where, publications, sheets, notes)
        return answer(rows, query)

    async def _kept_page(
        self,
        query: Query,
        publications: list[_Publication],
        sheets: Mapping[tuple[str, str], Sheet],
        notes: WarningLog,
    ) -> Page:
        """The page of a large answer: a slice of the kept selection, built (in a worker
        thread) and kept when there is none for this query shape and these files.
        """
        used = tuple(sheets.values())
        key = (
            query.entity.name,
            repr(query.where),
            query.order,
            tuple(p.election for p in publications),
            tuple((wahl, dataset, id(sheet)) for (wahl, dataset), sheet in sheets.items()),
        )
        selection = self._kept.pop(key, None)
        if selection is None:
            built = await asyncio.to_thread(self._select, query, publications, sheets, used)
            if isinstance(built, tuple):  # rows of different shapes: not kept
                page, warnings = built
                notes.extend(warnings)
                return page
            selection = built
        self._kept[key] = selection  # the newest last
        held = sum(len(kept.rows) for kept in self._kept.values())
        while len(self._kept) > KEPT or (held > KEPT_ROWS and len(self._kept) > 1):
            held -= len(self._kept.pop(next(iter(self._kept))).rows)
        notes.extend(selection.warnings)
        return selection.page(query)

    def _select(
        self,
        query: Query,
        publications: list[_Publication],
        sheets: Mapping[tuple[str, str], Sheet],
        used: tuple[Sheet, ...],
    ) -> _Selection | tuple[Page, tuple[DataWarning, ...]]:
        """All rows of ``query``'s shape, filtered and ordered (may run in a worker thread);
        the page itself and the warnings when the rows do not all have the same fields.
        """
        built = WarningLog()
        rows = self._rows(query.entity, query.where, publications, sheets, built)
        selected = select(rows, query)
        names = tuple(selected[0]) if selected else ()
        values: list[tuple[Any, ...]] = []
        for row in selected:
            if tuple(row) != names:
                return _slice(selected, query), built.freeze()
            values.append(tuple(row.values()))
        return _Selection(used, names, values, built.freeze())

    def _rows(
        self,
        entity: Entity,
        where: Filter | None,
        publications: list[_Publication],
        sheets: Mapping[tuple[str, str], Sheet],
        notes: WarningLog,
    ) -> Iterator[Row]:
        want = StimmeFilter.of(where, entity) if entity.name == "Stimme" else None
        for publication in publications:
            election = publication.election
            sheet = sheets.get((election.wahl, NEEDS[entity.name][0]))
            if sheet is None:
                continue
            notes.extend(sheet.warnings)
            if want is None:
                yield from entity_rows(sheet, entity, election, notes)
                continue
            areas = sheets.get((election.wahl, "Wahlgebietseinteilungen"))
            ballots = sheets.get((election.wahl, "Stimmzettel"))
            position = self._entity("Stimmzettel").by_source["stimmzettel-position"].name
            yield from stimme_rows(
                sheet, entity, election, _ballot_areas(areas), _parties(ballots, position), want
            )

    def _log(self, warnings: Iterable[DataWarning]) -> None:
        for warning in warnings:
            key = (warning.file, warning.code, warning.column)
            if key not in self._logged:
                self._logged.add(key)
                log.warning("DE data warning: %s", warning)


def answer(rows: Iterable[Row], query: Query) -> Page:
    """Filter, order and slice rows as :func:`gateway.model.filters.apply_in_memory` does."""
    return _slice(select(rows, query), query)


def select(rows: Iterable[Row], query: Query) -> list[Row]:
    """The rows ``query``'s filter keeps, in its order.

    The rows' values are already typed (integers, ISO 8601 text, which sorts like the time it
    stands for), so they sort by plain keys, one stable pass per sort key from the last, instead
    of pairwise comparisons: a whole Stimme set (170,000 rows) in a fraction of the time.
    """
    if query.where is None:
        selected = list(rows)
    else:
        test = predicate(query.where, query.entity)
        selected = [row for row in rows if test(row)]
    for keys in reversed(_runs(query.order)):
        selected = _sorted(selected, keys)
    return selected


def _sorted(rows: list[Row], keys: tuple[SortKey, ...]) -> list[Row]:
    """``rows`` stably sorted by ``keys`` (all of one direction), nulls first ascending."""
    reverse = keys[0].descending
    try:
        # By the plain values: comparing a null with a value raises (as does a missing
        # field), so a sort that finishes made only the comparisons the null-aware key makes,
        # with the same outcomes, and gives the same order.
        return sorted(rows, key=itemgetter(*(key.field for key in keys)), reverse=reverse)
    except (TypeError, KeyError):
        return sorted(rows, key=_sort_key(keys), reverse=reverse)


def _runs(order: tuple[SortKey, ...]) -> list[tuple[SortKey, ...]]:
    """``order`` cut into runs of keys of the same direction: a stable sort by a run's keys
    together orders as stable sorts by each of them from the last would.
    """
    runs: list[list[SortKey]] = []
    for key in order:
        if runs and runs[-1][0].descending == key.descending:
            runs[-1].append(key)
        else:
            runs.append([key])
    return [tuple(run) for run in runs]


def _slice(selected: list[Row], query: Query) -> Page:
    total = len(selected)
    end = None if query.limit is None else query.offset + query.limit
    return Page(
        rows=selected[query.offset : end], has_more=end is not None and total > end, total=total
    )


def _sort_key(keys: tuple[SortKey, ...]) -> Callable[[Row], tuple[Any, ...]]:
    # Nulls first ascending and, the pass being reversed, last descending: each value comes
    # after whether it is there, so a null never meets a value.
    if len(keys) == 1:
        name = keys[0].field

        def value(row: Row) -> tuple[Any, ...]:
            item = row.get(name)
            return (item is not None, item)

        return value
    names = [key.field for key in keys]

    def values(row: Row) -> tuple[Any, ...]:
        out: list[Any] = []
        for name in names:
            item = row.get(name)
            out += (item is not None, item)
        return tuple(out)

    return values


def _work(sheets: Iterable[Sheet]) -> int:
    """About how many rows answering from ``sheets`` builds (a vote row per vote column)."""
    return sum(len(sheet.rows) * max(1, len(sheet.letters)) for sheet in sheets)


def _entity_of(dataset: str) -> str:
    return next(e for e, d in ENTITY_DATASET.items() if d == dataset and e != "Stimme")


def _merge(found: Iterable[tuple[Election, Mapping[str, _Version]]]) -> list[_Publication]:
    """One publication per election: files of several publications of the same election are
    pooled, the newest version of each dataset winning.
    """
    merged: dict[str, tuple[Election, dict[str, _Version]]] = {}
    for election, files in found:
        _, pool = merged.setdefault(election.wahl, (election, {}))
        for dataset, version in files.items():
            seen = pool.get(dataset)
            if seen is None or version.name.order > seen.name.order:
                pool[dataset] = version
    return [_Publication(election, files) for election, files in merged.values()]


def _select(
    publications: list[_Publication], where: Filter | None, entity: Entity
) -> list[_Publication]:
    """The publications a filter can match: by ``wahl`` and by the ``wahl|…`` join keys."""
    chosen = publications
    for source in KEYED:
        field = entity.by_source.get(source)
        values = None if field is None else equal_values(where, field.name)
        if values is None:
            continue
        texts = {str(v) for v in values if v is not None}
        if source == "wahl":
            chosen = [p for p in chosen if p.election.wahl in texts]
        else:
            chosen = [p for p in chosen if _any_prefix(texts, election_prefix(p.election.wahl))]
    return chosen


def _any_prefix(texts: set[str], prefix: str) -> bool:
    return any(text.startswith(prefix) for text in texts)


def _ballot_areas(sheet: Sheet | None) -> dict[str, str | None]:
    """bezirk-nr → the district's stimmzettel-gebiet-nr (None for a placeholder)."""
    if sheet is None:
        return {}
    return {joins["bezirk-nr"] or "": joins["stimmzettel-gebiet-nr"] for joins in sheet.joins}


def _parties(sheet: Sheet | None, field: str) -> dict[tuple[str | None, int], str | None]:
    """(stimmzettel-gebiet-nr, position) → the party's join text (``field``: the position)."""
    if sheet is None:
        return {}
    out: dict[tuple[str | None, int], str | None] = {}
    for row, joins in zip(sheet.rows, sheet.joins, strict=True):
        position = row.get(field)
        if isinstance(position, int):
            out[(joins["stimmzettel-gebiet-nr"], position)] = partei_of(joins)
    return out
