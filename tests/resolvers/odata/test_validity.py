"""``virkningstid``: FT's actors valid at an instant (``startdato``/``slutdato`` as the
bitemporality annex declares them), now and at a registreringstid, and its relations.

Expected rows are the recorded SQLite dump filtered here: valid at ``t`` when ``startdato`` is
null or not after ``t`` and ``slutdato`` is null or after it, on Copenhagen's wall clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.resolvers.odata.raw import aktoer
from tests.support import graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
ACTORS = """query ($v: DateTime, $type: Int!) {
  FT_Aktoer(first: 1000, virkningstid: $v, where: {typeid: {eq: $type}}) {
    totalCount nodes { id } } }"""


def valid(row: dict[str, Any], at: dt.datetime) -> bool:
    wall = at.astimezone(COPENHAGEN).replace(tzinfo=None)
    start, end = row["startdato"], row["slutdato"]
    return (start is None or dt.datetime.fromisoformat(start) <= wall) and (
        end is None or dt.datetime.fromisoformat(end) > wall
    )


INSTANTS = [
    dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2011, 9, 15, 12, tzinfo=dt.UTC),
    dt.datetime(2019, 6, 5, 22, 30, tzinfo=dt.UTC),
]


@pytest.mark.parametrize("at", INSTANTS, ids=lambda t: t.date().isoformat())
async def test_the_actors_valid_then(client: httpx.AsyncClient, at: dt.datetime) -> None:
    # typeid 4: Folketingsgrupper (a few hundred rows, with and without end dates)
    expected = sorted(i for i, r in aktoer().items() if r["typeid"] == 4 and valid(r, at))
    answer = await graphql(client, ACTORS, {"v": at.isoformat(), "type": 4})
    assert "errors" not in answer, answer
    found = answer["data"]["FT_Aktoer"]
    assert found["totalCount"] == len(expected)
    assert sorted(n["id"] for n in found["nodes"]) == expected
    assert "notices" not in answer.get("extensions", {})


async def test_without_virkningstid_every_row(client: httpx.AsyncClient) -> None:
    answer = await graphql(client, ACTORS, {"v": None, "type": 4})
    every = [i for i, r in aktoer().items() if r["typeid"] == 4]
    assert answer["data"]["FT_Aktoer"]["totalCount"] == len(every)


async def test_an_entity_without_validity_is_not_narrowed_and_says_so(
    client: httpx.AsyncClient,
) -> None:
    answer = await graphql(
        client,
        '{ FT_Aktoertype(virkningstid: "2010-01-01T00:00:00Z") { totalCount } }',
    )
    assert answer["data"]["FT_Aktoertype"]["totalCount"] == 12
    (notice,) = answer["extensions"]["notices"]
    assert notice["code"] == "VALIDITY_UNDECLARED"
    assert notice["entity"] == "Aktørtype"


async def test_virkningstid_is_carried_into_relations(client: httpx.AsyncClient) -> None:
    at = dt.datetime(2011, 9, 15, 12, tzinfo=dt.UTC)
    query = """query ($v: DateTime) {
      FT_Stemme(first: 200, virkningstid: $v) { nodes { id aktoerid Aktoer { id } } } }"""
    answer = await graphql(client, query, {"v": at.isoformat()})
    assert "errors" not in answer, answer
    actors = aktoer()
    nodes = answer["data"]["FT_Stemme"]["nodes"]
    assert len(nodes) == 200
    linked = [n["Aktoer"] is not None for n in nodes]
    expected = [n["aktoerid"] in actors and valid(actors[n["aktoerid"]], at) for n in nodes]
    assert linked == expected
    assert any(expected)
    assert not all(expected)
    codes = [(n["code"], n["entity"]) for n in answer["extensions"]["notices"]]
    assert codes == [("VALIDITY_UNDECLARED", "Stemme")]


def instant(wall_clock: str | None) -> dt.datetime | None:
    """An FT value (Copenhagen's wall clock) as an instant in UTC."""
    if wall_clock is None:
        return None
    local = dt.datetime.fromisoformat(wall_clock).replace(tzinfo=COPENHAGEN)
    return local.astimezone(dt.UTC)


TEMPORAL = """query ($where: FT_AktoerFilterInput, $order: [FT_AktoerSortInput!]) {
  FT_Aktoer(first: 1000, where: $where, order: $order) { totalCount nodes {
    id registreringFra registreringTil virkningFra virkningTil } } }"""


def temporal_nodes(answer: dict[str, Any]) -> list[tuple[int, Any, Any, Any, Any]]:
    assert "errors" not in answer, answer
    return [
        (
            n["id"],
            *(
                None if n[k] is None else dt.datetime.fromisoformat(n[k])
                for k in ("registreringFra", "registreringTil", "virkningFra", "virkningTil")
            ),
        )
        for n in answer["data"]["FT_Aktoer"]["nodes"]
    ]


async def test_the_temporal_fields_are_the_declared_ones_in_utc(client: httpx.AsyncClient) -> None:
    """``registreringFra``/``virkningFra``/``virkningTil`` are ``opdateringsdato``/
    ``startdato``/``slutdato`` as instants; ``registreringTil`` is null now."""
    where = {"typeid": {"eq": 9}}
    found = temporal_nodes(await graphql(client, TEMPORAL, {"where": where}))
    expected = [
        (i, instant(r["opdateringsdato"]), None, instant(r["startdato"]), instant(r["slutdato"]))
        for i, r in sorted(aktoer().items())
        if r["typeid"] == 9
    ]
    assert found == expected
    assert any(row[4] is not None for row in expected)
    assert any(row[4] is None for row in expected)


async def test_the_temporal_fields_filter_and_order(client: httpx.AsyncClient) -> None:
    at = dt.datetime(2011, 9, 15, 12, tzinfo=dt.UTC)
    where = {
        "typeid": {"eq": 9},
        "virkningFra": {"lte": at.isoformat()},
        "or": [{"virkningTil": {"eq": None}}, {"virkningTil": {"gt": at.isoformat()}}],
        "registreringTil": {"eq": None},
    }
    order = [{"registreringFra": "DESC"}]
    found = temporal_nodes(await graphql(client, TEMPORAL, {"where": where, "order": order}))
    rows = [
        (i, instant(r["opdateringsdato"]), instant(r["startdato"]), instant(r["slutdato"]))
        for i, r in aktoer().items()
        if r["typeid"] == 9
    ]
    chosen = [
        (i, frm)
        for i, frm, start, end in rows
        if start is not None and start <= at and (end is None or end > at)
    ]
    assert len(chosen) > 5
    assert sorted(i for i, *_ in found) == sorted(i for i, _ in chosen)
    stamps = [frm for _, frm, *_ in found]
    assert stamps == sorted(stamps, reverse=True)
    # registreringTil is null for every current row: asking otherwise finds nothing
    none = await graphql(client, TEMPORAL, {"where": {"registreringTil": {"gt": at.isoformat()}}})
    assert none["data"]["FT_Aktoer"] == {"totalCount": 0, "nodes": []}
