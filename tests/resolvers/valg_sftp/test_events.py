"""VALG's events: the file versions kept in the history become ``i``/``u``/``d`` events of
the documents they hold, and a withdrawal upstream is a ``d``.

A mirror of the server kept through the night (the six versions of the Ringsted Nørretorv
result, with their signatures) is loaded with ``gateway history import``, which knows nothing
of events; the gateway describes the versions when it opens the history. The expected events
come from the raw recording (:mod:`rawdata`, standard library only): the series' first version
is an ``i``, each later version whose document differs from the one before it is a ``u``,
registered at its name's stamp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.cli import main
from resolvers.valg_sftp.detector import ValgDetector
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp import test_history as night
from tests.resolvers.valg_sftp.rawdata import FV, RawArchive
from tests.support import REGISTERS, gateway_client, graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

AREA = night.AREA
SERIES = night.SERIES
FOLDER = f"{FV}/valgresultater"
EVENTS = """query ($where: VALG_EventsFilterInput) {
  VALG_Events(first: 1000, where: $where) {
    totalCount nodes { eventId entityName action objectId registreringFra opdateret } } }"""
RESULT = (
    "{ VALG_Valgresultat(where: {AfstemningsomraadeDagiId: {eq: " + str(AREA) + "}, "
    'Valgmappe: {eq: "' + FV + '"}}) { nodes { Noegle Fil } } }'
)


def versions(raw: RawArchive) -> list[tuple[dt.datetime, str, Any]]:
    """(name stamp, member name, document) of the area's result versions, oldest first."""
    return [(when, f"{FV}/{path}", doc) for when, path, doc in night.versions(raw)]


def expected_events(raw: RawArchive) -> list[tuple[str, dt.datetime]]:
    """(action, registered from) of the series as recorded."""
    out: list[tuple[str, dt.datetime]] = []
    previous = None
    for when, _, doc in versions(raw):
        if previous is None:
            out.append(("i", when))
        elif doc != previous:
            out.append(("u", when))
        previous = doc
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, module_valg_replica: ValgReplica) -> Path:
    folder = tmp_path_factory.mktemp("mirror")
    assert module_valg_replica.mirror(folder, lambda p: p.startswith(SERIES)) >= 6
    database = tmp_path_factory.mktemp("history") / "history.sqlite"
    assert main(["history", "import", "VALG", str(folder), "--history", str(database)]) == 0
    return database


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    module_valg_replica: ValgReplica, history: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(
        REGISTERS, module_valg_replica.overrides, history_path=history
    ) as running:
        yield running


async def events(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    where = {"entityName": {"eq": "Valgresultat"}, "objectId": {"eq": key}}
    body = await graphql(client, EVENTS, {"where": where})
    assert "errors" not in body, body
    nodes: list[dict[str, Any]] = body["data"]["VALG_Events"]["nodes"]
    return nodes


async def served(client: httpx.AsyncClient, fresh: int) -> list[dict[str, Any]]:
    source = client.app.state.gateway.sources["VALG"]  # type: ignore[attr-defined]
    source.store.invalidate(FOLDER)
    body = await graphql(client, RESULT, {"fresh": fresh})  # (never a cached answer)
    for task in list(source._marking):  # deletions written to the history
        await task
    assert "data" in body, body
    nodes: list[dict[str, Any]] = body["data"]["VALG_Valgresultat"]["nodes"]
    return nodes


async def test_imported_versions_are_the_documents_events(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    (row,) = await served(client, 1)
    found = await events(client, row["Noegle"])
    expected = expected_events(raw)
    assert len(expected) >= 3
    assert [(e["action"], dt.datetime.fromisoformat(e["registreringFra"])) for e in found] == (
        expected
    )
    assert [e["eventId"] for e in found] == sorted(e["eventId"] for e in found)
    # after an event: the ones after it, of the entity asked for (narrowed in the store)
    where = {"eventId": {"gt": found[0]["eventId"]}, "entityName": {"in": ["Valgresultat"]}}
    body = await graphql(client, EVENTS, {"where": {**where, "objectId": {"eq": row["Noegle"]}}})
    assert body["data"]["VALG_Events"]["nodes"] == found[1:]
    body = await graphql(client, EVENTS, {"where": {"eventId": {"gte": found[-1]["eventId"]}}})
    assert [e["eventId"] for e in body["data"]["VALG_Events"]["nodes"]][:1] == [
        found[-1]["eventId"]
    ]


async def test_a_withdrawn_version_and_a_withdrawn_file(
    client: httpx.AsyncClient, module_valg_replica: ValgReplica, raw: RawArchive
) -> None:
    """The newest version withdrawn: the one before it answers again (a ``u`` back to it).
    Every version withdrawn: a ``d``, told to subscribers too. Re-released: an ``i``."""
    recorded = versions(raw)
    (row,) = await served(client, 2)
    key = row["Noegle"]
    before = await events(client, key)
    source = client.app.state.gateway.sources["VALG"]  # type: ignore[attr-defined]
    detector = ValgDetector(source)
    await detector.poll(frozenset({"Valgresultat"}))  # its baseline
    newest = recorded[-1][1]
    module_valg_replica.withdraw(newest)
    try:
        start = dt.datetime.now(dt.UTC)
        (row,) = await served(client, 3)
        assert row["Fil"] == recorded[-2][1].removeprefix(f"{FV}/")
        after_one = await events(client, key)
        assert len(after_one) == len(before) + (recorded[-1][2] != recorded[-2][2])
        if recorded[-1][2] != recorded[-2][2]:
            assert after_one[-1]["action"] == "u"
            assert dt.datetime.fromisoformat(after_one[-1]["registreringFra"]) >= start
        for _, name, _ in recorded[:-1]:
            module_valg_replica.withdraw(name)
        source.store.invalidate(FOLDER)
        listed = await source.store.listing(FOLDER)  # the folder as the server lists it now
        assert not any(f"{FOLDER}/{name}".startswith(SERIES) for name in listed)
        for task in list(source._marking):
            await task
        gone = await events(client, key)
        assert gone[-1]["action"] == "d"
        assert len(gone) == len(after_one) + 1
        changes = await detector.poll(frozenset({"Valgresultat"}))
        deletions = [c for c in changes if c.action == "d"]
        assert [r["Noegle"] for c in deletions for r in c.deleted] == [key]
    finally:
        for _, name, _ in recorded:
            module_valg_replica.restore(name)
    (row,) = await served(client, 5)
    assert row["Fil"] == recorded[-1][1].removeprefix(f"{FV}/")
    back = await events(client, key)
    assert back[-1]["action"] == "i"
