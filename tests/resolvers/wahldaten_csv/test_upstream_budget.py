"""The Wahldaten adapter spends the files naming the elections before reading them."""

from __future__ import annotations

import pytest

from gateway.sources import upstream_budget
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.replica.server import LISTING, WahldatenDemo
from tests.resolvers.wahldaten_csv.queries import ask
from tests.resolvers.wahldaten_csv.raw import elections

ELECTIONS = [raw.folder.name for raw in elections()]


async def test_files_over_the_budget_are_not_downloaded(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    # The listing comes first (one request); the files are then known: one per election.
    with (
        upstream_budget.scope(len(ELECTIONS)) as budget,
        pytest.raises(upstream_budget.UpstreamBudgetError) as refused,
    ):
        await ask(source, "Wahlparameter")
    assert refused.value.extensions["measured"] == 1 + len(ELECTIONS)
    assert "DE files" in refused.value.extensions["what"]
    assert [e.path for e in wahldaten_replica.replica.log] == [LISTING]
    assert budget.spent == budget.made == 1


async def test_downloads_are_spent_and_cached_files_are_free(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    with upstream_budget.scope(1 + len(ELECTIONS)) as budget:
        page = await ask(source, "Wahlparameter")
    assert page.rows
    assert budget.spent == budget.made == source.requests == len(wahldaten_replica.replica.log)
    assert budget.spent == 1 + len(ELECTIONS)
    before = len(wahldaten_replica.replica.log)
    # Reserved again (a query is accepted whatever the cache holds), then given back: only
    # the listing is asked again (ttl 0, answered 304); the files come from the cache.
    with upstream_budget.scope(1 + len(ELECTIONS)) as again:
        await ask(source, "Wahlparameter")
    assert again.spent == again.made == len(wahldaten_replica.replica.log) - before == 1
