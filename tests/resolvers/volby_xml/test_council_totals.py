"""Council-level party totals (``VOLEBNI_STRANA_OBEC``), against the replica and the raw XML.

A council elected in several districts (Praha hl.m. and six Prague boroughs in 2014) has its
parties only under ``OBVOD``; the totals sum them per party. Expected values are read from the
recorded district documents and ČSÚ's national summary with the standard library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.model.errors import DescriptorError
from gateway.model.query import And, Condition, Query
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.replica.server import VolbyReplica
from resolvers.volby_xml.totals import CouncilTotals, percent
from tests.resolvers.volby_xml.conftest import DATA, register
from tests.resolvers.volby_xml.raw import children, council, root_of
from tests.support import gateway_client, graphql, register_subset

Make = Callable[..., Awaitable[VolbySource]]

PRAHA = "554782"
DISTRICTS_2014 = (DATA / "kv2014" / "CZ0100.xml", DATA / "kv2014" / "CZ0806.xml")


def _hundredths(part: int, whole: int) -> float:
    exact = Decimal(part) * 100 / Decimal(whole)
    return float(exact.quantize(Decimal("0.01"), ROUND_HALF_UP))


def _lists(obec: ET.Element) -> list[tuple[int | None, ET.Element]]:
    """(CIS_OBVODU or None, VOLEBNI_STRANA) of every list of a council block."""
    blocks: list[tuple[int | None, ET.Element]] = [(None, obec)]
    blocks += [(int(o.get("CIS_OBVODU", "")), o) for o in children(obec, "OBVOD")]
    return [
        (district, party)
        for district, block in blocks
        for result in children(block, "VYSLEDEK")
        for party in children(result, "VOLEBNI_STRANA")
    ]


def raw_totals(obec: ET.Element) -> dict[str, dict[str, Any]]:
    """Per VSTRANA the sums over a council's districts, straight from its recorded block."""
    (turnout,) = children(children(obec, "VYSLEDEK")[0], "UCAST")
    valid = int(turnout.get("PLATNE_HLASY", ""))
    members = int(obec.get("VOLENO_ZASTUP", ""))
    out: dict[str, dict[str, Any]] = {}
    for district, party in _lists(obec):
        total = out.setdefault(
            party.get("VSTRANA", ""),
            {"HLASY": 0, "ZASTUPITELE_POCET": 0, "KANDIDATU_POCET": 0, "lists": 0, "in": set()},
        )
        total["HLASY"] += int(party.get("HLASY", ""))
        total["ZASTUPITELE_POCET"] += int(party.get("ZASTUPITELE_POCET", ""))
        total["KANDIDATU_POCET"] += int(party.get("KANDIDATU_POCET", ""))
        total["lists"] += 1
        total["in"].add(district)
    for total in out.values():
        total["HLASY_PROC"] = _hundredths(total["HLASY"], valid)
        total["ZASTUPITELE_PROC"] = _hundredths(total["ZASTUPITELE_POCET"], members)
        total["OBVODU_POCET"] = len(total.pop("in"))
        total["LISTIN_POCET"] = total.pop("lists")
        total["PLATNE_HLASY"] = valid
    return out


def national(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(OZNAC_TYPU, VSTRANA) → (HLASY, ZASTUPITELE_POCET) of ČSÚ's national summary."""
    return {
        (typ.get("OZNAC_TYPU", ""), party.get("VSTRANA", "")): (
            int(party.get("HLASY", "")),
            int(party.get("ZASTUPITELE_POCET", "")),
        )
        for typ in children(root_of(path), "TYP_ZASTUP")
        for party in children(typ, "VOLEBNI_STRANA")
    }


def recorded_councils() -> list[ET.Element]:
    return [obec for path in DISTRICTS_2014 for obec in children(root_of(path), "OBEC")]


def got_totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    fields = ("HLASY", "ZASTUPITELE_POCET", "KANDIDATU_POCET", "HLASY_PROC", "ZASTUPITELE_PROC",
              "OBVODU_POCET", "LISTIN_POCET", "PLATNE_HLASY")  # fmt: skip
    return {r["VSTRANA"]: {f: r[f] for f in fields} for r in rows}


def totals_query(*conditions: Condition) -> Query:
    entity = register("CZ").datamodel.entities["VOLEBNI_STRANA_OBEC"]
    return Query(entity, And(conditions))


# --- the adapter ------------------------------------------------------------------------------


async def test_praha_2014_totals_sum_its_seven_districts(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    page = await source.fetch(
        totals_query(Condition("KODZASTUP", "eq", PRAHA), Condition("volby", "eq", "kv2014"))
    )
    obec = council(DATA / "kv2014" / "CZ0100.xml", PRAHA)
    assert children(children(obec, "VYSLEDEK")[0], "VOLEBNI_STRANA") == []  # the quirk
    expected = raw_totals(obec)
    assert got_totals(page.rows) == expected
    assert sum(t["ZASTUPITELE_POCET"] for t in expected.values()) == int(
        obec.get("VOLENO_ZASTUP", "")
    )
    assert max(t["OBVODU_POCET"] for t in expected.values()) == 7
    row = next(r for r in page.rows if r["VSTRANA"] == "7")
    assert row["OBEC_ID"] == f"kv2014|{PRAHA}"
    assert row["OZNAC_TYPU"] == "OBEC"
    assert row["NAZEV_STRANY"] == "Česká strana sociálně demokratická"


async def test_every_recorded_council_has_its_totals(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    source = await make_source(volby_replica)
    councils = recorded_councils()
    got: dict[str, dict[str, dict[str, Any]]] = {}
    for nuts in ("CZ0100", "CZ0806"):
        page = await source.fetch(
            totals_query(Condition("NUTS", "eq", nuts), Condition("volby", "eq", "kv2014"))
        )
        for row in page.rows:
            got.setdefault(row["KODZASTUP"], {}).update(got_totals([row]))
    assert got == {o.get("KODZASTUP", ""): raw_totals(o) for o in councils}
    several = [o for o in councils if int(o.get("POCET_OBVODU", "")) > 1]
    assert len(several) == 7


async def test_with_one_district_the_totals_are_the_recorded_figures(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    # The recomputed percentages round as ČSÚ does: where a council has one list per party,
    # its totals are the recorded VOLEBNI_STRANA values.
    source = await make_source(volby_replica)
    page = await source.fetch(
        totals_query(Condition("KODZASTUP", "eq", "551082"), Condition("volby", "eq", "kv2022"))
    )
    parties = children(
        children(council(DATA / "kv2022" / "obec_551082.xml", "551082"), "VYSLEDEK")[0],
        "VOLEBNI_STRANA",
    )
    fields = ("HLASY", "HLASY_PROC", "ZASTUPITELE_POCET", "ZASTUPITELE_PROC")
    assert {r["VSTRANA"]: tuple(r[f] for f in fields) for r in page.rows} == {
        p.get("VSTRANA"): tuple(float(p.get(f, "")) for f in fields) for p in parties
    }
    checked = 0
    for obec in recorded_councils():
        if children(obec, "OBVOD"):
            continue
        own = children(children(obec, "VYSLEDEK")[0], "VOLEBNI_STRANA")
        codes = [p.get("VSTRANA") for p in own]
        totals = raw_totals(obec)
        for party in own:
            if codes.count(party.get("VSTRANA")) == 1:
                total = totals[party.get("VSTRANA", "")]
                assert total["HLASY_PROC"] == float(party.get("HLASY_PROC", ""))
                assert total["ZASTUPITELE_PROC"] == float(party.get("ZASTUPITELE_PROC", ""))
                checked += 1
    assert checked > 400


async def test_totals_match_the_national_summary_where_the_recording_covers_a_party(
    volby_replica: VolbyReplica, make_source: Make
) -> None:
    # A party whose national total (per council type) is what the recorded councils give it
    # stood only in them: the totals of a several-district council must equal the national
    # figures, votes and seats.
    summary = national(DATA / "kv2014" / "vysledky.xml")
    recorded: dict[tuple[str, str], list[int]] = {}
    where: dict[tuple[str, str], set[str]] = {}
    for obec in recorded_councils():
        for vstrana, total in raw_totals(obec).items():
            key = (obec.get("OZNAC_TYPU", ""), vstrana)
            sums = recorded.setdefault(key, [0, 0])
            sums[0] += total["HLASY"]
            sums[1] += total["ZASTUPITELE_POCET"]
            where.setdefault(key, set()).add(obec.get("KODZASTUP", ""))
    several = {o.get("KODZASTUP") for o in recorded_councils() if children(o, "OBVOD")}
    covered = {
        key: next(iter(where[key]))
        for key, sums in recorded.items()
        if tuple(sums) == summary.get(key) and len(where[key]) == 1 and where[key] <= several
    }
    assert len(covered) >= 8
    assert any(summary[key][1] > 0 for key in covered)  # seats too, not only votes
    source = await make_source(volby_replica)
    for (typ, vstrana), kodzastup in sorted(covered.items()):
        page = await source.fetch(
            totals_query(
                Condition("KODZASTUP", "eq", kodzastup),
                Condition("VSTRANA", "eq", vstrana),
                Condition("volby", "eq", "kv2014"),
            )
        )
        (row,) = page.rows
        assert row["OZNAC_TYPU"] == typ
        assert (row["HLASY"], row["ZASTUPITELE_POCET"]) == summary[(typ, vstrana)], vstrana
    for key, sums in recorded.items():
        assert sums[0] <= summary[key][0], key  # no council total exceeds the country's


# --- through GraphQL ---------------------------------------------------------------------------


@pytest.fixture
async def client(volby_replica: VolbyReplica) -> AsyncIterator[httpx.AsyncClient]:
    with register_subset("CZ") as root:
        async with gateway_client(root, volby_replica.overrides) as gateway:
            yield gateway


async def test_a_council_lists_its_totals_where_its_own_parties_are_empty(
    client: httpx.AsyncClient,
) -> None:
    answer = await graphql(
        client,
        """{ CZ_OBEC(where: {NUTS: {eq: "CZ0100"}, volby: {eq: "kv2014"}, POCET_OBVODU: {gt: 1}},
                     first: 10) {
               nodes { KODZASTUP
                 VOLEBNI_STRANA { totalCount }
                 VOLEBNI_STRANA_OBEC(first: 100) { totalCount
                   nodes { VSTRANA HLASY HLASY_PROC ZASTUPITELE_POCET ZASTUPITELE_PROC
                           OBEC { NAZEVZAST } } } } } }""",
    )
    assert "errors" not in answer, answer["errors"]
    nodes = answer["data"]["CZ_OBEC"]["nodes"]
    blocks = {o.get("KODZASTUP", ""): o for o in children(root_of(DISTRICTS_2014[0]), "OBEC")}
    several = {k for k, o in blocks.items() if children(o, "OBVOD")}
    assert {n["KODZASTUP"] for n in nodes} == several
    for node in nodes:
        obec = blocks[node["KODZASTUP"]]
        assert node["VOLEBNI_STRANA"]["totalCount"] == 0
        expected = {
            vstrana: (t["HLASY"], t["HLASY_PROC"], t["ZASTUPITELE_POCET"], t["ZASTUPITELE_PROC"])
            for vstrana, t in raw_totals(obec).items()
        }
        totals = node["VOLEBNI_STRANA_OBEC"]
        assert totals["totalCount"] == len(expected)
        got = {
            n["VSTRANA"]: (
                n["HLASY"],
                n["HLASY_PROC"],
                n["ZASTUPITELE_POCET"],
                n["ZASTUPITELE_PROC"],
            )
            for n in totals["nodes"]
        }
        assert got == expected
        assert {n["OBEC"]["NAZEVZAST"] for n in totals["nodes"]} == {obec.get("NAZEVZAST")}


def test_a_totals_entity_the_datamodel_lacks_is_a_descriptor_error() -> None:
    datamodel = register("CZ").datamodel
    with pytest.raises(DescriptorError, match="VOLEBNI_STRANA_CELKEM"):
        CouncilTotals.of(datamodel, {"totals": "VOLEBNI_STRANA_CELKEM"})
    assert CouncilTotals.of(datamodel, {}) is None
    assert CouncilTotals.of(datamodel, None) is None
    assert percent(1, 3) == 33.33
    assert percent(2, 3) == 66.67
    assert percent(1, 8) == 12.5  # 12.5 exactly: no binary rounding
    assert percent(1, 400) == 0.25
    assert percent(1, 800) == 0.13  # 0.125 rounds half up
    assert percent(5, 0) == 0.0
