"""Two gateway processes on one PostgreSQL history: what one records, the other answers.

This process records FT's ``Aktørtype`` (``[history] record``) into a database of a private
PostgreSQL server while a row changes in the replica; a second gateway, started as deployed
(``gateway serve`` in its own process, ``GATEWAY_HISTORY_URL``), answers the same instants and
the same events from the shared history.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest

from gateway.events.bus import bus_for
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata.raw import aktoertype
from tests.support import (
    PostgresServer,
    gateway_client,
    graphql,
    register_subset,
    start_gateway_process,
    stop_gateway_process,
)

pytestmark = pytest.mark.asyncio

ROWS = """query ($t: DateTime) {
  FT_Aktoertype(first: 100, registreringstid: $t) { nodes { id type opdateringsdato } } }"""
EVENTS = "{ FT_Events(first: 1000) { nodes { eventId action objectId registreringFra } } }"


async def answer(client: httpx.AsyncClient, query: str, t: dt.datetime | None = None) -> Any:
    variables = {"t": t.isoformat()} if t is not None else None
    found = await graphql(client, query, variables)
    assert "errors" not in found, found
    return found["data"]


async def test_a_second_process_answers_the_same_history(postgres: PostgresServer) -> None:
    url = postgres.database("shared")
    async with ODataReplica() as replica:
        overrides = {"FT": {"url": replica.url, "eventsInterval": 0.05}}
        with register_subset("FT") as registers:
            settings = {"history_url": url, "history_record": ("FT.Aktørtype",)}
            async with gateway_client(registers, overrides, **settings) as recording:
                gateway = recording.app.state.gateway  # type: ignore[attr-defined]
                await gateway.recorder.settled()
                bus = bus_for(gateway.runtime.sources, gateway.runtime.cache)
                for _ in range(400):
                    if bus.ready("FT", "Aktørtype"):
                        break
                    await asyncio.sleep(0.05)
                before = dt.datetime.now(dt.UTC)
                await asyncio.sleep(0.01)  # the update time is written to the millisecond
                replica.update("Aktørtype", 2, type="Ministertitel (ændret)")
                for _ in range(400):
                    events = (await answer(recording, EVENTS))["FT_Events"]["nodes"]
                    if any(e["action"] == "u" for e in events):
                        break
                    await asyncio.sleep(0.05)
                after = dt.datetime.now(dt.UTC)
                here = [await answer(recording, ROWS, t) for t in (before, after)]
                process, address = await start_gateway_process(
                    registers,
                    {"FT__url": replica.url, "FT__rate": "0"},
                    environment={"GATEWAY_HISTORY_URL": url},
                )
                try:
                    async with httpx.AsyncClient(base_url=address, timeout=30) as other:
                        there = [await answer(other, ROWS, t) for t in (before, after)]
                        assert there == here
                        assert await answer(other, EVENTS) == await answer(recording, EVENTS)
                finally:
                    await stop_gateway_process(process)
    raw = aktoertype()
    assert [n["type"] for n in here[0]["FT_Aktoertype"]["nodes"]] == [r["type"] for r in raw]
    changed = [n["type"] for n in here[1]["FT_Aktoertype"]["nodes"]]
    assert changed == ["Ministertitel (ændret)" if r["id"] == 2 else r["type"] for r in raw]
