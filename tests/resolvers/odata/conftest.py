"""Fixtures of the FT tests: the replica on a loopback socket and the gateway app over it.

A module may set ``FT_TIMEOUT`` (seconds per upstream request; 5 by default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from resolvers.odata.replica.server import FtReplica
from tests.support import gateway_client, register_subset


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replica() -> AsyncIterator[FtReplica]:
    async with FtReplica() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app_client(
    request: pytest.FixtureRequest, replica: FtReplica
) -> AsyncIterator[httpx.AsyncClient]:
    timeout = getattr(request.module, "FT_TIMEOUT", 5)
    with register_subset("FT") as registers:
        options = {"FT": {"url": replica.url, "timeout": timeout}}
        async with gateway_client(registers, options) as client:
            yield client


@pytest_asyncio.fixture(loop_scope="module")
async def client(app_client: httpx.AsyncClient, replica: FtReplica) -> httpx.AsyncClient:
    """The gateway with a cold cache, and the replica without faults, latency or log."""
    gateway = app_client.app.state.gateway  # type: ignore[attr-defined]
    await gateway.sources["FT"].services.cache.clear()
    replica.clear_faults()
    replica.latency = 0.0
    replica.reset_log()
    return app_client
