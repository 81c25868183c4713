"""Fixtures of the FT tests: the gateway over the shared replica (``tests/fixtures.py``), reset.

A module may set ``FT_TIMEOUT`` (seconds per upstream request; 5 by default).
"""

from __future__ import annotations

import httpx
import pytest_asyncio

from resolvers.odata.replica.server import ODataReplica


@pytest_asyncio.fixture(loop_scope="module")
async def client(
    odata_gateway: httpx.AsyncClient, odata_replica: ODataReplica
) -> httpx.AsyncClient:
    """The gateway with a cold cache, and the replica without faults, latency or log."""
    gateway = odata_gateway.app.state.gateway  # type: ignore[attr-defined]
    await gateway.sources["FT"].services.cache.clear()
    odata_replica.faults.clear()
    odata_replica.latency = 0.0
    odata_replica.log.clear()
    return odata_gateway
