"""Paging VALG rows in key order with bounded memory.

Documents are visited in key order and turned into rows one at a time, a few downloads
ahead. How many rows of an entity a file yields under a filter is remembered (a named file
never changes), so the next page skips the files before its window without reading them:
paging through a whole country reads each file about once and holds one page, a few
documents and the bounded content cache.

Rows of a file of at least :data:`OFFLOAD_BYTES` are built in a worker thread, as is ordering
at least :data:`OFFLOAD_ROWS` rows, so the event loop keeps serving other requests. The worker
only reads the parsed content (shared through the content cache) and returns new rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

from gateway.model.filters import apply_in_memory, predicate
from gateway.model.query import Page, Query, Row
from resolvers.valg_sftp.codec import FileProblem
from resolvers.valg_sftp.rows import DocContext, RowPlan, build_rows
from resolvers.valg_sftp.store import FileMeta, ValgStore

__all__ = ["RowCounts", "Selected", "page_rows"]

Selected = tuple[FileMeta, DocContext, RowPlan]

_AHEAD = 16

# A file at least this large is turned into rows in a worker thread; smaller ones inline.
OFFLOAD_BYTES = 64 * 1024
# At least this many rows are filtered and ordered in a worker thread.
OFFLOAD_ROWS = 5_000


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


class _Loader:
    """Contents of the selected documents, fetched a few ahead of the one being read."""

    def __init__(
        self, store: ValgStore, selected: list[Selected], notices: list[dict[str, Any]]
    ) -> None:
        self.store = store
        self.selected = selected
        self.notices = notices
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
                meta = self.selected[other][0]
                self._tasks[other] = asyncio.ensure_future(self._one(meta))
        task = self._tasks.pop(index)
        return await task

    async def aclose(self) -> None:
        """Cancel the downloads started ahead that were not needed."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def _rows(query: Query, doc: Any, ctx: DocContext, plan: RowPlan) -> list[Row]:
    test = predicate(query.where, query.entity)
    rows = [r for r in build_rows(plan, doc, ctx) if test(r)]
    rows.sort(key=lambda r: str(r.get("Noegle", "")))
    return rows


async def _file_rows(
    query: Query, doc: Any, meta: FileMeta, ctx: DocContext, plan: RowPlan
) -> list[Row]:
    """:func:`_rows`, in a worker thread for a large file."""
    if meta.size >= OFFLOAD_BYTES:
        return await asyncio.to_thread(_rows, query, doc, ctx, plan)
    return _rows(query, doc, ctx, plan)


async def page_rows(
    store: ValgStore,
    query: Query,
    selected: list[Selected],
    notices: list[dict[str, Any]],
    counts: RowCounts,
) -> Page:
    """The page ``query`` asks for, from ``selected`` documents in key order."""
    loader = _Loader(store, selected, notices)
    try:
        entity = query.entity
        if not all(k.field in entity.key and not k.descending for k in query.order):
            # Another order needs every matching row first (memory grows with the matches).
            rows: list[Row] = []
            for index, (meta, ctx, plan) in enumerate(selected):
                doc = await loader.get(index)
                if doc is not None:
                    rows += await _file_rows(query, doc, meta, ctx, plan)
            if len(rows) >= OFFLOAD_ROWS:
                page = await asyncio.to_thread(apply_in_memory, rows, query, where=None)
            else:
                page = apply_in_memory(rows, query, where=None)
            page.notices = notices
            return page
        return await _key_ordered(loader, query, counts)
    finally:
        await loader.aclose()


async def _key_ordered(loader: _Loader, query: Query, counts: RowCounts) -> Page:
    start = query.offset
    end = None if query.limit is None else query.offset + query.limit
    where = repr(query.where)
    window: list[Row] = []
    total = 0
    for index, (meta, ctx, plan) in enumerate(loader.selected):
        key = (meta.path, query.entity.name, where)
        known = counts.get(key)
        if known is not None:
            before_window = total + known <= start
            after_window = end is not None and total >= end
            if before_window or (after_window and query.count):
                total += known
                continue
            if after_window:
                if known:
                    return Page(window, has_more=True, total=None, notices=loader.notices)
                continue
        # Fetch ahead no further than the page can need (at least a row per document).
        needed = _AHEAD if end is None or query.count else end + 1 - total
        doc = await loader.get(index, min(_AHEAD, needed))
        rows = [] if doc is None else await _file_rows(query, doc, meta, ctx, plan)
        if doc is not None:
            counts.put(key, len(rows))
        for row in rows:
            if total >= start and (end is None or total < end):
                window.append(row)
            total += 1
            if end is not None and total > end and not query.count:
                return Page(window, has_more=True, total=None, notices=loader.notices)
    has_more = end is not None and total > end
    return Page(window, has_more=has_more, total=total, notices=loader.notices)
