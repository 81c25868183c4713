"""The VALG adapter spends each file download (a data file and its signature) before it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.model.datamodel import Datamodel, Register
from gateway.model.query import And, Condition, Query, SortKey
from gateway.sources import upstream_budget
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import FV

AABENRAA_MIDT = 702016


def _results(datamodel: Datamodel) -> Query:
    where = And(
        (
            Condition("Valgmappe", "eq", FV),
            Condition("AfstemningsomraadeDagiId", "eq", AABENRAA_MIDT),
        )
    )
    return Query(datamodel.entities["Valgresultat"], where=where, order=(SortKey("Noegle"),))


async def test_sftp_operations_are_spent_and_known_files_are_free(
    source: ValgSource, valg_replica: ValgReplica, datamodel: Datamodel
) -> None:
    start, first_requests = len(valg_replica.downloads("")), source.requests
    with upstream_budget.scope(None) as budget:
        page = await source.fetch(_results(datamodel))
    assert page.rows
    # Every SFTP operation but the signatures (one download with their file) is spent.
    signatures = [d for d in valg_replica.downloads("")[start:] if d.endswith(".hash")]
    assert signatures
    assert budget.spent == budget.made == source.requests - first_requests - len(signatures) > 0
    before = source.requests
    with upstream_budget.scope(None) as again:
        assert (await source.fetch(_results(datamodel))).rows == page.rows
    assert again.spent == again.made == source.requests - before == 0


async def test_a_download_over_the_budget_is_not_started(
    valg_replica: ValgReplica,
    register: Register,
    source_json: dict[str, Any],
    datamodel: Datamodel,
) -> None:
    needed = await _cost(valg_replica, register, source_json, datamodel)
    valg_replica.log.clear()
    cache = Cache()
    fresh = ValgSource(register, {**source_json, **valg_replica.overrides["VALG"]}, Services(cache))
    try:
        with (
            upstream_budget.scope(needed - 1) as budget,
            pytest.raises(upstream_budget.UpstreamBudgetError) as refused,
        ):
            await fresh.fetch(_results(datamodel))
    finally:
        await fresh.aclose()
        await cache.close()
    assert refused.value.extensions["allowed"] == needed - 1
    assert refused.value.extensions["what"].endswith(".json")
    assert budget.made <= needed - 1
    # The last download (a data file and its signature) was refused before it started.
    data_files = [d for d in valg_replica.downloads("") if not d.endswith(".hash")]
    assert len(data_files) <= needed - 2


async def _cost(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any], datamodel: Datamodel
) -> int:
    cache = Cache()
    adapter = ValgSource(
        register, {**source_json, **valg_replica.overrides["VALG"]}, Services(cache)
    )
    try:
        with upstream_budget.scope(None) as budget:
            await adapter.fetch(_results(datamodel))
    finally:
        await adapter.aclose()
        await cache.close()
    return budget.made
