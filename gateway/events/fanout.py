"""Sharing a register's change detection between gateway processes through Redis.

Keys, under the cache's namespace (which carries the datamodels' hash, so processes serving
different datamodels never mix) plus ``events:{REG}:``:

- ``leader``: the token of the process that polls, set with ``SET NX PX`` and renewed by its
  holder on every tick; it lapses by itself if the holder dies;
- ``interest``: a hash of entity → expiry (epoch milliseconds) that every process refreshes for
  the entities its subscribers watch, so the leader polls what anyone anywhere needs;
- ``state``: the leader's detector state (JSON), so a new leader carries on without a gap;
- ``changes``: the pub/sub channel the leader publishes each change on; every process with
  subscribers listens and hands the change to its own.

Redis is the app's :class:`gateway.sources.redis.RedisOwner` (its client and its reconnect
policy). Any Redis failure makes :meth:`SharedWatch.coordinate` answer ``None`` (the watcher
then polls for its own subscribers) and pauses Redis for a few seconds, for every user of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.sources.changes import Change, Detector
from gateway.sources.redis import RETRY_AFTER, RedisOwner, RedisUnavailable

__all__ = ["SharedWatch"]

log = logging.getLogger("gateway.sources.changes")

# The leader's lease covers several ticks, and long first polls (downloads) as well.
_MIN_LEASE = 30.0
_STATE_SECONDS = 7 * 24 * 3600

# Extend the lease only if this process still holds it.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# Give the lease up only if this process still holds it.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

Deliver = Callable[[Change, bool], None]


class SharedWatch:
    """One register's watcher's part in Redis: lease, interest, state and the channel."""

    def __init__(self, redis: RedisOwner, prefix: str) -> None:
        self.redis = redis
        self.client: Any = redis.client
        self.lease_key = f"{prefix}leader"
        self.interest_key = f"{prefix}interest"
        self.state_key = f"{prefix}state"
        self.channel = f"{prefix}changes"
        self.token = secrets.token_hex(8)
        self.holding = False
        self._saved: str | None = None
        self._listener: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """Whether Redis is to be used now (not within a pause after a failure)."""
        return self.redis.available

    def _failed(self, what: str, exc: BaseException) -> None:
        log.info("events: Redis failed while %s (%s); polling locally", what, exc)
        self.redis.failed("events", exc)

    # -- channel -----------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Listen on the channel (returns once subscribed, or once Redis is seen failing)."""
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(deliver, subscribed))
        waiter = asyncio.create_task(subscribed.wait())
        await asyncio.wait({self._listener, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter

    async def _listen(self, deliver: Deliver, subscribed: asyncio.Event) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                subscribed.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._handle(message.get("data", b""), deliver)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: subscribe again after a pause
                self._failed("listening", exc)
                subscribed.set()
                await asyncio.sleep(RETRY_AFTER)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _handle(self, data: bytes | str, deliver: Deliver) -> None:
        try:
            change, origin = Change.decode(data)
        except ValueError as exc:
            log.warning("events: ignoring a malformed message on %s: %s", self.channel, exc)
            return
        deliver(change, origin == self.token)

    async def publish(self, change: Change) -> bool:
        """Send a change to every listening process (False: Redis failed, deliver locally)."""
        if not self.available or self._listener is None or self._listener.done():
            return False
        try:
            await self.redis.run(
                "events", lambda: self.client.publish(self.channel, change.encode(self.token))
            )
        except RedisUnavailable:
            return False
        return True

    # -- lease, interest, state --------------------------------------------------------

    async def coordinate(
        self, local: frozenset[str], interval: float, detector: Detector
    ) -> tuple[bool, frozenset[str]] | None:
        """Announce ``local`` interest, take or keep the lease; (leading, entities to poll).

        A process that just became the leader first restores the last leader's state.
        None when Redis failed.
        """
        lease = max(_MIN_LEASE, 3 * interval)

        async def coordinate() -> tuple[bool, frozenset[str]]:
            await self._announce(local, lease)
            was = self.holding
            self.holding = await self._lease(lease)
            if not self.holding:
                return False, local
            if not was:
                await self._restore(detector)
            return True, await self._interest() | local

        if not self.available:
            self.holding = False
            return None
        try:
            return await self.redis.run("events", coordinate)
        except RedisUnavailable:
            self.holding = False
            return None

    async def _announce(self, entities: frozenset[str], lease: float) -> None:
        if not entities:
            return
        expiry = int((time.time() + lease) * 1000)
        await self.client.hset(self.interest_key, mapping=dict.fromkeys(entities, expiry))
        await self.client.pexpire(self.interest_key, int(lease * 1000))

    async def _lease(self, lease: float) -> bool:
        millis = int(lease * 1000)
        if self.holding and await self.client.eval(_RENEW, 1, self.lease_key, self.token, millis):
            return True
        return bool(await self.client.set(self.lease_key, self.token, nx=True, px=millis))

    async def _interest(self) -> frozenset[str]:
        found: Mapping[bytes, bytes] = await self.client.hgetall(self.interest_key)
        now = time.time() * 1000
        live: set[str] = set()
        expired: list[bytes] = []
        for entity, expiry in found.items():
            if int(expiry) > now:
                live.add(entity.decode("utf-8"))
            else:
                expired.append(entity)
        if expired:
            await self.client.hdel(self.interest_key, *expired)
        return frozenset(live)

    async def _restore(self, detector: Detector) -> None:
        saved = await self.client.get(self.state_key)
        if saved is None:
            return
        try:
            state = json.loads(saved)
        except ValueError:
            log.warning("events: ignoring an unreadable saved state at %s", self.state_key)
            return
        if isinstance(state, dict):
            detector.restore(state)
            self._saved = json.dumps(state, sort_keys=True)

    async def save(self, state: Mapping[str, Any]) -> None:
        """Keep the detector's state for the next leader (written only when it changed)."""
        if not self.holding:
            return
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        if text == self._saved:
            return
        try:
            await self.redis.run(
                "events", lambda: self.client.set(self.state_key, text, ex=_STATE_SECONDS)
            )
        except RedisUnavailable:
            return
        self._saved = text

    async def stop(self) -> None:
        """Stop listening and give the lease up (the owner closes the connection)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self.holding:
            with contextlib.suppress(Exception):
                await self.client.eval(_RELEASE, 1, self.lease_key, self.token)
            self.holding = False
