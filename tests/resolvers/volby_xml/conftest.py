"""Fixtures of the CZ tests: the registers, the volby.cz replica on loopback, adapters on it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.dls.descriptors import load_registers
from gateway.model.datamodel import Register
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.replica.server import VolbyReplica

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "cz"
REGISTERS = ROOT / "registers"

SourceFactory = Callable[..., Awaitable[VolbySource]]


@functools.cache
def register(name: str) -> Register:
    """A shipped register (CZ or CZPREZ), loaded and validated once."""
    report = load_registers(REGISTERS / name)
    assert report.ok, report.render()
    (loaded,) = report.registers
    return loaded


@pytest.fixture
async def make_source() -> AsyncIterator[Callable[..., Awaitable[VolbySource]]]:
    """Builds started adapters on a replica; ``options`` override Source.json."""
    opened: list[tuple[VolbySource, Cache]] = []

    async def make(volby_replica: VolbyReplica, name: str = "CZ", **options: Any) -> VolbySource:
        loaded = register(name)
        cache = Cache()
        merged = {**loaded.source, **volby_replica.overrides[name], **options}
        source = VolbySource(loaded, merged, Services(cache))
        await source.start()
        opened.append((source, cache))
        return source

    try:
        yield make
    finally:
        for source, cache in opened:
            await source.aclose()
            await cache.close()
