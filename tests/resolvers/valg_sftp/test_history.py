"""VALG at an instant of election night: ``registreringstid`` answers the version of each
file that the server listed then, from the history store.

A mirror of the server kept through the night (every version of the Ringsted results and
the geografi, each with its signature, as the replica serves them) is loaded with
``gateway history import``; the expected versions are computed from the raw recording's
file names (:mod:`rawdata`, standard library only): at an instant, the newest version whose
name stamp is not later, of the series of the asked voting area.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.cli import main
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import FV, RawArchive
from tests.support import REGISTERS, gateway_client, graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

AREA = 711804  # Ringsted Nørretorv: six versions of its result in the recording
SERIES = f"{FV}/valgresultater/valgresultater-Folketingsvalg-Ringsted_Kommune-Ringsted_Nørretorv-"
QUERY = """query ($t: DateTime, $area: Int!) {
  VALG_Valgresultat(registreringstid: $t,
                    where: {AfstemningsomraadeDagiId: {eq: $area}, Valgmappe: {eq: "%s"}}) {
    totalCount nodes { Fil Resultatart AfgivneStemmer GyldigeStemmer } } }""".replace("%s", FV)


def versions(raw: RawArchive) -> list[tuple[dt.datetime, str, dict[str, Any]]]:
    """The recorded versions of the area's result: (name stamp, path in the root, content)."""
    out = []
    for name in raw.files:
        if name.startswith(SERIES) and name.endswith(".json") and raw.files[name]:
            stamp = re.search(r"-(\d{12})\.json$", name)
            assert stamp is not None
            when = dt.datetime.strptime(stamp.group(1), "%d%m%Y%H%M").replace(tzinfo=dt.UTC)
            out.append((when, name.removeprefix(f"{FV}/"), raw.doc(name)))
    return sorted(out, key=lambda v: v[0])


def current_at(raw: RawArchive, instant: dt.datetime) -> tuple[str, dict[str, Any]] | None:
    found = [(path, doc) for when, path, doc in versions(raw) if when <= instant]
    return found[-1] if found else None


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, module_valg_replica: ValgReplica) -> Path:
    """The history database, loaded by ``gateway history import`` from a mirror."""
    folder = tmp_path_factory.mktemp("mirror")

    def wanted(path: str) -> bool:
        return path.startswith((f"{FV}/geografi/", SERIES))

    assert module_valg_replica.mirror(folder, wanted) > 6
    database = tmp_path_factory.mktemp("history") / "history.sqlite"
    assert main(["history", "import", "VALG", str(folder), "--history", str(database)]) == 0
    # Imported again: nothing changes (every version is known).
    assert main(["history", "import", "VALG", str(folder), "--history", str(database)]) == 0
    return database


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=[True, False])
async def client(
    request: pytest.FixtureRequest, module_valg_replica: ValgReplica, history: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(
        REGISTERS,
        module_valg_replica.overrides,
        fast_path=request.param,
        history_path=history,
    ) as running:
        yield running


def instants(raw: RawArchive) -> list[dt.datetime]:
    """Between and at the versions of the night (a minute after each, and one exactly)."""
    stamps = [when for when, _, _ in versions(raw)]
    assert len(stamps) >= 4
    return [
        stamps[0],
        stamps[1] - dt.timedelta(minutes=1),
        *(s + dt.timedelta(minutes=1) for s in stamps),
    ]


async def test_each_instant_answers_the_version_current_then(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    seen = set()
    for instant in instants(raw):
        expected = current_at(raw, instant)
        assert expected is not None
        path, doc = expected
        body = await graphql(client, QUERY, {"t": instant.isoformat(), "area": AREA})
        assert "errors" not in body, body
        (node,) = body["data"]["VALG_Valgresultat"]["nodes"]
        assert node == {
            "Fil": path,
            "Resultatart": doc["Resultatart"],
            "AfgivneStemmer": doc["AfgivneStemmer"],
            "GyldigeStemmer": doc["GyldigeStemmer"],
        }, instant
        seen.add(path)
    assert len(seen) >= 4  # the instants tell different versions apart


async def test_an_offset_instant_is_the_same_instant(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    instant = versions(raw)[1][0] + dt.timedelta(minutes=5)
    copenhagen = instant.astimezone(dt.timezone(dt.timedelta(hours=1)))
    naive = instant.replace(tzinfo=None).isoformat()  # without an offset: UTC
    answers = [
        (await graphql(client, QUERY, {"t": t, "area": AREA}))["data"]
        for t in (instant.isoformat(), copenhagen.isoformat(), naive)
    ]
    assert answers[0] == answers[1] == answers[2]


async def test_before_the_history_begins(client: httpx.AsyncClient, raw: RawArchive) -> None:
    first = min(when for when, _, _ in versions(raw))
    body = await graphql(client, QUERY, {"t": "2020-01-01T00:00:00Z", "area": AREA})
    assert body["data"]["VALG_Valgresultat"] == {"totalCount": 0, "nodes": []}
    (notice,) = [n for n in body["extensions"]["notices"] if n["code"] == "BEFORE_HISTORY"]
    # The geografi (released before the results) is the first data the history holds.
    assert dt.datetime.fromisoformat(notice["knownFrom"]) <= first


async def test_now_is_the_live_answer(client: httpx.AsyncClient, raw: RawArchive) -> None:
    body = await graphql(client, QUERY, {"t": None, "area": AREA})
    (node,) = body["data"]["VALG_Valgresultat"]["nodes"]
    assert node["Fil"] == versions(raw)[-1][1]


async def test_a_bad_instant_is_a_clear_error(client: httpx.AsyncClient) -> None:
    body = await graphql(client, QUERY, {"t": "yesterday", "area": AREA})
    assert body["errors"][0]["extensions"]["code"] in (
        "BAD_USER_INPUT",
        "GRAPHQL_VALIDATION_FAILED",
    )
    assert "yesterday" in body["errors"][0]["message"]


async def test_relations_are_answered_at_the_same_instant(
    client: httpx.AsyncClient, raw: RawArchive
) -> None:
    """The geography of a result asked at an instant comes from the history too: the live
    server is not asked for it, and it is the version listed then."""
    instant = versions(raw)[2][0] + dt.timedelta(minutes=1)
    query = """query ($t: DateTime, $area: Int!) {
      VALG_Valgresultat(registreringstid: $t,
                        where: {AfstemningsomraadeDagiId: {eq: $area}, Valgmappe: {eq: "%s"}}) {
        nodes { Fil AfstemningsomraadeGeografi { Fil Navn Dagi_id } } } }""".replace("%s", FV)
    live = client.app.state.gateway.sources["VALG"].sftp.stats  # type: ignore[attr-defined]
    before = (live.listings, live.downloads)
    body = await graphql(client, query, {"t": instant.isoformat(), "area": AREA})
    assert "errors" not in body, body
    (node,) = body["data"]["VALG_Valgresultat"]["nodes"]
    geography = node["AfstemningsomraadeGeografi"]
    assert geography is not None
    assert geography["Dagi_id"] == str(AREA)
    files = [
        name
        for name in raw.files
        if name.startswith(f"{FV}/geografi/Afstemningsomraade-") and name.endswith(".json")
    ]
    stamped = {}
    for name in files:
        stamp = re.search(r"-(\d{12})\.json$", name)
        assert stamp is not None
        when = dt.datetime.strptime(stamp.group(1), "%d%m%Y%H%M").replace(tzinfo=dt.UTC)
        if when <= instant:
            stamped[when] = name
    assert geography["Fil"] == stamped[max(stamped)].removeprefix(f"{FV}/")
    assert (live.listings, live.downloads) == before  # nothing asked of the live server


async def test_a_withdrawn_file_is_gone_from_then_on_only(
    client: httpx.AsyncClient, module_valg_replica: ValgReplica, raw: RawArchive
) -> None:
    """A file the server stops listing is deleted in the history at that moment: current
    answers and instants after it no longer see it, instants before it still do."""
    (newest_when, newest, _), (_, previous, _) = versions(raw)[-1], versions(raw)[-2]
    source = client.app.state.gateway.sources["VALG"]  # type: ignore[attr-defined]
    folder = f"{FV}/valgresultater"
    source.store.invalidate(folder)
    # (a variable no other request sends: the whole-answer cache has nothing for it)
    body = await graphql(client, QUERY, {"t": None, "area": AREA, "fresh": 1})
    assert body["data"]["VALG_Valgresultat"]["nodes"][0]["Fil"] == newest
    module_valg_replica.withdraw(f"{FV}/{newest}")
    try:
        source.store.invalidate(folder)
        body = await graphql(client, QUERY, {"t": None, "area": AREA, "fresh": 2})
        assert body["data"]["VALG_Valgresultat"]["nodes"][0]["Fil"] == previous  # as listed
        for task in list(source._marking):
            await task
        after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        body = await graphql(client, QUERY, {"t": after.isoformat(), "area": AREA})
        assert body["data"]["VALG_Valgresultat"]["nodes"][0]["Fil"] == previous
        before = newest_when + dt.timedelta(minutes=1)
        body = await graphql(client, QUERY, {"t": before.isoformat(), "area": AREA})
        assert body["data"]["VALG_Valgresultat"]["nodes"][0]["Fil"] == newest
    finally:
        module_valg_replica.restore(f"{FV}/{newest}")
        source.store.invalidate(folder)
