"""The volby.cz adapter spends its fan-out (one document per URL) before the first request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gateway.model.query import Query
from gateway.sources import upstream_budget
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.replica.server import VolbyReplica
from tests.resolvers.volby_xml.conftest import register

Make = Callable[..., Awaitable[VolbySource]]
DISTRICTS = {"kv2014": ["CZ0100", "CZ0806", "CZ0201", "CZ0202"], "kv2022": []}


def _municipalities() -> Query:
    return Query(register("CZ").datamodel.entities["OBEC"])


async def test_a_fan_out_over_the_budget_sends_nothing(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, districts=DISTRICTS)
    with (
        upstream_budget.scope(3) as budget,
        pytest.raises(upstream_budget.UpstreamBudgetError) as refused,
    ):
        await source.fetch(_municipalities())
    assert refused.value.extensions["code"] == "QUERY_TOO_COMPLEX"
    assert refused.value.extensions["measured"] == 4
    assert "4 volby.cz documents" in refused.value.extensions["what"]
    assert volby_replica.log == []
    assert budget.spent == budget.made == 0


async def test_the_fan_out_is_spent_once_and_cache_hits_are_free(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, districts=DISTRICTS)
    with upstream_budget.scope(4) as budget:
        page = await source.fetch(_municipalities())
    assert page.rows
    assert budget.spent == budget.made == len(volby_replica.log) == source.requests == 4
    # Reserved again (a query is accepted whatever the cache holds), then given back.
    with upstream_budget.scope(4) as again:
        cached = await source.fetch(_municipalities())
    assert cached.rows == page.rows
    assert again.spent == again.made == 0
    assert len(volby_replica.log) == 4
