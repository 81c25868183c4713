"""A second OData register is only a folder: a copy of FT under another name and channel.

The copy (``FT2``, replication channel ``rc00091``) differs from FT in data files only: its
folder name, its ``rcNNNNN`` folder and the ``TargetRc`` of its relations. One gateway serves
both over the FT replica; queries, relations and change events work for the copy. Expected
values come from the recorded files (tests/resolvers/odata/raw.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.dls.descriptors import load_registers
from resolvers.odata.replica.server import ODataReplica
from tests.fixtures import ReplicaFactory
from tests.gateway.events.conftest import bus, eventually, running_gateway
from tests.gateway.events.wsclient import graphql_ws
from tests.resolvers.odata import raw
from tests.support import REGISTERS, gateway_client, graphql

NAME, RC = "FT2", "rc00091"

VOTES = """query($ballot: Int!) {
  %s_Stemme(where: {afstemningid: {eq: $ballot}}) {
    totalCount nodes { id typeid Aktoer { navn } Afstemning { nummer } } } }"""


def copy_of_ft(folder: Path) -> Path:
    """FT copied to ``folder/FT2`` with channel ``rc00091``; FT itself linked beside it."""
    target = folder / NAME
    shutil.copytree(REGISTERS / "FT", target)
    (rc,) = [p for p in target.iterdir() if p.name.startswith("rc")]
    rc.rename(target / RC)
    relations = target / RC / "2. Datamodel" / "Relations.json"
    document = json.loads(relations.read_text("utf-8"))
    for version in document["RelationVersions"]:
        for relation in version["Relations"]:
            if relation["TargetRc"] == rc.name:
                relation["TargetRc"] = RC
    relations.write_text(json.dumps(document, ensure_ascii=False, indent=2), "utf-8")
    os.symlink(REGISTERS / "FT", folder / "FT")
    return folder


@pytest.fixture
def registers(tmp_path: Path) -> Path:
    return copy_of_ft(tmp_path)


def test_the_copy_validates_beside_ft(registers: Path) -> None:
    report = load_registers(registers)
    assert report.ok, report.render()
    loaded = {r.name: r for r in report.registers}
    assert sorted(loaded) == ["FT", NAME]
    assert loaded[NAME].rc == RC
    relations = loaded[NAME].relation_versions["1"]
    assert relations
    assert all(r.target_register == NAME for r in relations)
    assert loaded[NAME].datamodel.entities.keys() == loaded["FT"].datamodel.entities.keys()


def _expected_votes(ballot: int) -> list[dict[str, Any]]:
    number = {int(r["id"]): r["nummer"] for r in raw.afstemning()}[ballot]
    return [
        {
            "id": r["id"],
            "typeid": r["typeid"],
            "Aktoer": {"navn": raw.aktoer()[r["aktoerid"]]["navn"]},
            "Afstemning": {"nummer": None if number is None else int(number)},
        }
        for r in raw.stemme()
        if r["afstemningid"] == ballot
    ]


# The shared replica runs on the module's event loop (tests/fixtures.py).
@pytest.mark.asyncio(loop_scope="module")
async def test_queries_and_relations_of_the_copy(
    registers: Path, clean_odata_replica: ODataReplica
) -> None:
    options = {"FT": {"url": clean_odata_replica.url}, NAME: {"url": clean_odata_replica.url}}
    async with gateway_client(registers, options) as client:
        for ballot in (1, 2):
            expected = _expected_votes(ballot)
            for register in (NAME, "FT"):
                body = await graphql(client, VOTES % register, {"ballot": ballot})
                assert "errors" not in body, body
                got = body["data"][f"{register}_Stemme"]
                assert got["totalCount"] == len(expected)
                assert got["nodes"] == expected
        # The copy's own endpoint serves only the copy.
        one = await graphql(client, VOTES % NAME, {"ballot": 1}, path=f"/{NAME}/v1")
        assert one["data"][f"{NAME}_Stemme"]["nodes"] == _expected_votes(1)
        other = await graphql(client, VOTES % "FT", {"ballot": 1}, path=f"/{NAME}/v1")
        assert "errors" in other
        aktoer = await _first_actor(client)
        assert aktoer == raw.aktoer()[min(raw.aktoer())]["navn"]


async def _first_actor(client: httpx.AsyncClient) -> Any:
    body = await graphql(
        client, f"{{ {NAME}_Aktoer(first: 1, order: [{{id: ASC}}]) {{ nodes {{ navn }} }} }}"
    )
    assert "errors" not in body, body
    return body["data"][f"{NAME}_Aktoer"]["nodes"][0]["navn"]


CHANGED = f"""subscription {{ {NAME}_Stemme_changed {{
  upstream nodes {{ id typeid afstemningid Aktoer {{ navn }} }} }} }}"""


async def test_change_events_of_the_copy(registers: Path, replica_factory: ReplicaFactory) -> None:
    running = await replica_factory("odata")
    options = {name: {"url": running.url, "eventsInterval": 0.1} for name in ("FT", NAME)}
    async with running_gateway(registers, options) as app, graphql_ws(app) as ws:
        op = await ws.subscribe(CHANGED)
        await eventually(lambda: bus(app).ready(NAME, "Stemme"))
        first = raw.stemme()[0]
        newest = max(r["opdateringsdato"] for r in raw.stemme())
        running.update(  # type: ignore[attr-defined]
            "Stemme", first["id"], typeid=2, opdateringsdato="2031-05-01T10:00:00"
        )
        message = await ws.message(op)
        event = message["payload"]["data"][f"{NAME}_Stemme_changed"]
        assert event["nodes"] == [
            {
                "id": first["id"],
                "typeid": 2,
                "afstemningid": first["afstemningid"],
                "Aktoer": {"navn": raw.aktoer()[first["aktoerid"]]["navn"]},
            }
        ]
        assert event["upstream"] == [f"opdateringsdato {newest} – 2031-05-01T10:00:00"]
