"""Paging VALG rows in key order with bounded memory.

Documents are visited in key order and turned into rows one at a time, a few downloads
ahead. How many rows of an entity a file yields under a filter is remembered (a named file
never changes), so the next page skips the files before its window without reading them:
paging through a whole country reads each file about once and holds one page, a few
documents and the bounded content cache.

The rows of a served file version are built once and kept (:class:`RowCache`, bounded by
rows); a page filters the kept rows of the files in its window. The documents of a query in
key order are a :class:`Selection`, which the adapter keeps while the chosen files do not
change, so a warm page costs its slice of rows.

Rows of a file of at least :data:`OFFLOAD_BYTES` are built in a worker thread, as is ordering
at least :data:`OFFLOAD_ROWS` rows, so the event loop keeps serving other requests. The worker
only reads the parsed content (shared through the content cache) and returns new rows.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from collections import OrderedDict
from typing import Any

from gateway.model.filters import apply_in_memory, predicate
from gateway.model.query import Page, Query, Row
from resolvers.valg_sftp.codec import FileProblem
from resolvers.valg_sftp.rows import DocContext, RowPlan, build_rows
from resolvers.valg_sftp.store import FileMeta, ValgStore

__all__ = ["RowCache", "RowCounts", "Selected", "Selection", "page_rows"]

Selected = tuple[FileMeta, DocContext, RowPlan]

_AHEAD = 16

# A file at least this large is turned into rows in a worker thread; smaller ones inline.
OFFLOAD_BYTES = 64 * 1024
# At least this many rows are filtered and ordered in a worker thread.
OFFLOAD_ROWS = 5_000
# Filters whose row counts a selection keeps.
_KEPT_FILTERS = 64


class RowCounts:
    """Matching-row counts per (file, entity, filter), least recently used first out."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, str, str], int] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> int | None:
        """The remembered count, or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[str, str, str], value: int) -> None:
        """Remember a count (the oldest is forgotten beyond the limit)."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)


class RowCache:
    """The rows of an entity per served file version (unfiltered, in key order), least
    recently used first out, bounded by the number of rows held."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.rows = 0
        self._items: OrderedDict[tuple[DocContext, str], list[Row]] = OrderedDict()

    def get(self, key: tuple[DocContext, str]) -> list[Row] | None:
        """The kept rows, or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[DocContext, str], rows: list[Row]) -> None:
        """Keep a file's rows (the oldest are forgotten beyond the limit)."""
        if len(rows) > self.limit or key in self._items:
            return
        self._items[key] = rows
        self.rows += len(rows)
        while self.rows > self.limit:
            _, old = self._items.popitem(last=False)
            self.rows -= len(old)


class Selection:
    """The documents a query reads, in key order (kept by the adapter while unchanged), and
    how many rows each yields per entity and filter, as far as known."""

    def __init__(self, selected: list[Selected]) -> None:
        self.selected = selected
        self._counts: OrderedDict[str, list[int | None]] = OrderedDict()
        self._ends: dict[str, list[int]] = {}

    def counts(self, key: str) -> list[int | None]:
        """The known matching-row counts per document under ``key`` (entity and filter)."""
        found = self._counts.get(key)
        if found is not None:
            self._counts.move_to_end(key)
            return found
        found = [None] * len(self.selected)
        self._counts[key] = found
        while len(self._counts) > _KEPT_FILTERS:
            old, _ = self._counts.popitem(last=False)
            self._ends.pop(old, None)
        return found

    def ends(self, key: str) -> list[int] | None:
        """The matching rows up to and including each document, once every count is known."""
        ends = self._ends.get(key)
        if ends is None:
            counts = self._counts.get(key)
            if counts is None or any(c is None for c in counts):
                return None
            ends = list(itertools.accumulate(c or 0 for c in counts))
            self._ends[key] = ends
        return ends


class _Loader:
    """Contents of the selected documents, fetched a few ahead of the one being read."""

    def __init__(
        self,
        store: ValgStore,
        selected: list[Selected],
        notices: list[dict[str, Any]],
        cache: RowCache,
    ) -> None:
        self.store = store
        self.selected = selected
        self.notices = notices
        self.cache = cache
        self._tasks: dict[int, asyncio.Task[Any]] = {}

    async def _one(self, meta: FileMeta) -> Any:
        try:
            return await self.store.content(meta)
        except FileProblem as problem:
            notice = {"code": "VALG_FALLBACK", "file": meta.path, "served": None}
            self.notices.append({**notice, "reason": problem.reason})
            return None

    async def get(self, index: int, ahead: int = _AHEAD) -> Any:
        """Document ``index``, starting downloads of up to ``ahead - 1`` that follow it."""
        for other in range(index, min(index + max(1, ahead), len(self.selected))):
            if other not in self._tasks:
                meta, ctx, plan = self.selected[other]
                if other != index and self.cache.get((ctx, plan.entity.name)) is not None:
                    continue  # its rows are kept: its content is not needed
                self._tasks[other] = asyncio.ensure_future(self._one(meta))
        task = self._tasks.pop(index)
        return await task

    async def rows(self, index: int, query: Query, ahead: int = _AHEAD) -> list[Row] | None:
        """The rows of document ``index`` matching ``query`` in key order (None: the
        document could not be served)."""
        meta, ctx, plan = self.selected[index]
        key = (ctx, plan.entity.name)
        rows = self.cache.get(key)
        if rows is None:
            doc = await self.get(index, ahead)
            if doc is None:
                return None
            if meta.size >= OFFLOAD_BYTES:
                rows = await asyncio.to_thread(_rows, doc, ctx, plan)
            else:
                rows = _rows(doc, ctx, plan)
            self.cache.put(key, rows)
        if query.where is None:
            return rows
        test = predicate(query.where, query.entity)
        if len(rows) >= OFFLOAD_ROWS:
            return await asyncio.to_thread(lambda: [r for r in rows if test(r)])
        return [r for r in rows if test(r)]

    async def aclose(self) -> None:
        """Cancel the downloads started ahead that were not needed."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def _rows(doc: Any, ctx: DocContext, plan: RowPlan) -> list[Row]:
    """Every row of ``plan.entity`` in ``doc``, in key order."""
    rows = list(build_rows(plan, doc, ctx))
    rows.sort(key=lambda r: str(r.get("Noegle", "")))
    return rows


async def page_rows(
    store: ValgStore,
    query: Query,
    selection: Selection,
    notices: list[dict[str, Any]],
    counts: RowCounts,
    cache: RowCache,
) -> Page:
    """The page ``query`` asks for, from the ``selection``'s documents in key order.

    The rows of the page are the caller's own (copies of the kept rows)."""
    page = await _page(store, query, selection, notices, counts, cache)
    page.rows = [dict(row) for row in page.rows]
    return page


async def _page(
    store: ValgStore,
    query: Query,
    selection: Selection,
    notices: list[dict[str, Any]],
    counts: RowCounts,
    cache: RowCache,
) -> Page:
    loader = _Loader(store, selection.selected, notices, cache)
    try:
        entity = query.entity
        if not all(k.field in entity.key and not k.descending for k in query.order):
            # Another order needs every matching row first (memory grows with the matches).
            rows: list[Row] = []
            for index in range(len(selection.selected)):
                rows += await loader.rows(index, query) or ()
            if len(rows) >= OFFLOAD_ROWS:
                page = await asyncio.to_thread(apply_in_memory, rows, query, where=None)
            else:
                page = apply_in_memory(rows, query, where=None)
            page.notices = notices
            return page
        return await _key_ordered(loader, selection, query, counts)
    finally:
        await loader.aclose()


async def _key_ordered(
    loader: _Loader, selection: Selection, query: Query, counts: RowCounts
) -> Page:
    start = query.offset
    end = None if query.limit is None else query.offset + query.limit
    where = repr(query.where)
    entity = query.entity.name
    kept = selection.counts(f"{entity}\x00{where}")
    ends = selection.ends(f"{entity}\x00{where}")
    # Every count known: the documents wholly before the window are skipped at once.
    first = 0 if ends is None else bisect.bisect_right(ends, start)
    total = ends[first - 1] if ends is not None and first else 0
    window: list[Row] = []
    for index in range(first, len(selection.selected)):
        meta = selection.selected[index][0]
        key = (meta.path, entity, where)
        known = kept[index]
        if known is None:
            known = counts.get(key)
            kept[index] = known
        if known is not None:
            before_window = total + known <= start
            after_window = end is not None and total >= end
            if after_window and query.count and ends is not None:
                total = ends[-1]
                break
            if before_window or (after_window and query.count):
                total += known
                continue
            if after_window:
                if known:
                    return Page(window, has_more=True, total=None, notices=loader.notices)
                continue
        # Fetch ahead no further than the page can need (at least a row per document).
        needed = _AHEAD if end is None or query.count else end + 1 - total
        found = await loader.rows(index, query, min(_AHEAD, needed))
        rows = found or []
        if found is not None:
            counts.put(key, len(rows))
            kept[index] = len(rows)
        for row in rows:
            if total >= start and (end is None or total < end):
                window.append(row)
            total += 1
            if end is not None and total > end and not query.count:
                return Page(window, has_more=True, total=None, notices=loader.notices)
    has_more = end is not None and total > end
    return Page(window, has_more=has_more, total=total, notices=loader.notices)
