"""Merging precinct batches: re-sent precincts, any arrival order, gaps, resuming."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import pytest

from gateway.model.errors import UpstreamUnavailableError
from gateway.model.query import Row
from resolvers.volby_xml.batches import BatchStream
from resolvers.volby_xml.parse import Chyba
from resolvers.volby_xml.rows import MappedDocument, read_document
from tests.resolvers.volby_xml.conftest import register
from tests.resolvers.volby_xml.raw import batch_files, newest_precincts

KOLO_1 = batch_files(1)


def prez_document(path_bytes: bytes, kolo: int) -> MappedDocument:
    return read_document(path_bytes, register("CZPREZ").datamodel, {"KOLO": kolo})


def merged(stream: BatchStream) -> dict[tuple[int, str, str], dict[str, Any]]:
    model = register("CZPREZ").datamodel.entities
    votes: dict[str, dict[int, int]] = {}
    for row in stream.rows(model["HLASY_OKRSEK"]):
        votes.setdefault(row["OKRSEK_ID"], {})[row["PORADOVE_CISLO"]] = row["HLASY"]
    return {
        (r["KOLO"], r["CIS_OBEC"], r["CIS_OKRSEK"]): {
            "PORADI_ZPRAC": r["PORADI_ZPRAC"],
            "OPAKOVANE": r["OPAKOVANE"],
            "PLATNE_HLASY": r["PLATNE_HLASY"],
            "votes": votes.get(r["OKRSEK_ID"], {}),
        }
        for r in stream.rows(model["OKRSEK"])
    }


def test_newest_version_of_each_precinct_wins_whatever_the_order() -> None:
    documents = [(int(p.stem.rsplit("-", 1)[1]), prez_document(p.read_bytes(), 1)) for p in KOLO_1]
    expected = newest_precincts(KOLO_1)
    resent = expected[(1, "500178", "6037")]
    assert resent["PORADI_ZPRAC"] == 14862  # batch 45 replaces batch 25's 14400
    assert resent["OPAKOVANE"] is True
    assert expected[(1, "598810", "11")]["PORADI_ZPRAC"] == 14866
    orders = [documents, documents[::-1]]
    shuffler = random.Random(20230114)
    for _ in range(30):
        orders.append(shuffler.sample(documents, len(documents)))
    for order in orders:
        stream = BatchStream({"KOLO": 1}, register("CZPREZ").datamodel)
        for number, document in order:
            stream.merge(number, document)
        assert merged(stream) == expected


class FakeUpstream:
    """Batches by number (a missing number is error 10); ``failures`` are raised once each."""

    def __init__(
        self,
        batches: Mapping[int, MappedDocument],
        newest: int,
        failures: Mapping[int, Exception] | None = None,
    ) -> None:
        self.batches = dict(batches)
        self.newest = newest
        self.failures = dict(failures or {})
        self.asked: list[int | None] = []

    async def newest_batch(self) -> MappedDocument:
        self.asked.append(None)
        if self.newest == 0:
            return MappedDocument("VYSLEDKY_OKRSKY", None, {}, Chyba(10, ""))
        return await self.batch(self.newest, record=False)

    async def batch(self, number: int, record: bool = True) -> MappedDocument:
        if record:
            self.asked.append(number)
        if number in self.failures:
            raise self.failures.pop(number)
        found = self.batches.get(number)
        if found is None:
            return MappedDocument("VYSLEDKY_OKRSKY", None, {}, Chyba(10, ""))
        return found


def recorded_round_1() -> dict[int, MappedDocument]:
    return {int(p.stem.rsplit("-", 1)[1]): prez_document(p.read_bytes(), 1) for p in KOLO_1}


async def test_reads_up_to_the_newest_and_logs_gaps(caplog: pytest.LogCaptureFixture) -> None:
    upstream = FakeUpstream(recorded_round_1(), newest=49)
    stream = BatchStream({"KOLO": 1}, register("CZPREZ").datamodel)
    with caplog.at_level(logging.WARNING, logger="resolvers.volby_xml.batches"):
        await stream.refresh(upstream.newest_batch, upstream.batch, concurrency=3)
    assert sorted(stream.batches) == [1, 25, 44, 45, 49]
    assert stream.missing == set(range(2, 25)) | set(range(26, 44)) | {46, 47, 48}
    assert "2-24, 26-43, 46-48" in caplog.text
    assert upstream.asked.count(49) == 0  # the newest came with the empty davka
    assert merged(stream) == newest_precincts(KOLO_1)
    progress = stream.progress()
    assert progress["DAVKY_NACTENE"] == 5
    assert progress["POSLEDNI_DAVKA"] == 49
    assert progress["OKRSKY_SECTENE"] == len(newest_precincts(KOLO_1))


async def test_no_batch_yet_is_not_a_failure() -> None:
    upstream = FakeUpstream({}, newest=0)
    stream = BatchStream({"KOLO": 1}, register("CZPREZ").datamodel)
    await stream.refresh(upstream.newest_batch, upstream.batch)
    assert stream.batches == {}
    assert stream.progress()["DAVKY_NACTENE"] == 0
    assert upstream.asked == [None]


async def test_resumes_where_it_stopped_and_then_reads_only_new_batches() -> None:
    failure = UpstreamUnavailableError("HTTP 503")
    upstream = FakeUpstream(recorded_round_1(), newest=44, failures={25: failure})
    stream = BatchStream({"KOLO": 1}, register("CZPREZ").datamodel)
    with pytest.raises(UpstreamUnavailableError):
        await stream.refresh(upstream.newest_batch, upstream.batch, concurrency=1)
    assert stream.next_number == 25
    assert sorted(stream.batches) == [1, 44]
    upstream.asked.clear()
    await stream.refresh(upstream.newest_batch, upstream.batch, concurrency=1)
    assert upstream.asked == [None, *range(25, 44)]
    assert sorted(stream.batches) == [1, 25, 44]
    upstream.newest = 49
    upstream.asked.clear()
    await stream.refresh(upstream.newest_batch, upstream.batch, concurrency=2)
    assert upstream.asked == [None, 45, 46, 47, 48]
    assert merged(stream) == newest_precincts(KOLO_1)


# --- municipal batches, built from the documented structure (no real one was recorded) ----------


def municipal_batch(number: int, precincts: list[dict[str, Any]], processed: int) -> bytes:
    """A VYSLEDKY_OKRSKY document as kv_vysledky_okrsky.xsd describes it."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<VYSLEDKY_OKRSKY xmlns="http://www.volby.cz/kv/"'
        ' DATUM_CAS_GENEROVANI="2022-09-24T15:35:00">',
        f'<DAVKA DATUMVOLEB="2022-09-23" PORADI_DAVKY="{number}" OKRSKY_DAVKA="{len(precincts)}"'
        f' OKRSKY_CELKEM="14722" OKRSKY_ZPRAC="{processed}"/>',
    ]
    for p in precincts:
        lines.append(
            f'<OKRSEK CIS_OBEC="{p["obec"]}" CIS_OKRSEK="{p["okrsek"]}" KODZASTUP="{p["zastup"]}"'
            f' CIS_OBVODU="1" OZNAC_TYPU="{p["typ"]}" PORADI_ZPRAC="{p["poradi"]}"'
            f' DATUM_CAS_ZPRAC="2022-09-24T15:30:49" OPAKOVANE="{int(p.get("opakovane", 0))}">'
        )
        lines.append(
            '<UCAST_OKRSEK ZAPSANI_VOLICI="900" VYDANE_OBALKY="500" VOLICSKE_PRUKAZY="3"'
            ' ODEVZDANE_OBALKY="499" PLATNE_LISTKY="495"'
            f' PLATNE_HLASY="{sum(p["votes"].values())}"/>'
        )
        lines += [
            f'<HLASY_OKRSEK POR_STR_HLAS_LIST="{k}" HLASY="{v}"/>' for k, v in p["votes"].items()
        ]
        lines.append("</OKRSEK>")
    lines.append("</VYSLEDKY_OKRSKY>")
    return "\n".join(lines).encode()


# A Prague precinct counted for the city (OBEC 554782) and for its borough (MCMO 500178),
# and a precinct of another municipality re-sent with corrected votes.
CITY: dict[str, Any] = {
    "obec": "554782",
    "okrsek": "1001",
    "zastup": "554782",
    "typ": "OBEC",
    "poradi": 5,
    "votes": {1: 40, 2: 30},
}
BOROUGH: dict[str, Any] = {
    **CITY,
    "zastup": "500178",
    "typ": "MCMO",
    "poradi": 6,
    "votes": {1: 55, 3: 12},
}
FIRST: dict[str, Any] = {
    "obec": "532819",
    "okrsek": "7",
    "zastup": "532819",
    "typ": "OBEC",
    "poradi": 9,
    "votes": {1: 10, 2: 20},
}
RESENT: dict[str, Any] = {**FIRST, "poradi": 16901, "opakovane": 1, "votes": {1: 11, 2: 19, 4: 1}}
MUNICIPAL = {
    1: municipal_batch(1, [CITY, BOROUGH, FIRST], 2),
    2: municipal_batch(2, [RESENT], 2),
}


def municipal_rows(order: list[int]) -> tuple[list[Row], list[Row]]:
    model = register("CZ").datamodel
    stream = BatchStream({"volby": "kv2022"}, model)
    for number in order:
        stream.merge(number, read_document(MUNICIPAL[number], model, {"volby": "kv2022"}))
    return stream.rows(model.entities["OKRSEK"]), stream.rows(model.entities["HLASY_OKRSEK"])


@pytest.mark.parametrize("order", [[1, 2], [2, 1]])
def test_municipal_precincts_are_merged_by_their_identity(order: list[int]) -> None:
    precincts, votes = municipal_rows(order)
    by_identity = {
        (r["CIS_OBEC"], r["CIS_OKRSEK"], r["KODZASTUP"], r["OZNAC_TYPU"]): r for r in precincts
    }
    assert set(by_identity) == {
        ("554782", "1001", "554782", "OBEC"),
        ("554782", "1001", "500178", "MCMO"),
        ("532819", "7", "532819", "OBEC"),
    }
    corrected = by_identity[("532819", "7", "532819", "OBEC")]
    assert corrected["PORADI_ZPRAC"] == 16901
    assert corrected["OPAKOVANE"] is True
    assert corrected["VOLICSKE_PRUKAZY"] == 3
    got = {
        (v["KODZASTUP"], v["POR_STR_HLAS_LIST"]): v["HLASY"]
        for v in votes
        if v["CIS_OBEC"] == "532819"
    }
    assert got == {("532819", k): v for k, v in RESENT["votes"].items()}
    borough_votes = {
        v["POR_STR_HLAS_LIST"]: v["HLASY"] for v in votes if v["KODZASTUP"] == "500178"
    }
    assert borough_votes == BOROUGH["votes"]
