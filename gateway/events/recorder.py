"""Recording registers without gaps: the history is kept whether or not anyone queries.

For each register named in ``[history] record`` (``"FT"``: every entity with change events;
``"FT.Aktør"``: that entity only), the recorder subscribes to the change feed
of every entity that has one (:mod:`gateway.events.bus`), so the register is polled on the
feed's own schedule (``eventsInterval``) — with several processes, by the one that leads the
feed — and each change is recorded by the source that reads it (the leader) or receives it
(the others, :meth:`gateway.sources.changes.Detector.received`). Before that, an entity the
history holds nothing of is read whole once (complete rows, past the cache), so the history
starts from a complete picture rather than from the first change.

Progress is logged per entity; a failure of one entity's first read is logged and retried
on the next start, and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from gateway.events.bus import Feed, bus_for
from gateway.history.store import HistoryStore
from gateway.sources import kinds
from gateway.sources.cache import Cache
from gateway.sources.port import Source

__all__ = ["Recorder"]

log = logging.getLogger("gateway.history.recorder")


class Recorder:
    """Keeps the named registers' change feeds open and their entities read once."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        cache: Cache | None,
        history: HistoryStore,
        registers: Sequence[str],
    ) -> None:
        self.sources = sources
        self.cache = cache
        self.history = history
        # register -> the entities named (None: every one with change events)
        self.registers: dict[str, set[str] | None] = {}
        for spec in registers:
            register, _, entity = spec.partition(".")
            named = self.registers.get(register, set())
            if not entity or named is None:
                self.registers[register] = None
            else:
                self.registers[register] = named | {entity}
        # The rows each entity's first read at start read (whole, or since the newest kept).
        self.read_whole: dict[tuple[str, str], int] = {}
        self._feeds: list[Feed] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._readers: list[asyncio.Task[None]] = []

    def entities(self, register: str) -> list[str]:
        """The recorded entities of ``register`` (those with change events)."""
        source = self.sources[register]
        detector = kinds.detector(str(source.options.get("kind", "")))
        found = [] if detector is None else detector.entities(source.register)
        named = self.registers.get(register)
        return found if named is None else [e for e in found if e in named]

    async def start(self) -> None:
        """Subscribe to every recorded entity, then read the unrecorded ones in the background."""
        bus = bus_for(self.sources, self.cache)
        for register in self.registers:
            for entity in self.entities(register):
                feed = bus.feed(register, entity)
                self._feeds.append(feed)
                self._tasks.append(asyncio.create_task(self._drain(feed)))
            self._readers.append(asyncio.create_task(self._first_reads(register)))

    async def _drain(self, feed: Feed) -> None:
        # The changes are recorded where they are read or received; nothing else to do.
        while True:
            await feed.next()

    async def _first_reads(self, register: str) -> None:
        source = self.sources[register]
        name = source.register.name
        for entity_name in self.entities(register):
            entity = source.register.datamodel.entities[entity_name]
            # Nothing kept: the whole entity. Kept: what changed while nobody recorded it.
            since = None
            if await self.history.rows_known_from(name, entity_name) is not None:
                since = await self.history.rows_newest(name, entity_name)
            try:
                count = await source.read_for_history(entity, since)
            except Exception as exc:  # an upstream failure: the next start tries again
                log.warning("history: reading %s %s failed: %s", register, entity_name, exc)
                continue
            self.read_whole[(register, entity_name)] = count
            what = "whole" if since is None else f"since {since.isoformat()}"
            log.info("history: %s %s read %s (%d rows)", register, entity_name, what, count)
        await self.history.flush()

    async def aclose(self) -> None:
        """Stop reading and leave the feeds."""
        tasks = [*self._readers, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._readers.clear()
        for feed in self._feeds:
            await feed.aclose()
        self._feeds.clear()

    async def settled(self) -> None:
        """Wait until the first complete reads are done (for tests and the demo)."""
        if self._readers:
            await asyncio.gather(*self._readers)
