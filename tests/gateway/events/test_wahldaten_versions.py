"""A new Offene Wahldaten file version as a subscription event (DE replica, file added live)."""

from __future__ import annotations

import csv
import io

import pytest

from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.gateway.events.conftest import bus, eventually, registers_with, running_gateway
from tests.gateway.events.wsclient import graphql_ws
from tests.resolvers.wahldaten_csv.raw import election

RESULTS = """subscription ($wahl: String!) {
  DE_Wahlergebnis_changed(where: {wahl: {eq: $wahl}}) {
    id upstream nodes { wahl datei bezirk_nr } } }"""


async def test_a_later_file_version_brings_its_rows(wahldaten_replica: WahldatenDemo) -> None:
    kall = election("kall-kommunal2020")
    other = election("goettingen-eu-rad-2024")
    old = kall.file("Wahlergebnisse")
    assert old is not None
    text = old.read_text(encoding="utf-8")
    newer = old.name.replace("20200930T111111", "20201001T090000")
    assert newer != old.name
    options = {"DE": {**wahldaten_replica.overrides["DE"], "ttl": 0, "eventsInterval": 0.1}}
    with registers_with("DE") as registers:
        async with running_gateway(registers, options) as app, graphql_ws(app) as ws:
            mine = await ws.subscribe(RESULTS, {"wahl": kall.wahl})
            theirs = await ws.subscribe(RESULTS, {"wahl": other.wahl})
            await eventually(lambda: bus(app).ready("DE", "Wahlergebnis"))
            wahldaten_replica.replica.add_file(newer, text.encode("utf-8"))
            message = await ws.message(mine)
            assert message["type"] == "next", message
            event = message["payload"]["data"]["DE_Wahlergebnis_changed"]
            assert event["upstream"] == [newer]
            expected = list(csv.DictReader(io.StringIO(text), delimiter=";"))
            assert [n["bezirk_nr"] for n in event["nodes"]] == [r["bezirk-nr"] for r in expected]
            assert {(n["wahl"], n["datei"]) for n in event["nodes"]} == {(kall.wahl, newer)}
            # Another election's subscriber hears nothing of it.
            polls = bus(app).watchers["DE"].polls
            await eventually(lambda: bus(app).watchers["DE"].polls >= polls + 2)
            with pytest.raises(TimeoutError):
                await ws.message(theirs, seconds=0.3)
