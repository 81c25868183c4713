"""The event bus of one gateway process: a watcher per register, a feed per subscriber.

See :mod:`gateway.sources.changes` for the whole picture. A :class:`Watcher` polls one register's
detector while anyone subscribes to that register (the first subscription starts it, the last
one to leave stops it) and hands each change to the :class:`Feed` of every subscriber of its
entity; with Redis it takes part in the election of the one process that polls
(:mod:`gateway.events.fanout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.sources import kinds
from gateway.sources.changes import Change, Detector

if TYPE_CHECKING:
    from gateway.events.fanout import SharedWatch
    from gateway.sources.cache import Cache
    from gateway.sources.port import Source

__all__ = ["FEED_CAPACITY", "EventBus", "Feed", "Watcher", "bus_for", "close_bus"]

log = logging.getLogger("gateway.sources.changes")

# Changes a subscriber may have waiting before the oldest are dropped.
FEED_CAPACITY = 1000


class Feed:
    """One subscriber's queue of the changes of one entity."""

    def __init__(self, watcher: Watcher, entity: str, capacity: int = FEED_CAPACITY) -> None:
        self.watcher = watcher
        self.entity = entity
        self.dropped = 0
        self._queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=capacity)

    def offer(self, change: Change) -> None:
        """Queue a change; a subscriber too slow to keep up loses the oldest ones."""
        if self._queue.full():
            self._queue.get_nowait()
            if not self.dropped:
                log.warning("events: a %s subscriber falls behind; dropping", self.entity)
            self.dropped += 1
        self._queue.put_nowait(change)

    async def next(self) -> Change:
        """The next change (waits for one)."""
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop receiving (the watcher stops when its last feed closes)."""
        await self.watcher.leave(self)


class Watcher:
    """Polls one register's detector while anyone subscribes, and fans its changes out."""

    def __init__(self, bus: EventBus, detector: Detector, shared: SharedWatch | None) -> None:
        self.bus = bus
        self.detector = detector
        self.register = detector.register.name
        options = detector.source.options
        self.interval = max(0.05, float(options.get("eventsInterval", detector.default_interval)))
        self.shared = shared
        self.feeds: dict[str, set[Feed]] = {}
        self.leading = shared is None
        self.polls = 0
        self.failures = 0
        self.delivered = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- subscribers -------------------------------------------------------------------

    def join(self, entity: str) -> Feed:
        """A feed of ``entity``'s changes; starts polling if this is the first."""
        feed = Feed(self, entity)
        if entity not in self.feeds:
            self._wake.set()  # a new entity gets its baseline soon
        self.feeds.setdefault(entity, set()).add(feed)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"events:{self.register}")
        return feed

    async def leave(self, feed: Feed) -> None:
        """Forget a feed; stop when none is left."""
        feeds = self.feeds.get(feed.entity)
        if feeds is not None:
            feeds.discard(feed)
            if not feeds:
                del self.feeds[feed.entity]
        if not self.feeds:
            await self.stop()
            if not self.feeds:  # nobody joined while it stopped
                self.bus.forget(self)

    def watched(self) -> frozenset[str]:
        """The entities subscribed to in this process."""
        return frozenset(self.feeds)

    def ready(self, entity: str) -> bool:
        """Whether this process polls and has the baseline of ``entity``."""
        return self.leading and self.detector.ready(entity)

    # -- polling -----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # Subscribers coming and going must not make the upstream be polled more often.
        gap = min(self.interval, 1.0)
        try:
            if self.shared is not None:
                await self.shared.start(self.deliver)
            while True:
                started = loop.time()
                try:
                    await self._tick()
                except Exception as exc:  # never let one bad tick end the watching
                    log.error("events: watching %s failed", self.register, exc_info=exc)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                    await asyncio.sleep(max(0.0, started + gap - loop.time()))
        finally:
            if self.shared is not None:
                await self.shared.stop()

    async def _tick(self) -> None:
        watched = self.watched()
        if self.shared is not None and self.shared.available:
            decided = await self.shared.coordinate(watched, self.interval, self.detector)
            if decided is None:
                self.leading = True  # Redis failed: serve this process's subscribers alone
            else:
                self.leading, watched = decided
                if not self.leading:
                    return
        else:
            self.leading = True
        try:
            changes = await self.detector.poll(watched)
        except Exception as exc:  # an upstream or parse failure: try again next time
            self.failures += 1
            log.warning("events: polling %s failed: %s", self.register, exc)
            return
        self.polls += 1
        if self.shared is not None and self.shared.available:
            await self.shared.save(self.detector.state())
        for change in changes:
            await self._publish(change)

    async def _publish(self, change: Change) -> None:
        if self.shared is not None and await self.shared.publish(change):
            return  # delivered here too, through the channel
        self.deliver(change, local=True)

    def deliver(self, change: Change, local: bool) -> None:
        """Hand a change to this process's subscribers of its entity."""
        if not local:
            self.detector.received(change)
        for feed in self.feeds.get(change.entity, ()):
            feed.offer(change)
            self.delivered += 1

    async def stop(self) -> None:
        """Stop polling and listening (releases the lock for another process)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.leading = self.shared is None


class EventBus:
    """The watchers of one gateway app's sources in this process."""

    def __init__(self, sources: Mapping[str, Source], cache: Cache | None) -> None:
        self.sources = sources
        self.redis = cache.redis if cache is not None else None
        prefix = cache.namespace if cache is not None else "dls:"
        self.namespace = f"{prefix}events:"
        self.watchers: dict[str, Watcher] = {}

    def feed(self, register: str, entity: str) -> Feed:
        """Subscribe to the changes of one entity (KeyError: the register has none)."""
        watcher = self.watchers.get(register)
        if watcher is None:
            source = self.sources[register]
            cls = kinds.detector(str(source.options.get("kind", "")))
            if cls is None:
                raise KeyError(register)
            detector = cls(source)
            watcher = self.watchers[register] = Watcher(self, detector, self._shared(register))
        return watcher.join(entity)

    def _shared(self, register: str) -> SharedWatch | None:
        if self.redis is None:
            return None
        from gateway.events.fanout import SharedWatch

        return SharedWatch(self.redis, f"{self.namespace}{register}:")

    def ready(self, register: str, entity: str) -> bool:
        """Whether this process polls ``register`` and has the baseline of ``entity``."""
        watcher = self.watchers.get(register)
        return watcher is not None and watcher.ready(entity)

    def forget(self, watcher: Watcher) -> None:
        """A watcher stopped: drop it (and the bus, when it was the last)."""
        if self.watchers.get(watcher.register) is watcher:
            del self.watchers[watcher.register]
        if not self.watchers:
            _BUSES.pop(id(self.sources), None)

    async def aclose(self) -> None:
        """Stop every watcher (for an application's shutdown)."""
        for watcher in list(self.watchers.values()):
            await watcher.stop()
        self.watchers.clear()
        _BUSES.pop(id(self.sources), None)


# An app's sources (by identity) -> their bus, while anything (a running watcher, a subscriber)
# holds the bus. A bus holds its sources, so the identity cannot be reused while the entry exists.
_BUSES: weakref.WeakValueDictionary[int, EventBus] = weakref.WeakValueDictionary()


def bus_for(sources: Mapping[str, Source], cache: Cache | None) -> EventBus:
    """The event bus of an app's ``sources`` in this process (made on first use)."""
    bus = _BUSES.get(id(sources))
    if bus is None or bus.sources is not sources:
        bus = _BUSES[id(sources)] = EventBus(sources, cache)
    return bus


async def close_bus(sources: Mapping[str, Source]) -> None:
    """Stop the event bus of an app's ``sources``, if it runs (for an application's shutdown)."""
    bus = _BUSES.get(id(sources))
    if bus is not None and bus.sources is sources:
        await bus.aclose()
