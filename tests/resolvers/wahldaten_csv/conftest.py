"""Fixtures of the DE tests: the replica on a loopback socket and adapters pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.model.datamodel import Datamodel
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.resolvers.wahldaten_csv.model import datamodel, register

SourceFactory = Callable[..., Awaitable[WahldatenSource]]


@pytest.fixture(scope="session")
def model() -> Datamodel:
    """The DE datamodel (loaded once)."""
    return datamodel()


@pytest.fixture
async def make_source() -> AsyncIterator[SourceFactory]:
    """Builds started adapters (options as in Source.json); closes them and their caches."""
    opened: list[tuple[WahldatenSource, Cache]] = []

    async def make(**options: Any) -> WahldatenSource:
        cache = Cache()
        source = WahldatenSource(register(options), options, Services(cache))
        await source.start()
        opened.append((source, cache))
        return source

    try:
        yield make
    finally:
        for source, cache in opened:
            await source.aclose()
            await cache.close()


@pytest.fixture
async def source(wahldaten_replica: WahldatenDemo, make_source: SourceFactory) -> WahldatenSource:
    """An adapter reading the replica over HTTP."""
    return await make_source(url=wahldaten_replica.url, ttl=0)
