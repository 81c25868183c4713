"""Answers of the adapter over HTTP from the replica, checked against the raw CSV.

These tests only read, so they share one replica and one adapter (and its cache) per module.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.model.query import Condition
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.resolvers.wahldaten_csv.model import DATA_DIR, register
from tests.resolvers.wahldaten_csv.queries import ask
from tests.resolvers.wahldaten_csv.raw import election, elections, header, party_sums

pytestmark = pytest.mark.asyncio(loop_scope="module")

ELECTIONS = [raw.folder.name for raw in elections()]


async def _opened(options: dict[str, object]) -> AsyncIterator[WahldatenSource]:
    cache = Cache()
    source = WahldatenSource(register(options), options, Services(cache))
    await source.start()
    try:
        yield source
    finally:
        await source.aclose()
        await cache.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def source(module_wahldaten_replica: WahldatenDemo) -> AsyncIterator[WahldatenSource]:
    async for opened in _opened({"url": module_wahldaten_replica.url, "ttl": 60}):
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local() -> AsyncIterator[WahldatenSource]:
    async for opened in _opened({"directory": str(DATA_DIR)}):
        yield opened


async def votes_per_party(source: WahldatenSource, wahl: str, letter: str) -> dict[str, int]:
    """As the gateway resolves Stimmzettel.Stimmen: one ``in`` query over the ballot's ids."""
    ballot = await ask(source, "Stimmzettel", wahl=wahl)
    party_of = {
        r["stimmzettel_id"]: r["partei_kurzname"] or r["partei_langname"] for r in ballot.rows
    }
    counts = await ask(
        source,
        "Stimme",
        Condition("stimmzettel_id", "in", sorted(party_of)),
        kennung=letter,
        kandidatnummer=None,
    )
    sums: dict[str, int] = defaultdict(int)
    for row in counts.rows:
        if row["anzahl"] is not None:
            sums[party_of[row["stimmzettel_id"]]] += row["anzahl"]
    return dict(sums)


@pytest.mark.parametrize("folder", ELECTIONS)
async def test_votes_per_party_over_all_districts_equal_the_raw_csv(
    source: WahldatenSource, folder: str
) -> None:
    raw = election(folder)
    for letter in ("D", "F"):
        expected = party_sums(raw, letter)
        assert await votes_per_party(source, raw.wahl, letter) == expected
    assert party_sums(raw, "D")


async def test_one_party_through_the_relation_path(source: WahldatenSource) -> None:
    raw = election("karlsruhe-ltw2021")
    # Volt is position 15 in constituency 27 and 13 in 28: the join goes by each district's ballot.
    ballot = await ask(source, "Stimmzettel", wahl=raw.wahl, partei_kurzname="Volt")
    assert sorted(r["stimmzettel_position"] for r in ballot.rows) == [13, 15]
    counts = await ask(
        source,
        "Stimme",
        Condition("stimmzettel_id", "in", [r["stimmzettel_id"] for r in ballot.rows]),
    )
    assert sum(r["anzahl"] or 0 for r in counts.rows) == party_sums(raw, "D")["Volt"]
    assert {r["position"] for r in counts.rows} == {13, 15}


async def test_karlsruhe_600_columns_and_kall_20_columns_have_one_shape(
    source: WahldatenSource,
) -> None:
    karlsruhe, kall = election("karlsruhe-eu-gemeinderat-2024"), election("kall-kommunal2020")
    karlsruhe_file, kall_file = karlsruhe.file("Wahlergebnisse"), kall.file("Wahlergebnisse")
    assert karlsruhe_file is not None
    assert kall_file is not None
    assert (len(header(karlsruhe_file)), len(header(kall_file))) == (600, 21)
    shapes = []
    for raw in (karlsruhe, kall):
        results = await ask(source, "Wahlergebnis", wahl=raw.wahl)
        votes = await ask(
            source, "Stimme", Condition("bezirk_id", "in", [results.rows[0]["bezirk_id"]])
        )
        path = raw.file("Wahlergebnisse")
        assert path is not None
        vote_columns = [c for c in header(path) if re.fullmatch(r"[DF]\d+(_\d+)?", c)]
        assert [r["spalte"] for r in votes.rows] == vote_columns
        assert len(results.rows) == len(raw.rows("Wahlergebnisse"))
        shapes.append((set(results.rows[0]), set(votes.rows[0])))
    assert shapes[0] == shapes[1]


async def test_candidate_votes_join_the_candidate(source: WahldatenSource) -> None:
    raw = election("karlsruhe-eu-gemeinderat-2024")
    expected: dict[tuple[str, int], int] = defaultdict(int)
    parties = {r["stimmzettel-position"]: r["partei-kurzname"] for r in raw.rows("Stimmzettel")}
    for row in raw.rows("Wahlergebnisse"):
        for column, cell in row.items():
            match = re.fullmatch(r"D(\d+)_(\d+)", column)
            if match and cell:
                expected[(parties[match.group(1)], int(match.group(2)))] += int(cell)
    candidates = await ask(source, "Kandidat", wahl=raw.wahl, partei_kurzname="KAG")
    (candidate,) = candidates.rows
    counts = await ask(source, "Stimme", Condition("kandidat_id", "in", [candidate["kandidat_id"]]))
    assert (
        sum(r["anzahl"] for r in counts.rows)
        == expected[("KAG", candidate["kandidat_listenplatz"])]
    )
    assert len(counts.rows) == len(raw.rows("Wahlergebnisse"))


async def test_district_relations(source: WahldatenSource) -> None:
    raw = election("karlsruhe-ltw2021")
    districts = {r["bezirk-nr"]: r for r in raw.rows("Wahlgebietseinteilungen")}
    results = await ask(source, "Wahlergebnis", wahl=raw.wahl)
    first = results.rows[0]
    (district,) = (
        await ask(source, "Wahlgebiet", Condition("bezirk_id", "in", [first["bezirk_id"]]))
    ).rows
    assert district["bezirk_name"] == districts[first["bezirk_nr"]]["bezirk-name"]
    ballot = await ask(
        source,
        "Stimmzettel",
        Condition("stimmzettel_gebiet_id", "in", [district["stimmzettel_gebiet_id"]]),
    )
    area = districts[first["bezirk_nr"]]["stimmzettel-gebiet-nr"]
    expected = [
        r["partei-kurzname"] for r in raw.rows("Stimmzettel") if r["stimmzettel-gebiet-nr"] == area
    ]
    assert [r["partei_kurzname"] for r in ballot.rows] == expected
    params = await ask(source, "Wahlparameter", Condition("wahl", "in", [district["wahl"]]))
    assert [r["wahl_bezeichnung"] for r in params.rows] == [
        r["wahl-bezeichnung"] for r in raw.rows("Wahlparameter")
    ]


async def test_candidates_find_their_party_on_the_ballot(source: WahldatenSource) -> None:
    raw = election("duesseldorf-kommunal2020")
    candidates = await ask(source, "Kandidat", wahl=raw.wahl)
    ballot = await ask(
        source,
        "Stimmzettel",
        Condition("partei_id", "in", [r["partei_id"] for r in candidates.rows]),
    )
    by_party = {r["partei_id"]: r["stimmzettel_position"] for r in ballot.rows}
    positions = {
        r["partei-langname"] if not r["partei-kurzname"] else r["partei-kurzname"]: int(
            r["stimmzettel-position"]
        )
        for r in raw.rows("Stimmzettel")
    }
    for row in candidates.rows:
        assert (
            by_party[row["partei_id"]]
            == positions[row["partei_kurzname"] or row["partei_langname"]]
        )


async def test_directory_and_http_answer_alike(
    source: WahldatenSource, local: WahldatenSource
) -> None:
    for entity in ("Wahlparameter", "Wahlgebiet", "Stimmzettel", "Kandidat", "Wahlergebnis"):
        remote, here = await ask(source, entity), await ask(local, entity)
        key = source.register.datamodel.entities[entity].key
        assert sorted(remote.rows, key=lambda r: [r[k] for k in key]) == sorted(
            here.rows, key=lambda r: [r[k] for k in key]
        )
        assert sorted(map(str, remote.notices)) == sorted(map(str, here.notices))
