"""Fixtures for the VALG tests: the raw recordings, the register, the replica and the adapter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.dls.jsonschema import load_json_schemas
from gateway.model.datamodel import Datamodel, Register
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import RawArchive, read_raw

ROOT = Path(__file__).resolve().parents[3]
RC = ROOT / "registers" / "VALG" / "rc00002"


@pytest.fixture(scope="session")
def raw() -> RawArchive:
    """Every file of both recordings, read with the standard library only."""
    return read_raw()


@pytest.fixture(scope="session")
def source_json() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((RC / "Source.json").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="session")
def datamodel(source_json: dict[str, Any]) -> Datamodel:
    folder = RC / "2. Datamodel" / source_json["datamodel"]["path"]
    return load_json_schemas(folder, "VALG", source_json["datamodel"])


@pytest.fixture(scope="session")
def register(datamodel: Datamodel, source_json: dict[str, Any]) -> Register:
    return Register(
        name="VALG",
        rc="rc00002",
        datamodel=datamodel,
        relation_versions={},
        default_level=0,
        entity_levels={},
        field_levels={},
        source=source_json,
        path=str(RC),
    )


@pytest.fixture
async def source(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any]
) -> AsyncIterator[ValgSource]:
    cache = Cache()
    adapter = ValgSource(
        register, {**source_json, **valg_replica.overrides["VALG"]}, Services(cache)
    )
    try:
        yield adapter
    finally:
        await adapter.aclose()
        await cache.close()


@pytest.fixture
async def live_source(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any]
) -> AsyncIterator[ValgSource]:
    """An adapter that lists again on every query (for tests that move the replay clock)."""
    cache = Cache()
    options = {**source_json, **valg_replica.overrides["VALG"], "ttl": 0}
    adapter = ValgSource(register, options, Services(cache))
    try:
        yield adapter
    finally:
        await adapter.aclose()
        await cache.close()
