"""The volby.cz adapter against the replica on a loopback socket (expected values from raw XML)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.model.errors import (
    BadUserInputError,
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.model.query import And, Condition, Filter, Page, Query
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.replica.server import Fault, VolbyReplica
from tests.resolvers.volby_xml.conftest import DATA, register
from tests.resolvers.volby_xml.raw import (
    batch_files,
    children,
    council,
    newest_precincts,
    party_votes,
    root_of,
)
from tests.resolvers.volby_xml.test_batches import MUNICIPAL, RESENT

Make = Callable[..., Awaitable[VolbySource]]


def query(entity: str, where: Filter | None = None, *, reg: str = "CZ", **kw: Any) -> Query:
    return Query(register(reg).datamodel.entities[entity], where, **kw)


def eq(field: str, value: Any) -> Condition:
    return Condition(field, "eq", value)


def requested(volby_replica: VolbyReplica) -> list[tuple[str, dict[str, str]]]:
    return [(r.path, r.params) for r in volby_replica.log]


def votes_of(page: Page) -> dict[tuple[int | None, int], int]:
    return {(r["CIS_OBVODU"], r["POR_STR_HLAS_LIST"]): r["HLASY"] for r in page.rows}


# --- result documents ------------------------------------------------------------------------


async def test_praha_2014_votes_per_party_and_district(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    where = And((eq("KODZASTUP", "554782"), eq("volby", "kv2014")))
    page = await source.fetch(query("VOLEBNI_STRANA", where))
    expected = party_votes(council(DATA / "kv2014" / "CZ0100.xml", "554782"))
    assert votes_of(page) == expected
    assert {district for district, _ in expected} == set(range(1, 8))
    assert requested(volby_replica) == [
        ("/pls/kv2014/vysledky_obec", {"datumvoleb": "20141010", "cislo_obce": "554782"})
    ]
    (cost,) = [n for n in page.notices if n["code"] == "UPSTREAM_COST"]
    assert cost["documents"] == 1
    assert cost["fanout"] is False


async def test_brno_bohunice_2022(volby_replica: VolbyReplica, make_source: Make) -> None:
    source = await make_source(volby_replica)
    where = And((eq("KODZASTUP", "551082"), eq("volby", "kv2022")))
    page = await source.fetch(query("VOLEBNI_STRANA", where))
    assert votes_of(page) == party_votes(council(DATA / "kv2022" / "obec_551082.xml", "551082"))
    names = {r["NAZEV_STRANY"] for r in page.rows}
    assert "SPOLEČNĚ TOP 09 a nezávislí" in names
    assert requested(volby_replica) == [
        ("/pls/kv2022/vysledky_obec", {"datumvoleb": "20220923", "cislo_obce": "551082"})
    ]


async def test_ostrava_district_in_iso_8859_2(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    where = And((eq("NUTS", "CZ0806"), eq("volby", "kv2014")))
    page = await source.fetch(query("OBEC", where, order=()))
    expected = [
        o.get("NAZEVZAST") for o in children(root_of(DATA / "kv2014" / "CZ0806.xml"), "OBEC")
    ]
    assert [r["NAZEVZAST"] for r in page.rows] == expected
    assert {"Slezská Ostrava", "Moravská Ostrava a Přívoz", "Vřesina"} <= set(expected)
    assert requested(volby_replica) == [
        ("/pls/kv2014/vysledky_obce_okres", {"datumvoleb": "20141010", "nuts": "CZ0806"})
    ]


async def test_relation_keys_select_the_documents(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    districts = await source.fetch(query("OBVOD", Condition("OBEC_ID", "in", ["kv2014|554782"])))
    assert sorted(r["CIS_OBVODU"] for r in districts.rows) == list(range(1, 8))
    assert requested(volby_replica) == [
        ("/pls/kv2014/vysledky_obec", {"datumvoleb": "20141010", "cislo_obce": "554782"})
    ]
    volby_replica.log.clear()
    national = await source.fetch(
        query("VOLEBNI_STRANA", Condition("TYP_ZASTUP_ID", "in", ["kv2014|MCMO"]))
    )
    (mcmo,) = [
        t
        for t in children(root_of(DATA / "kv2014" / "vysledky.xml"), "TYP_ZASTUP")
        if t.get("OZNAC_TYPU") == "MCMO"
    ]
    expected = {p.get("VSTRANA"): int(p.get("HLASY", "")) for p in children(mcmo, "VOLEBNI_STRANA")}
    assert {r["VSTRANA"]: r["HLASY"] for r in national.rows} == expected
    assert requested(volby_replica) == [("/pls/kv2014/vysledky", {"datumvoleb": "20141010"})]


async def test_without_a_filter_the_districts_are_read_with_a_limit(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    districts = {"kv2014": ["CZ0100", "CZ0806", "CZ0201", "CZ0202"], "kv2022": []}
    source = await make_source(volby_replica, concurrency=1, districts=districts)
    volby_replica.faults.inject(Fault("slow", match="vysledky_obce_okres", times=None, delay=0.15))
    started = time.perf_counter()
    page = await source.fetch(query("OBEC"))
    elapsed = time.perf_counter() - started
    assert elapsed >= 4 * 0.15  # one at a time
    assert len(page.rows) == 58 + 36
    (cost,) = [n for n in page.notices if n["code"] == "UPSTREAM_COST"]
    assert cost["fanout"] is True
    assert cost["documents"] == 4
    assert cost["concurrency"] == 1
    assert any(n["code"] == "NOT_YET_AVAILABLE" for n in page.notices)  # CZ0201, CZ0202


async def test_rows_needing_the_district_come_from_district_documents(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    where = And((eq("KODZASTUP", "554782"), eq("volby", "kv2014")))
    page = await source.fetch(query("OBEC", where, fields=frozenset({"NUTS", "NAZEVZAST"})))
    assert [(r["NAZEVZAST"], r["NUTS"]) for r in page.rows] == [("Praha hl.m.", "CZ0100")]
    assert {r[0] for r in requested(volby_replica)} == {"/pls/kv2014/vysledky_obce_okres"}


async def test_result_documents_are_cached_for_the_ttl(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, ttl=0.3)
    wanted = query("TYP_ZASTUP", eq("volby", "kv2014"))
    first = await source.fetch(wanted)
    await source.fetch(wanted)
    assert len(volby_replica.log) == 1
    await asyncio.sleep(0.4)
    again = await source.fetch(wanted)
    assert len(volby_replica.log) == 2
    assert again.rows == first.rows


# --- errors -------------------------------------------------------------------------------------


async def test_a_refused_user_parameter_is_bad_input(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    with pytest.raises(BadUserInputError, match="nuts"):
        await source.fetch(query("OBEC", And((eq("NUTS", "CZ9999"), eq("volby", "kv2014")))))


async def test_a_refused_configured_parameter_is_an_upstream_error(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, districts=["CZ01"])
    with pytest.raises(UpstreamInvalidError, match="nuts"):
        await source.fetch(query("OBEC", eq("volby", "kv2014")))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("status", match="vysledky", status=503, times=None), UpstreamUnavailableError),
        (Fault("truncate", match="vysledky", times=None), UpstreamInvalidError),
        (Fault("slow", match="vysledky", delay=1.0, times=None), UpstreamTimeoutError),
    ],
)
async def test_upstream_faults_become_gateway_errors(
    volby_replica: VolbyReplica, make_source: Make, fault: Fault, error: type[Exception]
) -> None:
    source = await make_source(volby_replica, timeout=0.3, retries=1, backoff=0.01)
    volby_replica.faults.inject(fault)
    with pytest.raises(error):
        await source.fetch(query("TYP_ZASTUP", eq("volby", "kv2014")))
    volby_replica.faults.clear()


# --- precinct batches ---------------------------------------------------------------------------


def precincts_of(page: Page, votes: Page) -> dict[tuple[int, str, str], dict[str, Any]]:
    by_id: dict[str, dict[int, int]] = {}
    for row in votes.rows:
        by_id.setdefault(row["OKRSEK_ID"], {})[row["PORADOVE_CISLO"]] = row["HLASY"]
    return {
        (r["KOLO"], r["CIS_OBEC"], r["CIS_OKRSEK"]): {
            "PORADI_ZPRAC": r["PORADI_ZPRAC"],
            "OPAKOVANE": r["OPAKOVANE"],
            "PLATNE_HLASY": r["PLATNE_HLASY"],
            "votes": by_id.get(r["OKRSEK_ID"], {}),
        }
        for r in page.rows
    }


async def test_presidential_batches_newest_version_wins(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, "CZPREZ")
    precincts = await source.fetch(query("OKRSEK", reg="CZPREZ"))
    votes = await source.fetch(query("HLASY_OKRSEK", reg="CZPREZ"))
    assert precincts_of(precincts, votes) == newest_precincts(batch_files())
    progress = await source.fetch(query("PRUBEH", reg="CZPREZ"))
    for row in progress.rows:
        files = batch_files(row["KOLO"])
        newest = (
            root_of(files[-1])
            if row["KOLO"] == 2
            else root_of(DATA / "prez2023" / "kolo-1_davka-49.xml")
        )
        davka = children(newest, "DAVKA")[0]
        assert row["POSLEDNI_DAVKA"] == int(davka.get("PORADI_DAVKY", ""))
        assert row["OKRSKY_ZPRAC"] == int(davka.get("OKRSKY_ZPRAC", ""))
        assert row["DAVKY_NACTENE"] == len(files)
        assert row["OKRSKY_SECTENE"] == len(newest_precincts(files))
    batches = await source.fetch(query("DAVKA", eq("KOLO", 1), reg="CZPREZ"))
    assert [r["PORADI_DAVKY"] for r in batches.rows] == [1, 25, 44, 45, 49]


async def test_batches_released_over_time_are_read_incrementally(
    manual_volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(manual_volby_replica, "CZPREZ", ttl=0.1)
    round_1 = eq("KOLO", 1)
    empty = await source.fetch(query("OKRSEK", round_1, reg="CZPREZ"))
    assert empty.rows == []
    assert any(n["code"] == "NOT_YET_AVAILABLE" for n in empty.notices)
    manual_volby_replica.release("prez2023", "1", 25)
    await asyncio.sleep(0.15)
    await source.fetch(query("OKRSEK", round_1, reg="CZPREZ"))
    manual_volby_replica.release("prez2023", "1", 49)
    manual_volby_replica.log.clear()
    await asyncio.sleep(0.15)
    page = await source.fetch(query("OKRSEK", round_1, reg="CZPREZ"))
    numbers = [r.params["davka"] for r in manual_volby_replica.log]
    assert numbers == ["", *map(str, range(26, 49))]
    votes = await source.fetch(query("HLASY_OKRSEK", round_1, reg="CZPREZ"))
    assert precincts_of(page, votes) == newest_precincts(batch_files(1))


async def test_a_failing_batch_keeps_what_was_read_and_resumes(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica, "CZPREZ", concurrency=1, retries=0)
    volby_replica.faults.inject(Fault("status", match="kolo=1&davka=44", status=502, times=None))
    first = await source.fetch(query("DAVKA", eq("KOLO", 1), reg="CZPREZ"))
    assert [r["PORADI_DAVKY"] for r in first.rows] == [1, 25, 49]
    assert any(n["code"] == "STALE" for n in first.notices)
    volby_replica.faults.clear()
    second = await source.fetch(query("DAVKA", eq("KOLO", 1), reg="CZPREZ"))
    assert [r["PORADI_DAVKY"] for r in second.rows] == [1, 25, 44, 45, 49]
    assert not any(n["code"] == "STALE" for n in second.notices)


async def test_municipal_batches_through_the_replica(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    for number, content in MUNICIPAL.items():
        volby_replica.add_batch("kv2022", "", number, content)
    source = await make_source(volby_replica)
    page = await source.fetch(query("OKRSEK", eq("volby", "kv2022")))
    assert len(page.rows) == 3
    (corrected,) = [r for r in page.rows if r["CIS_OBEC"] == "532819"]
    assert corrected["PORADI_ZPRAC"] == RESENT["poradi"]
    assert {p for p, q in requested(volby_replica)} == {"/pls/kv2022/vysledky_okrsky"}
    progress = await source.fetch(query("PRUBEH"))
    by_election = {r["volby"]: r for r in progress.rows}
    assert by_election["kv2022"]["DAVKY_NACTENE"] == 2
    assert by_election["kv2022"]["OKRSKY_SECTENE"] == 3
    assert by_election["kv2014"]["DAVKY_NACTENE"] == 0


async def test_councils_of_a_known_district_are_read_from_its_document(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    councils = await source.fetch(query("OBEC", And((eq("NUTS", "CZ0806"), eq("volby", "kv2014")))))
    ids = [r["OBEC_ID"] for r in councils.rows]
    volby_replica.log.clear()
    turnout = await source.fetch(query("UCAST", Condition("OBEC_ID", "in", ids)))
    assert len(turnout.rows) == len(ids) == 36
    assert volby_replica.log == []  # the district document is still cached
    single = await source.fetch(query("UCAST", Condition("OBEC_ID", "in", ids[:1])))
    assert len(single.rows) == 1
    assert requested(volby_replica) == [
        (
            "/pls/kv2014/vysledky_obec",
            {"datumvoleb": "20141010", "cislo_obce": ids[0].split("|")[1]},
        )
    ]
