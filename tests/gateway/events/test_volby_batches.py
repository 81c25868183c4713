"""New ČSÚ precinct batches as subscription events (CZPREZ, the replica's clock moved by hand).

Expected rows come from the recorded batch XML, read with the standard library.
"""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.volby_xml.replica.server import VolbyReplica
from tests.gateway.events.conftest import bus, eventually, registers_with, running_gateway
from tests.gateway.events.wsclient import graphql_ws
from tests.resolvers.volby_xml.raw import batch_files, children, root_of

# Round 1 with its first batch out, round 2 with none; the tests release the rest by hand.
pytestmark = pytest.mark.replica(released={"1": 1, "2": 0})

BATCHES = """subscription { CZPREZ_DAVKA_changed(where: {KOLO: {eq: 1}}) {
  id upstream nodes { KOLO PORADI_DAVKY OKRSKY_ZPRAC } } }"""

PRECINCTS = """subscription { CZPREZ_OKRSEK_changed(where: {KOLO: {eq: 1}}) {
  id upstream nodes { KOLO CIS_OBEC CIS_OKRSEK PORADI_ZPRAC PLATNE_HLASY OPAKOVANE } } }"""

ROUND_2 = """subscription { CZPREZ_OKRSEK_changed(where: {KOLO: {eq: 2}}) { id nodes { KOLO } } }"""


def recorded(kolo: int, after: int, upto: int) -> tuple[list[int], dict[tuple[str, str], Any]]:
    """Batch numbers in (after, upto] and the precincts they carry (their last version)."""
    numbers: list[int] = []
    precincts: dict[tuple[str, str], Any] = {}
    for path in batch_files(kolo):
        root = root_of(path)
        number = int(children(root, "DAVKA")[0].get("PORADI_DAVKY", "0"))
        if not after < number <= upto:
            continue
        numbers.append(number)
        for okrsek in children(root, "OKRSEK"):
            (ucast,) = children(okrsek, "UCAST_OKRSEK")
            key = (okrsek.get("CIS_OBEC", ""), okrsek.get("CIS_OKRSEK", ""))
            precincts[key] = (
                int(okrsek.get("PORADI_ZPRAC", "0")),
                int(ucast.get("PLATNE_HLASY", "0")),
            )
    return sorted(numbers), precincts


def overrides(replica: VolbyReplica) -> dict[str, Any]:
    return {"CZPREZ": {**replica.overrides["CZPREZ"], "ttl": 0.05, "eventsInterval": 0.1}}


def _event(message: dict[str, Any], field: str) -> dict[str, Any]:
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    event: dict[str, Any] = message["payload"]["data"][field]
    return event


async def test_a_new_batch_brings_its_batch_row_and_precincts(
    manual_volby_replica: VolbyReplica,
) -> None:
    with registers_with("CZPREZ") as registers:
        async with (
            running_gateway(registers, overrides(manual_volby_replica)) as app,
            graphql_ws(app) as ws,
        ):
            batches = await ws.subscribe(BATCHES)
            precincts = await ws.subscribe(PRECINCTS)
            other_round = await ws.subscribe(ROUND_2)
            await eventually(
                lambda: bus(app).ready("CZPREZ", "DAVKA") and bus(app).ready("CZPREZ", "OKRSEK")
            )
            for seen, upto in ((1, 25), (25, 49)):
                numbers, expected = recorded(1, seen, upto)
                manual_volby_replica.release("prez2023", "1", upto)
                batch = _event(await ws.message(batches), "CZPREZ_DAVKA_changed")
                okrsky = _event(await ws.message(precincts), "CZPREZ_OKRSEK_changed")
                assert [n["PORADI_DAVKY"] for n in batch["nodes"]] == numbers
                marker = (
                    f"KOLO=1 davka {upto}"
                    if upto == seen + 1
                    else f"KOLO=1 davka {seen + 1}–{upto}"
                )
                assert batch["upstream"] == okrsky["upstream"] == [marker]
                got = {
                    (n["CIS_OBEC"], n["CIS_OKRSEK"]): (n["PORADI_ZPRAC"], n["PLATNE_HLASY"])
                    for n in okrsky["nodes"]
                }
                assert got == expected
                assert len(okrsky["nodes"]) == len(expected)
            # Round 2 published nothing: its subscriber hears nothing.
            with pytest.raises(TimeoutError):
                await ws.message(other_round, seconds=0.3)
