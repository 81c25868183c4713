"""German elections at an instant: ``registreringstid`` reads the files published by then.

The gateway reads every file once (each is kept in its history with its ``Zeitstempel``),
then answers at instants between the recorded files' times. The expected files are the
recorded ones whose name stamp (German local time, parsed here with the standard library)
is not later than the instant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from gateway.cli import main
from tests.resolvers.wahldaten_csv.raw import elections
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

BERLIN = ZoneInfo("Europe/Berlin")
QUERY = """query ($t: DateTime) {
  DE_Wahlparameter(first: 100, registreringstid: $t) { totalCount nodes { datei } } }"""


def stamp(path: Path) -> dt.datetime:
    """The Zeitstempel at the end of an Offene Wahldaten file name."""
    name = path.name
    compact = re.search(r"_(\d{8}T\d{6})(?:_\d+)?\.csv$", name)
    if compact is not None:
        local = dt.datetime.strptime(compact.group(1), "%Y%m%dT%H%M%S")
    else:
        spaced = re.search(r"_(\d{2}\.\d{2}\.\d{4} \d{6})(?: \d{3})?(?:_\d+)?\.csv$", name)
        assert spaced is not None, name
        local = dt.datetime.strptime(spaced.group(1), "%d.%m.%Y %H%M%S")
    return local.replace(tzinfo=BERLIN)


def parameter_files() -> list[Path]:
    found = [raw.file("Wahlparameter") for raw in elections()]
    return sorted((p for p in found if p is not None), key=stamp)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory, module_wahldaten_replica: object
) -> AsyncIterator[httpx.AsyncClient]:
    history = tmp_path_factory.mktemp("history") / "history.sqlite"
    overrides = module_wahldaten_replica.overrides  # type: ignore[attr-defined]
    with register_subset("DE") as registers:
        async with gateway_client(registers, overrides, history_path=history) as gateway:
            answer = await graphql(gateway, QUERY, {"t": None})  # read now: every file kept
            assert "errors" not in answer, answer
            files = {n["datei"] for n in answer["data"]["DE_Wahlparameter"]["nodes"]}
            assert files == {p.name for p in parameter_files()}
            yield gateway


def instants() -> list[dt.datetime]:
    stamps = sorted({stamp(p) for p in parameter_files()})
    assert len(stamps) >= 5
    # exactly at the first, between each pair, and after the last
    between = [a + (b - a) / 2 for a, b in itertools.pairwise(stamps)]
    return [stamps[0], *between, stamps[-1] + dt.timedelta(days=1)]


@pytest.mark.parametrize("instant", instants(), ids=lambda i: i.isoformat())
async def test_the_files_published_by_then(client: httpx.AsyncClient, instant: dt.datetime) -> None:
    answer = await graphql(client, QUERY, {"t": instant.isoformat()})
    assert "errors" not in answer, answer
    got = {n["datei"] for n in answer["data"]["DE_Wahlparameter"]["nodes"]}
    assert got == {p.name for p in parameter_files() if stamp(p) <= instant}


async def test_before_the_first_file(client: httpx.AsyncClient) -> None:
    answer = await graphql(client, QUERY, {"t": "2019-01-01T00:00:00Z"})
    assert answer["data"]["DE_Wahlparameter"] == {"totalCount": 0, "nodes": []}
    (notice,) = answer["extensions"]["notices"]
    assert notice["code"] == "BEFORE_HISTORY"
    # The history begins with the first file read (the Wahlparameter files, and whichever
    # file first names each election).
    known = dt.datetime.fromisoformat(notice["knownFrom"])
    earliest = min(stamp(p) for raw in elections() for p in raw.folder.glob("*.csv"))
    assert earliest <= known <= stamp(parameter_files()[0])


EVENTS = """query ($where: DE_EventsFilterInput) {
  DE_Events(first: 1000, where: $where) { nodes { action objectId registreringFra } } }"""
PARAMETERS = "{ DE_Wahlparameter(first: 100) { nodes { wahl datei } } }"


async def test_each_file_read_is_its_rows_events(client: httpx.AsyncClient) -> None:
    """Each election's Wahlparameter file is its row's ``i``, registered at the file's
    Zeitstempel (to the second: :func:`stamp` leaves out the milliseconds some names have);
    the object is the row as queries key it."""
    answer = await graphql(client, EVENTS, {"where": {"entityName": {"eq": "Wahlparameter"}}})
    assert "errors" not in answer, answer
    found = {
        (
            n["action"],
            n["objectId"],
            dt.datetime.fromisoformat(n["registreringFra"]).replace(microsecond=0),
        )
        for n in answer["data"]["DE_Events"]["nodes"]
    }
    rows = (await graphql(client, PARAMETERS))["data"]["DE_Wahlparameter"]["nodes"]
    by_file = {p.name: stamp(p) for p in parameter_files()}
    assert found == {("i", row["wahl"], by_file[row["datei"]]) for row in rows}
    assert len(found) == len(parameter_files())


async def test_an_imported_archive_answers_without_the_upstream(
    tmp_path: Path, module_wahldaten_replica: object
) -> None:
    """``gateway history import DE data/de``: every recorded file, as published at its
    Zeitstempel; instants are then answered from them, and their rows are events."""
    database = tmp_path / "history.sqlite"
    folder = parameter_files()[0].parents[1]
    command = ["history", "import", "DE", str(folder), "--history", str(database)]
    assert await asyncio.to_thread(main, command) == 0
    overrides = module_wahldaten_replica.overrides  # type: ignore[attr-defined]
    log = module_wahldaten_replica.log  # type: ignore[attr-defined]
    with register_subset("DE") as registers:
        async with gateway_client(registers, overrides, history_path=database) as gateway:
            before = len(log)
            for instant in instants():
                answer = await graphql(gateway, QUERY, {"t": instant.isoformat()})
                got = {n["datei"] for n in answer["data"]["DE_Wahlparameter"]["nodes"]}
                assert got == {p.name for p in parameter_files() if stamp(p) <= instant}
            assert len(log) == before  # nothing asked of the upstream
            events = await graphql(
                gateway, EVENTS, {"where": {"entityName": {"eq": "Wahlparameter"}}}
            )
            assert len(events["data"]["DE_Events"]["nodes"]) == len(parameter_files())
