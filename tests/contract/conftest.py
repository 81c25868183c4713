"""The contract's fixture: per source kind, the gateway over that kind's replica."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.contract.kinds import CONTRACT_KINDS, ContractKind
from tests.fixtures import running_replica
from tests.support import gateway_client, register_subset

# One upstream try, quickly given up, no stale answers and no breaker: a fault is seen as is.
QUICK = {"timeout": 1.0, "retries": 0, "staleIfError": 0, "breakerFailures": 1000}


@dataclass
class Served:
    """A running gateway over one kind's replica, and that kind's descriptor."""

    kind: ContractKind
    replica: Any
    client: httpx.AsyncClient

    @property
    def overrides(self) -> dict[str, Mapping[str, Any]]:
        return overrides(self.kind, self.replica)

    async def ask(
        self,
        query: str,
        client: httpx.AsyncClient | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST a query; the HTTP status is 200 whatever the answer says."""
        document: dict[str, Any] = {"query": query}
        if variables is not None:
            document["variables"] = dict(variables)
        # Encoded here (ASCII, escapes kept): a lone surrogate arrives as JSON spells it.
        response = await (client or self.client).post(
            "/graphql", content=json.dumps(document), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    @asynccontextmanager
    async def cold_gateway(
        self, options: Mapping[str, Any] | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        """Another gateway over the same replica, with nothing cached (``options``: source
        options of the register beyond the contract's)."""
        chosen = dict(self.overrides)
        chosen[self.kind.register] = {**chosen[self.kind.register], **(options or {})}
        with register_subset(self.kind.register, *self.kind.extra_registers) as registers:
            async with gateway_client(
                registers, chosen, rate_limit=None, response_cache=False
            ) as client:
                yield client


def overrides(kind: ContractKind, replica: Any) -> dict[str, Mapping[str, Any]]:
    options = {**replica.overrides[kind.register], **QUICK, **kind.options}
    return {kind.register: options, **kind.unused}


@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=CONTRACT_KINDS, ids=lambda k: k.register
)
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    kind: ContractKind = request.param
    async with running_replica(kind.kind) as replica:  # type: ignore[arg-type]
        with register_subset(kind.register, *kind.extra_registers) as registers:
            async with gateway_client(
                registers, overrides(kind, replica), rate_limit=None, response_cache=False
            ) as client:
                yield Served(kind, replica, client)
