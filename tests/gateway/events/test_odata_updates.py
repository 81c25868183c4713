"""Rows whose ``opdateringsdato`` moves on as subscription events (FT replica, rows edited live)."""

from __future__ import annotations

import pytest

from resolvers.odata.replica.data import load_ft_data
from tests.fixtures import ReplicaFactory
from tests.gateway.events.conftest import bus, eventually, registers_with, running_gateway
from tests.gateway.events.wsclient import graphql_ws

TYPES = """subscription { FT_Afstemningstype_changed {
  id upstream nodes { id type opdateringsdato } } }"""


async def test_updated_and_new_rows_arrive(replica_factory: ReplicaFactory) -> None:
    running = await replica_factory("odata")
    before = load_ft_data().rows["Afstemningstype"]
    newest = max(r["opdateringsdato"] for r in before)
    options = {"FT": {"url": running.url, "eventsInterval": 0.1}}
    with registers_with("FT") as registers:
        async with running_gateway(registers, options) as app, graphql_ws(app) as ws:
            op = await ws.subscribe(TYPES)
            await eventually(lambda: bus(app).ready("FT", "Afstemningstype"))
            running.update(  # type: ignore[attr-defined]
                "Afstemningstype",
                before[1]["id"],
                type="Ændret",
                opdateringsdato="2031-05-01T10:00:00.5",
            )
            running.insert(  # type: ignore[attr-defined]
                "Afstemningstype", id=99, type="Ny", opdateringsdato="2031-05-01T10:00:01"
            )
            message = await ws.message(op)
            event = message["payload"]["data"]["FT_Afstemningstype_changed"]
            assert [(n["id"], n["type"]) for n in event["nodes"]] == [(2, "Ændret"), (99, "Ny")]
            assert event["upstream"] == [f"opdateringsdato {newest} – 2031-05-01T10:00:01"]
            # Nothing is reported twice.
            polls = bus(app).watchers["FT"].polls
            await eventually(lambda: bus(app).watchers["FT"].polls >= polls + 2)
            with pytest.raises(TimeoutError):
                await ws.message(op, seconds=0.3)


TEMPORAL = """subscription {
  FT_Afstemningstype_changed(where: {registreringFra: {gt: "2031-05-01T08:00:00.7Z"}}) {
    action nodes { id registreringFra registreringTil } } }"""


async def test_the_temporal_fields_of_a_change(replica_factory: ReplicaFactory) -> None:
    """A subscriber filters on and reads ``registreringFra`` (the row's update time, read
    on Copenhagen's wall clock: summer time, two hours ahead of UTC)."""
    running = await replica_factory("odata")
    before = load_ft_data().rows["Afstemningstype"]
    options = {"FT": {"url": running.url, "eventsInterval": 0.1}}
    with registers_with("FT") as registers:
        async with running_gateway(registers, options) as app, graphql_ws(app) as ws:
            op = await ws.subscribe(TEMPORAL)
            await eventually(lambda: bus(app).ready("FT", "Afstemningstype"))
            for offset, row in enumerate(before[:2]):  # 10:00:00.5 and 10:00:01.5 local
                running.update(  # type: ignore[attr-defined]
                    "Afstemningstype", row["id"], opdateringsdato=f"2031-05-01T10:00:0{offset}.5"
                )
            message = await ws.message(op)
            event = message["payload"]["data"]["FT_Afstemningstype_changed"]
            assert event["action"] == "u"
            assert event["nodes"] == [
                {
                    "id": before[1]["id"],
                    "registreringFra": "2031-05-01T08:00:01.500000+00:00",
                    "registreringTil": None,
                }
            ]
