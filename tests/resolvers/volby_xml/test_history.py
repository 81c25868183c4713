"""ČSÚ at an instant: ``registreringstid`` merges the precinct batches published by then.

The gateway reads the night once (every batch, kept in its history as it reads them), then
answers at instants between the batches. The expected precincts are computed from the raw
recordings (:mod:`raw`, standard library only): the batches whose ``DATUM_CAS_GENEROVANI``
(Prague time) is not later than the instant, the highest ``PORADI_ZPRAC`` of each precinct.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from gateway.cli import main
from tests.fixtures import running_volby
from tests.resolvers.volby_xml.raw import (
    DATA as CZ_DATA,
    batch_files,
    children,
    newest_precincts,
    root_of,
)
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

PRAGUE = ZoneInfo("Europe/Prague")
QUERY = """query ($t: DateTime) {
  CZPREZ_OKRSEK(first: 1000, registreringstid: $t) { totalCount nodes {
    KOLO CIS_OBEC CIS_OKRSEK PORADI_ZPRAC OPAKOVANE PLATNE_HLASY
    HLASY_OKRSEK(first: 20) { nodes { PORADOVE_CISLO HLASY } } } } }"""


def generated(path: Path) -> dt.datetime:
    found = re.search(rb'DATUM_CAS_GENEROVANI="([^"]+)"', path.read_bytes()[:2048])
    assert found is not None
    return dt.datetime.fromisoformat(found.group(1).decode()).replace(tzinfo=PRAGUE)


def published_by(instant: dt.datetime) -> list[Path]:
    return [p for p in batch_files() if generated(p) <= instant]


def shaped(data: dict[str, Any]) -> dict[tuple[int, str, str], dict[str, Any]]:
    return {
        (n["KOLO"], n["CIS_OBEC"], n["CIS_OKRSEK"]): {
            "PORADI_ZPRAC": n["PORADI_ZPRAC"],
            "OPAKOVANE": n["OPAKOVANE"],
            "PLATNE_HLASY": n["PLATNE_HLASY"],
            "votes": {v["PORADOVE_CISLO"]: v["HLASY"] for v in n["HLASY_OKRSEK"]["nodes"]},
        }
        for n in data["CZPREZ_OKRSEK"]["nodes"]
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    history = tmp_path_factory.mktemp("history") / "history.sqlite"
    with register_subset("CZ", "CZPREZ") as root:
        async with (
            running_volby() as replica,
            gateway_client(root, replica.overrides, history_path=history) as gateway,
        ):
            # The night read once, now: every batch is kept as it is read.
            answer = await graphql(gateway, QUERY, {"t": None})
            assert "errors" not in answer, answer
            assert shaped(answer["data"]) == newest_precincts(batch_files())
            yield gateway


@pytest.mark.parametrize(
    "local",
    [
        "2023-01-14T14:20:00",  # the first batch, exactly
        "2023-01-14T17:00:00",  # after batch 25
        "2023-01-14T18:03:00",  # between 44 and 45
        "2023-01-14T23:00:00",  # the first round complete
        "2023-01-28T15:00:00",  # the second round under way
    ],
)
async def test_precincts_as_the_batches_published_by_then(
    client: httpx.AsyncClient, local: str
) -> None:
    instant = dt.datetime.fromisoformat(local).replace(tzinfo=PRAGUE)
    files = published_by(instant)
    assert files  # every instant here is after the first batch
    answer = await graphql(client, QUERY, {"t": instant.isoformat()})
    assert "errors" not in answer, answer
    assert shaped(answer["data"]) == newest_precincts(files)
    assert answer["data"]["CZPREZ_OKRSEK"]["totalCount"] == len(newest_precincts(files))
    rounds = {int(p.name.split("_")[0].removeprefix("kolo-")) for p in files}
    notices = (answer.get("extensions") or {}).get("notices", [])
    waiting = [n for n in notices if n["code"] == "BEFORE_HISTORY"]
    assert len(waiting) == 2 - len(rounds)  # a round with no batch by then says so


async def test_before_the_first_batch(client: httpx.AsyncClient) -> None:
    answer = await graphql(client, QUERY, {"t": "2023-01-14T12:00:00+01:00"})
    assert answer["data"]["CZPREZ_OKRSEK"] == {"totalCount": 0, "nodes": []}
    notices = answer["extensions"]["notices"]
    assert {n["code"] for n in notices} == {"BEFORE_HISTORY"}
    first = min(generated(p) for p in batch_files())
    assert all(dt.datetime.fromisoformat(n["knownFrom"]) == first for n in notices)


async def test_result_documents_are_answered_now_only(client: httpx.AsyncClient) -> None:
    answer = await graphql(
        client,
        '{ CZ_OBEC(first: 1, registreringstid: "2023-01-14T17:00:00+01:00", '
        'where: {volby: {eq: "kv2014"}}) { nodes { NAZEVZAST } } }',
    )
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "HISTORY_UNAVAILABLE"
    assert "precinct batches" in error["message"]


EVENTS = """query ($where: CZPREZ_EventsFilterInput) {
  CZPREZ_Events(first: 1000, where: $where) {
    totalCount nodes { eventId action objectId registreringFra } } }"""


def precinct_events() -> list[tuple[str, str, dt.datetime]]:
    """(action, object id, batch time) of each precinct sent, from the raw batches in the
    order published: first sent ``i``, sent again with other values ``u``."""
    sent: list[tuple[dt.datetime, str, str, dict[str, str]]] = []
    for path in batch_files():
        root = root_of(path)
        kolo = children(root, "DAVKA")[0].get("KOLO", "")
        for okrsek in children(root, "OKRSEK"):
            (ucast,) = children(okrsek, "UCAST_OKRSEK")
            key = f"{kolo}|{okrsek.get('CIS_OBEC')}|{okrsek.get('CIS_OKRSEK')}"
            content = {**okrsek.attrib, **{f"u.{k}": v for k, v in ucast.attrib.items()}}
            sent.append((generated(path), path.name, key, content))
    out = []
    last: dict[str, dict[str, str]] = {}
    for when, _, key, content in sorted(sent, key=lambda s: (s[0], s[1])):
        if key not in last:
            out.append(("i", key, when))
        elif last[key] != content:
            out.append(("u", key, when))
        last[key] = content
    return out


async def test_the_batches_are_the_precincts_events(client: httpx.AsyncClient) -> None:
    answer = await graphql(client, EVENTS, {"where": {"entityName": {"eq": "OKRSEK"}}})
    assert "errors" not in answer, answer
    found = [
        (n["action"], n["objectId"], dt.datetime.fromisoformat(n["registreringFra"]))
        for n in answer["data"]["CZPREZ_Events"]["nodes"]
    ]
    expected = precinct_events()
    assert any(action == "u" for action, _, _ in expected)  # precincts sent again
    assert sorted(found, key=lambda e: (e[2], e[1])) == sorted(expected, key=lambda e: (e[2], e[1]))


async def test_an_imported_archive_answers_without_the_upstream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gateway history import CZPREZ data/cz``: the recorded batches, each kept as
    published; queries at instants are then answered from them, asking volby.cz nothing."""
    database = tmp_path / "history.sqlite"
    command = ["history", "import", "CZPREZ", str(CZ_DATA), "--history", str(database)]
    assert await asyncio.to_thread(main, command) == 0
    assert f"{len(batch_files())} kept" in capsys.readouterr().out  # the other documents left
    instant = dt.datetime(2023, 1, 14, 18, 3, tzinfo=PRAGUE)
    with register_subset("CZ", "CZPREZ") as root:
        async with (
            running_volby() as replica,
            gateway_client(root, replica.overrides, history_path=database) as gateway,
        ):
            answer = await graphql(gateway, QUERY, {"t": instant.isoformat()})
            assert "errors" not in answer, answer
            assert shaped(answer["data"]) == newest_precincts(published_by(instant))
            assert list(replica.log) == []
