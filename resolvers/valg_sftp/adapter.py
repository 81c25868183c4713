"""The VALG adapter: election results from data.valg.dk over SFTP, verified and live.

Each entity of the VALG datamodel lives in one dataset folder of every election root (see
``Source.json`` ``datamodel.documents``). A query is answered by:

1. choosing the election roots (``Valgmappe``, ``Noegle``/``ForaelderNoegle`` filters; the
   roots of discarded elections, moved to the archive folder, are served like the live ones
   with ``Arkiveret`` true) and whether to read ``verifikation/`` (only when the filter names
   ``Verifikation`` explicitly with ``eq``/``in``: that folder holds fictitious test data);
2. choosing the entities to read: a filter on the dataset's identity field (e.g.
   ``AfstemningsomraadeDagiId``), on ``Kommunekode``, ``OpstillingskredsDagiId`` or
   ``Storkredsnummer`` (resolved through the root's geografi) or on keys narrows the files;
   which file holds which entity is learned from content, with the geografi names as hints
   for which to download first;
3. serving, per entity, the newest version that verifies (:mod:`resolvers.valg_sftp.store`);
   the choice for a whole folder is kept with its listing, and the documents in key order
   with it, so the next page does not choose again;
4. turning the documents into rows in key order, one document at a time, filtering in
   memory and stopping once the page is full (unless a total count is asked for): paging
   through a whole country holds one page plus the bounded content and row caches
   (:mod:`resolvers.valg_sftp.paging`: the rows of a file version are built once).

Notices (``VALG_FALLBACK``) tell the caller when an older version was served, and
``NOT_YET_AVAILABLE`` when no root asked publishes a dataset that says so in its ``absent``
(the referendum question, exported only when a referendum is held).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from gateway.history.instants import before_history, in_utc, required
from gateway.model.datamodel import Entity, Register
from gateway.model.errors import UpstreamInvalidError
from gateway.model.filters import apply_in_memory, equal_values
from gateway.model.query import Filter, Page, Query, Row
from gateway.sources.port import REGISTRATION, Services, Source
from resolvers.valg_sftp.client import SftpClient
from resolvers.valg_sftp.codec import (
    DocKey,
    FileProblem,
    decode_key,
    normalise_name,
    released_at,
)
from resolvers.valg_sftp.describe import ValgDescriber
from resolvers.valg_sftp.history import HistoryClient, registered_from
from resolvers.valg_sftp.options import entity_paths, guarded, inherit_spec, parse as parse_options
from resolvers.valg_sftp.paging import RowCache, RowCounts, Selection, page_rows
from resolvers.valg_sftp.rows import DocContext, RowPlan
from resolvers.valg_sftp.store import DocSpec, FileMeta, Hinter, ValgStore

__all__ = ["ValgSource"]

_ROOT = re.compile(r"^(?P<kind>.+)-(?P<id>\d+)-(?P<day>\d{2})-(?P<month>\d{2})-(?P<year>\d{4})$")
# The registers at an instant kept (each with its own choices and caches).
_INSTANTS_KEPT = 8
# Selections kept (one per distinct set of chosen folders a query reads).
_KEPT_SELECTIONS = 64
_VALGARTER = {
    v.casefold(): v
    for v in (
        "Europa-Parlamentsvalg",
        "Folketingsvalg",
        "Regionsrådsvalg",
        "Kommunalvalg",
        "Folkeafstemning",
    )
}


class ValgSource(Source):
    """Answers queries for the VALG register from a VALG SFTP server."""

    kind = "valg-sftp"

    keeps_history = True
    # Its file versions hold the document rows: the register's events (describe.py).
    describes_files = True

    def __init__(
        self,
        register: Register,
        options: Mapping[str, Any],
        services: Services,
        *,
        instant: dt.datetime | None = None,
    ) -> None:
        options = guarded(options)
        super().__init__(register, options, services)
        self._datamodel: Mapping[str, Any] = options.get("datamodel", {})
        self._specs = {
            str(spec["name"]): DocSpec.from_options(spec)
            for spec in self._datamodel.get("documents", ())
        }
        settings = parse_options(options)
        self._settings = settings
        self._describer: ValgDescriber | None = None
        self.instant = instant
        client: SftpClient | HistoryClient
        if instant is None:
            client = SftpClient(settings, self.guard, self.record, register.name)
        else:
            # The register as the history kept it at ``instant`` (see ``at``).
            assert services.history is not None
            folders = (settings.root, settings.archive)
            client = HistoryClient(services.history, register.name, instant, folders)
        self.sftp = client
        self.store = ValgStore(
            client,  # type: ignore[arg-type]  # HistoryClient: listdir and read alike
            services.cache,
            base=settings.root,
            archive=settings.archive,
            listing_ttl=settings.ttl,
            content_bytes=settings.content_cache_bytes,
            max_file_bytes=settings.max_file_bytes,
            namespace="" if instant is None else f"at:{instant.isoformat()}:",
            counted=instant is None,
        )
        if instant is None and services.history is not None:
            self.store.on_version = self._record
            self.store.on_gone = self._gone
        self._marking: set[asyncio.Task[int]] = set()
        self._instants: OrderedDict[dt.datetime, ValgSource] = OrderedDict()
        self._plans: dict[str, list[tuple[DocSpec, RowPlan]]] = {}
        self._counts = RowCounts()
        # Rows kept in proportion to the content kept (a kept row holds about 1 KiB).
        self._rows = RowCache(max(10_000, settings.content_cache_bytes // 1024))
        self._context_lists: dict[
            tuple[str, bool, str], tuple[list[FileMeta], bool, list[tuple[FileMeta, DocContext]]]
        ] = {}
        self._selections: OrderedDict[
            tuple[tuple[int, int], ...],
            tuple[list[tuple[list[tuple[FileMeta, DocContext]], RowPlan]], Selection],
        ] = OrderedDict()
        self.store.on_fallback = self._fallback
        self.store.cache_windows = self.cache_windows()

    def _fallback(self, reason: str) -> None:
        metrics = self.services.metrics
        if reason == "signature" and metrics is not None:
            metrics.signature_failures.labels(self.register.name).inc()

    @property
    def fallbacks(self) -> Counter[str]:
        """How many times a newest file was not served, by reason."""
        return self.store.fallbacks

    async def aclose(self) -> None:
        """Close the SFTP connection (deletions being written to the history first)."""
        if self._marking:
            await asyncio.gather(*self._marking, return_exceptions=True)
        await self.sftp.aclose()

    # -- history -----------------------------------------------------------------------

    def _record(self, path: str, data: bytes, signature: bytes | None, doc: Any) -> None:
        """Keep a version just read and verified in the history store."""
        history = self.services.history
        if history is None:
            return
        seen = dt.datetime.now(dt.UTC)
        when = registered_from(path, seen, lambda: released_at(doc))
        history.record(self.register.name, path, data, signature, when, seen)

    def _gone(self, paths: list[str], withdrawn: list[str]) -> None:
        """Files the server no longer lists: deleted in the history from now on (a version
        replaced by a newer one, or data withdrawn); the answers at earlier instants keep them.
        What was ``withdrawn`` (no newer version listed) is deleted in the events too."""
        history = self.services.history
        if history is None:
            return
        task = asyncio.get_running_loop().create_task(
            history.deleted(self.register.name, paths, dt.datetime.now(dt.UTC), withdrawn)
        )
        self._marking.add(task)
        task.add_done_callback(self._marking.discard)

    def describer(self) -> ValgDescriber:
        """The document rows of this register's file versions (its events)."""
        if self._describer is None:
            self._describer = ValgDescriber(self.register, self._datamodel)
        return self._describer

    def at(self, instant: dt.datetime) -> ValgSource:
        """This register as the history store kept it at ``instant`` (kept per instant)."""
        found = self._instants.get(instant)
        if found is None:
            found = ValgSource(self.register, self.options, self.services, instant=instant)
            if len(self._instants) >= _INSTANTS_KEPT:
                self._instants.popitem(last=False)
            self._instants[instant] = found
        else:
            self._instants.move_to_end(instant)
        return found

    async def _at(self, query: Query, instant: dt.datetime) -> Page:
        name = self.register.name
        history = required(self.services.history, name)
        instant = in_utc(instant)
        known = await history.known_from(name)
        if known is None or instant < known:
            notice = before_history(name, instant, known)
            return Page(rows=[], has_more=False, total=0 if query.count else None, notices=[notice])
        options = {k: v for k, v in query.options.items() if k != REGISTRATION}
        return await self.at(instant).fetch(replace(query, options=options))

    async def fetch(self, query: Query) -> Page:
        """Answer ``query`` from the files it needs (see the module docstring)."""
        instant = query.options.get(REGISTRATION) if query.options else None
        if instant is not None and self.instant is None:
            return await self._at(query, instant)
        try:
            if query.entity.name == "Valg":
                return await self._elections(query)
            return await self._fetch(query)
        except FileProblem as problem:
            raise UpstreamInvalidError(f"VALG: {problem}") from problem
        finally:
            self.requests = self.sftp.stats.listings + self.sftp.stats.downloads

    # -- elections ---------------------------------------------------------------------

    async def _elections(self, query: Query) -> Page:
        by_source = query.entity.by_source
        rows = []
        for root in await self.store.roots():
            match = _ROOT.match(root)
            if match is None:
                continue
            values = {
                "Noegle": root,
                "Valgmappe": root,
                "Arkiveret": self.store.archived(root),
                "Valgart": _VALGARTER.get(match["kind"].casefold(), match["kind"].capitalize()),
                "ValgId": int(match["id"]),
                "Valgdag": f"{match['year']}-{match['month']}-{match['day']}",
            }
            rows.append({by_source[k].name: v for k, v in values.items() if k in by_source})
        return apply_in_memory(rows, query)

    # -- planning ----------------------------------------------------------------------

    def _plan(self, entity: Entity) -> list[tuple[DocSpec, RowPlan]]:
        plans = self._plans.get(entity.name)
        if plans is not None:
            return plans
        try:
            located = entity_paths(self._datamodel, entity.name)
        except KeyError as exc:
            raise UpstreamInvalidError(f"VALG: no dataset holds {entity.name}") from exc
        by_document: dict[str, list[tuple[str, ...]]] = {}
        for document, path in located:
            by_document.setdefault(document, []).append(path)
        plans = []
        for document, paths in by_document.items():
            spec = self._specs[document]
            plan = RowPlan(
                entity, tuple(paths), inherit_spec(self._datamodel, document), spec.identity
            )
            plans.append((spec, plan))
        self._plans[entity.name] = plans
        return plans

    def _document_field(self, entity: Entity, spec: DocSpec, source: str) -> str | None:
        """The GraphQL name of ``source`` if ``entity`` carries the document's own value."""
        found = entity.by_source.get(source)
        if found is None:
            return None
        if entity.name == spec.name or source in inherit_spec(self._datamodel, spec.name).get(
            (), ()
        ):
            return found.name
        return None

    def _values(
        self, entity: Entity, spec: DocSpec, where: Filter | None, source: str
    ) -> set[str] | None:
        name = self._document_field(entity, spec, source)
        if name is None:
            return None
        values = equal_values(where, name)
        return None if values is None else {str(v) for v in values if v is not None}

    # -- selection ---------------------------------------------------------------------

    async def _fetch(self, query: Query) -> Page:
        notices: list[dict[str, Any]] = []
        pieces: list[tuple[list[tuple[FileMeta, DocContext]], RowPlan]] = []
        for spec, plan in self._plan(query.entity):
            for piece in await self._select(query.entity, spec, query.where, notices):
                pieces.append((piece, plan))
        selection = self._selection(pieces)
        return await page_rows(self.store, query, selection, notices, self._counts, self._rows)

    def _selection(
        self, pieces: list[tuple[list[tuple[FileMeta, DocContext]], RowPlan]]
    ) -> Selection:
        """The selected documents in key order, kept while every folder's choice is."""
        key = tuple((id(piece), id(plan)) for piece, plan in pieces)
        kept = self._selections.get(key)
        if kept is not None and all(
            a is b and p is q for (a, p), (b, q) in zip(kept[0], pieces, strict=True)
        ):
            self._selections.move_to_end(key)
            return kept[1]
        selected = [(meta, ctx, plan) for piece, plan in pieces for meta, ctx in piece]
        selected.sort(key=lambda item: item[1].key)
        selection = Selection(selected)
        kept_pieces = [kept[2] for kept in self._context_lists.values()]
        if all(any(piece is k for k in kept_pieces) for piece, _ in pieces):
            # Only a choice the store keeps (every file of a folder) is worth keeping here.
            self._selections[key] = (pieces, selection)
            while len(self._selections) > _KEPT_SELECTIONS:
                self._selections.popitem(last=False)
        return selection

    def _contexts(
        self,
        root: str,
        verification: bool,
        spec: DocSpec,
        metas: list[FileMeta],
        *,
        keep: bool,
    ) -> list[tuple[FileMeta, DocContext]]:
        """Each chosen file with where it comes from (``keep``: kept while the choice is)."""
        archived = self.store.archived(root)
        key = (root, verification, spec.name)
        kept = self._context_lists.get(key) if keep else None
        if kept is not None and kept[0] is metas and kept[1] == archived:
            return kept[2]
        out = [
            (
                m,
                DocContext(
                    root, verification, spec.folder, m.name, spec.file, m.identity, archived
                ),
            )
            for m in metas
        ]
        if keep:
            self._context_lists[key] = (metas, archived, out)
        return out

    async def _select(
        self, entity: Entity, spec: DocSpec, where: Filter | None, notices: list[dict[str, Any]]
    ) -> list[list[tuple[FileMeta, DocContext]]]:
        """The chosen files of ``spec`` for ``where``: one list per root and folder."""
        keys = _keys(entity, spec, where)
        roots = await self.store.roots()
        allowed = equal_values(where, "Valgmappe") if "Valgmappe" in entity.by_name else None
        if allowed is not None:
            roots = [r for r in roots if r in allowed]
        flags = _verification(entity, where)
        key_ids: set[str] | None = None
        if keys is not None:
            roots = [r for r in roots if r in {k.root for k in keys}]
            flags &= {k.verification for k in keys}
            key_ids = {k.identity for k in keys}
        out: list[list[tuple[FileMeta, DocContext]]] = []
        for root in roots:
            wanted = await self._wanted(entity, spec, where, root, key_ids, notices)
            if wanted is not None and not wanted:
                continue
            hinter = self._hinter(spec, root, notices) if wanted is not None else None
            for verification in sorted(flags):
                area = f"verifikation/{spec.folder}" if verification else spec.folder
                metas = await self.store.select(root, area, spec, wanted, hinter, notices)
                if metas:
                    keep = wanted is None or spec.file is not None
                    out.append(self._contexts(root, verification, spec, metas, keep=keep))
        if spec.absent and not out:
            notices.append(
                {"code": "NOT_YET_AVAILABLE", "dataset": spec.folder, "message": spec.absent}
            )
        return out

    async def _wanted(
        self,
        entity: Entity,
        spec: DocSpec,
        where: Filter | None,
        root: str,
        key_ids: set[str] | None,
        notices: list[dict[str, Any]],
    ) -> set[str] | None:
        """The identities a query can match in ``root`` (None: any)."""
        if spec.file is not None:
            return None  # geografi: one file holds every element
        wanted = key_ids
        if len(spec.identity) == 1:
            wanted = _meet(wanted, self._values(entity, spec, where, spec.identity[0]))
        if spec.hint == "afstemningsomraade":
            wanted = _meet(wanted, await self._areas(entity, spec, where, root, notices))
        elif spec.hint == "opstillingskreds":
            wanted = _meet(wanted, await self._kredse(entity, spec, where, root, notices))
        return wanted

    async def _areas(
        self,
        entity: Entity,
        spec: DocSpec,
        where: Filter | None,
        root: str,
        notices: list[dict[str, Any]],
    ) -> set[str] | None:
        """Afstemningsområder allowed by kommune/kreds filters, from the root's geografi."""
        kommuner = self._values(entity, spec, where, "Kommunekode")
        kredse = self._values(entity, spec, where, "OpstillingskredsDagiId")
        storkredse = self._values(entity, spec, where, "Storkredsnummer")
        if kommuner is None and kredse is None and storkredse is None:
            return None
        areas = await self._geografi(root, "Afstemningsområde", notices, anywhere=False)
        if areas is None:
            return None
        if storkredse is not None:
            kredse = _meet(kredse, await self._kredse_in(root, storkredse, notices))
            if kredse is None:
                return None
        return {
            str(a.get("Dagi_id"))
            for a in areas
            if (kommuner is None or str(a.get("Kommunekode")) in kommuner)
            and (kredse is None or str(a.get("Opstillingskreds_Dagi_id")) in kredse)
        }

    async def _kredse(
        self,
        entity: Entity,
        spec: DocSpec,
        where: Filter | None,
        root: str,
        notices: list[dict[str, Any]],
    ) -> set[str] | None:
        storkredse = self._values(entity, spec, where, "Storkredsnummer")
        if storkredse is None:
            return None
        return await self._kredse_in(root, storkredse, notices)

    async def _kredse_in(
        self, root: str, storkredse: set[str], notices: list[dict[str, Any]]
    ) -> set[str] | None:
        kredse = await self._geografi(root, "Opstillingskreds", notices, anywhere=False)
        if kredse is None:
            return None
        return {str(k.get("Dagi_id")) for k in kredse if str(k.get("Storkredskode")) in storkredse}

    async def _geografi(
        self, root: str, name: str, notices: list[dict[str, Any]], *, anywhere: bool
    ) -> list[dict[str, Any]] | None:
        """A geografi file's elements from ``root`` (or, for hints, from any root)."""
        spec = self._specs.get(name)
        if spec is None:
            return None
        roots = [root]
        if anywhere:
            roots += [r for r in reversed(await self.store.roots()) if r != root]
        for candidate in roots:
            metas = await self.store.select(candidate, spec.folder, spec, None, None, notices)
            if metas:
                doc = await self.store.content(metas[0])
                if isinstance(doc, list):
                    return [e for e in doc if isinstance(e, dict)]
        return None

    def _hinter(self, spec: DocSpec, root: str, notices: list[dict[str, Any]]) -> Hinter | None:
        """Which unidentified series probably hold which identity, by geografi names."""
        if spec.hint == "afstemningsomraade":
            return self._area_hinter(root, notices)
        if spec.hint == "opstillingskreds":
            return self._kreds_hinter(root, notices)
        return None

    def _area_hinter(self, root: str, notices: list[dict[str, Any]]) -> Hinter:
        async def hint(missing: set[str], unknown: list[str]) -> dict[str, set[str]] | None:
            own = await self._geografi(root, "Afstemningsområde", notices, anywhere=False)
            areas = own or await self._geografi(root, "Afstemningsområde", notices, anywhere=True)
            if areas is None:
                return None
            by_id = {str(a.get("Dagi_id")): a for a in areas}
            normal = {s: normalise_name(s) for s in unknown}
            out: dict[str, set[str]] = {}
            for identity in missing:
                area = by_id.get(identity)
                if area is None:
                    if own is not None:
                        out[identity] = set()  # not an area of this election
                    continue
                name = normalise_name(str(area.get("Navn")))
                candidates = {s for s, n in normal.items() if n.endswith(name)}
                if len(candidates) > 1:
                    # Same area name in several kommuner: the kommune's name decides.
                    kommune_names = await self._kommune_names(root, notices)
                    kommune = kommune_names.get(str(area.get("Kommunekode")), "")
                    candidates = _by_kommune(candidates, normal, kommune, name) or candidates
                if candidates:
                    out[identity] = candidates
            return out

        return hint

    async def _kommune_names(self, root: str, notices: list[dict[str, Any]]) -> dict[str, str]:
        kommuner = await self._geografi(root, "Kommune", notices, anywhere=True) or []
        return {str(k.get("Kode")): normalise_name(str(k.get("Navn"))) for k in kommuner}

    def _kreds_hinter(self, root: str, notices: list[dict[str, Any]]) -> Hinter:
        async def hint(missing: set[str], unknown: list[str]) -> dict[str, set[str]] | None:
            kredse = await self._geografi(root, "Opstillingskreds", notices, anywhere=True)
            if kredse is None:
                return None
            names = {str(k.get("Dagi_id")): normalise_name(str(k.get("Navn"))) for k in kredse}
            normal = {s: normalise_name(s) for s in unknown}
            out: dict[str, set[str]] = {}
            for identity in missing & names.keys():
                candidates = {s for s, n in normal.items() if n.endswith(names[identity])}
                if candidates:
                    out[identity] = candidates
            return out

        return hint

    # -- change detection (used by resolvers.valg_sftp.detector) --------------------------------

    def event_folders(self) -> dict[str, str]:
        """Entity → dataset folder, for the datasets published as one file per entity."""
        entities = self.register.datamodel.entities
        return {n: s.folder for n, s in self._specs.items() if s.file is None and n in entities}

    async def rows_of_files(
        self, entity: Entity, root: str, names: Iterable[str]
    ) -> list[tuple[str, list[Row]]]:
        """Per named file of ``entity``'s folder in ``root``: its path and its rows.

        For new file versions found by change detection. A file that would not be served
        (empty, unsigned, not verifying, gone) gives nothing.
        """
        spec = self._specs[entity.name]
        plan = next(p for s, p in self._plan(entity) if s.name == spec.name)
        entries = await self.store.listing(f"{root}/{spec.folder}")
        listed = [name for name in names if name in entries]
        found = await asyncio.gather(
            *(self.store._meta(root, spec.folder, spec, entries, name) for name in listed),
            return_exceptions=True,
        )
        out: list[tuple[str, list[Row]]] = []
        for meta in found:
            if isinstance(meta, FileProblem):
                continue
            if isinstance(meta, BaseException):
                raise meta
            ctx = DocContext(
                root,
                False,
                spec.folder,
                meta.name,
                spec.file,
                meta.identity,
                self.store.archived(root),
            )
            selection = Selection([(meta, ctx, plan)])
            page = await page_rows(
                self.store, Query(entity), selection, [], self._counts, self._rows
            )
            out.append((meta.path, page.rows))
        return out

    # -- rows --------------------------------------------------------------------------


def _by_kommune(candidates: set[str], normal: dict[str, str], kommune: str, name: str) -> set[str]:
    """The candidate series whose name also names the area's kommune."""
    if not kommune:
        return set()
    exact = {s for s in candidates if normal[s].endswith(f"{kommune}kommune{name}")}
    return exact or {s for s in candidates if kommune in normal[s][: -len(name) or None]}


def _meet(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _verification(entity: Entity, where: Filter | None) -> set[bool]:
    """Read verifikation/ only when the filter names ``Verifikation`` with eq/in."""
    field = entity.by_source.get("Verifikation")
    if field is None:
        return {False}
    values = equal_values(where, field.name)
    if values is None:
        return {False}
    return {bool(v) for v in values if v is not None}


def _keys(entity: Entity, spec: DocSpec, where: Filter | None) -> list[DocKey] | None:
    """Documents named by ``Noegle``/``ForaelderNoegle`` filters (None: not restricted)."""
    found: list[DocKey] | None = None
    for source in ("Noegle", "ForaelderNoegle"):
        field = entity.by_source.get(source)
        if field is None:
            continue
        values = equal_values(where, field.name)
        if values is None:
            continue
        decoded = [decode_key(v, spec.file is not None) for v in values]
        keys = [
            k
            for k in decoded
            if k is not None
            and k.folder == spec.folder
            and (spec.file is None or k.file == spec.file)
        ]
        found = keys if found is None else [k for k in found if k in keys]
    return found
