"""The VALG adapter over SFTP against the replica; expected answers from the raw archives."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.model.datamodel import Datamodel, Register
from gateway.model.errors import (
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.model.query import And, Condition, Filter, Page, Query, SortKey
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.replica_kit.faults import Fault
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.resolvers.valg_sftp.rawdata import FV, KV, RawArchive, geografi, newest_by

AABENRAA_MIDT = 702016
ULLERSLEV = "valgresultater-Folketingsvalg-Nyborg_Kommune-Ullerslev"
STAMP = re.compile(r"-(\d{12})\.json$")


def q(datamodel: Datamodel, entity: str, where: Filter | None = None, **kw: Any) -> Query:
    return Query(datamodel.entities[entity], where=where, order=(SortKey("Noegle"),), **kw)


def eq(field: str, value: Any) -> Condition:
    return Condition(field, "eq", value)


def fv_only(*parts: Filter) -> Filter:
    return And((eq("Valgmappe", FV), *parts))


def result_downloads(valg_replica: ValgReplica, folder: str = "valgresultater") -> list[str]:
    return [p for p in valg_replica.downloads() if f"/{folder}/" in p and "/verifikation/" not in p]


async def test_elections_are_the_root_folders(source: ValgSource, datamodel: Datamodel) -> None:
    page = await source.fetch(q(datamodel, "Valg"))
    by_folder = {row["Valgmappe"]: row for row in page.rows}
    assert set(by_folder) == {FV, KV, "regionsrådsvalg-134-18-11-2025"}
    assert by_folder[FV]["Valgart"] == "Folketingsvalg"
    assert by_folder[FV]["ValgId"] == 135
    assert by_folder[FV]["Valgdag"] == "2026-03-24"
    assert by_folder["regionsrådsvalg-134-18-11-2025"]["Valgart"] == "Regionsrådsvalg"


async def test_final_count_votes_per_party_in_one_opstillingskreds(
    source: ValgSource, valg_replica: ValgReplica, datamodel: Datamodel, raw: RawArchive
) -> None:
    kreds = 403621  # Aabenraa
    newest = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")
    files = [doc for _, doc in newest.values() if doc["OpstillingskredsDagiId"] == kreds]
    assert files
    assert all(doc["Resultatart"] == "Fintælling" for doc in files)
    expected: Counter[str] = Counter()
    for doc in files:
        for party in doc["IndenforParti"]:
            expected[party["Bogstavbetegnelse"]] += party["Stemmer"]

    where = fv_only(eq("OpstillingskredsDagiId", kreds), eq("Resultatart", "Fintælling"))
    page = await source.fetch(q(datamodel, "Valgresultat_IndenforParti", where))
    actual: Counter[str] = Counter()
    for row in page.rows:
        actual[row["Bogstavbetegnelse"]] += row["Stemmer"]
    assert actual == expected
    # Only the kreds' areas were read, thanks to the geografi.
    assert len(result_downloads(valg_replica)) == len(files)


async def test_one_area_downloads_at_most_its_newest_file(
    source: ValgSource, valg_replica: ValgReplica, datamodel: Datamodel, raw: RawArchive
) -> None:
    await source.fetch(q(datamodel, "Afstemningsområde", fv_only(eq("Dagi_id", "1"))))
    valg_replica.log.clear()
    where = fv_only(eq("AfstemningsomraadeDagiId", AABENRAA_MIDT))
    page = await source.fetch(q(datamodel, "Valgresultat", where))
    name, doc = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")[AABENRAA_MIDT]
    assert [row["Fil"] for row in page.rows] == [name.removeprefix(f"{FV}/")]
    assert page.rows[0]["GyldigeStemmer"] == doc["GyldigeStemmer"]
    assert valg_replica.downloads() == [f"/data/{name}"]
    valg_replica.log.clear()
    again = await source.fetch(q(datamodel, "Valgresultat", where))
    assert again.rows == page.rows
    assert valg_replica.downloads("") == []


async def test_nested_rows_reach_their_parent_by_key(
    source: ValgSource, valg_replica: ValgReplica, datamodel: Datamodel, raw: RawArchive
) -> None:
    parent = await source.fetch(
        q(datamodel, "Valgresultat", fv_only(eq("AfstemningsomraadeDagiId", AABENRAA_MIDT)))
    )
    key = parent.rows[0]["Noegle"]
    valg_replica.log.clear()
    where = Condition("ForaelderNoegle", "in", [key])
    parties = await source.fetch(q(datamodel, "Valgresultat_IndenforParti", where))
    _, doc = newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId")[AABENRAA_MIDT]
    assert [r["PartiId"] for r in parties.rows] == [p["PartiId"] for p in doc["IndenforParti"]]
    assert all(r["AfstemningsomraadeDagiId"] == AABENRAA_MIDT for r in parties.rows)
    assert valg_replica.downloads("") == []  # everything came from the cache
    back = await source.fetch(
        q(
            datamodel,
            "Valgresultat",
            Condition("Noegle", "in", [parties.rows[0]["ForaelderNoegle"]]),
        )
    )
    assert back.rows == parent.rows


async def test_votes_for_one_candidate_in_every_area(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    kandidater = json.loads(
        raw.files[f"{FV}/kandidat-data/kandidat-data-Folketingsvalg-4-Bornholm-150320261120.json"]
    )
    candidate = kandidater["IndenforParti"][0]["Kandidater"][0]["Id"]
    expected = {}
    for _, doc in newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId").values():
        for party in doc.get("IndenforParti") or []:
            for person in party.get("Kandidater") or []:
                if person["Id"] == candidate:
                    expected[doc["AfstemningsområdeDagiId"]] = person["Stemmer"]
    assert expected
    where = fv_only(eq("Id", candidate), eq("Storkredsnummer", 4))
    page = await source.fetch(q(datamodel, "Valgresultat_IndenforParti_Kandidater", where))
    assert {r["AfstemningsomraadeDagiId"]: r["Stemmer"] for r in page.rows} == expected


async def test_candidates_of_one_party_in_one_storkreds(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    doc = json.loads(
        raw.files[f"{FV}/kandidat-data/kandidat-data-Folketingsvalg-6-Fyn-150320261120.json"]
    )
    expected = [
        person["Navn"]
        for party in doc["IndenforParti"]
        if party["Partibogstav"] == "Ø"
        for person in party["Kandidater"]
    ]
    where = fv_only(eq("Partibogstav", "Ø"), eq("Storkreds", "Fyn"))
    page = await source.fetch(q(datamodel, "Kandidat", where))
    assert sorted(r["Navn"] for r in page.rows) == sorted(expected)
    assert {r["Storkredsnummer"] for r in page.rows} == {"6"}  # a string in kandidat-data


async def test_ids_of_different_types_still_match(source: ValgSource, datamodel: Datamodel) -> None:
    results = []
    for value in (AABENRAA_MIDT, str(AABENRAA_MIDT)):
        where = fv_only(eq("AfstemningsomraadeDagiId", value))
        results.append((await source.fetch(q(datamodel, "Valgresultat", where))).rows)
    assert results[0] == results[1]
    assert len(results[0]) == 1
    assert results[0][0]["AfstemningsomraadeDagiId"] == AABENRAA_MIDT  # a number in results
    turnout = await source.fetch(
        q(datamodel, "Valgdeltagelse", fv_only(eq("AfstemningsomraadeDagiId", str(AABENRAA_MIDT))))
    )
    assert turnout.rows[0]["AfstemningsomraadeDagiId"] == str(AABENRAA_MIDT)  # text in turnout


async def test_turnout_times_carry_the_danish_offset(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    where = fv_only(eq("AfstemningsomraadeDagiId", str(AABENRAA_MIDT)))
    page = await source.fetch(q(datamodel, "Valgdeltagelse_Valgdeltagelse", where))
    _, doc = newest_by(raw, f"{FV}/valgdeltagelse", "AfstemningsområdeDagiId")[str(AABENRAA_MIDT)]
    expected = [
        (f"2026-03-24T{point['Tidspunkt']}+01:00", point["AfgivneStemmer"])
        for point in doc["Valgdeltagelse"]
    ]
    assert [(r["Tidspunkt"], r["AfgivneStemmer"]) for r in page.rows] == expected


async def test_geografi_rows_and_references(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    page = await source.fetch(q(datamodel, "Kommune", eq("Kode", 580)))
    (expected,) = [k for k in geografi(raw, "Kommune") if k["Kode"] == 580]
    (row,) = page.rows
    assert row["Navn"] == expected["Navn"]
    assert row["Regionskode"] == expected["Regionskode"]
    assert row["Dagi_id"] == expected["Dagi_id"]
    assert row["OprettetUtc"].endswith("Z")
    areas = await source.fetch(q(datamodel, "Afstemningsområde", eq("Kommunekode", 580)))
    assert len(areas.rows) == sum(
        1 for a in geografi(raw, "Afstemningsomraade") if a["Kommunekode"] == 580
    )
    assert all(r["Afstemningssted_Navn"] for r in areas.rows)


async def test_verifikation_is_excluded_unless_asked_for(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    default = await source.fetch(q(datamodel, "Valgresultat", fv_only(eq("Kommunekode", 101))))
    assert default.rows
    assert not any(r["Verifikation"] for r in default.rows)
    asked = await source.fetch(q(datamodel, "Valgresultat", fv_only(eq("Verifikation", True))))
    # The fictitious test data gives two areas the same id: one entity, its newest version.
    newest = newest_by(raw, f"{FV}/verifikation/valgresultater", "AfstemningsområdeDagiId")
    assert len(newest) < len(list(raw.folder(f"{FV}/verifikation/valgresultater")))
    assert {r["Fil"] for r in asked.rows} == {
        name.removeprefix(f"{FV}/") for name, _ in newest.values()
    }
    assert all(r["Verifikation"] for r in asked.rows)
    assert all(r["Noegle"].startswith(f"{FV}/verifikation/") for r in asked.rows)


async def test_ingen_resultater_files_are_valid_data(
    valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    valg_replica.clock.set(dt.datetime(2026, 3, 20))
    where = fv_only(eq("AfstemningsomraadeDagiId", AABENRAA_MIDT))
    page = await source.fetch(q(datamodel, "Valgresultat", where))
    _, doc = newest_by(
        raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId", until=dt.datetime(2026, 3, 20)
    )[AABENRAA_MIDT]
    assert "IndenforParti" not in doc  # although the schema requires it
    (row,) = page.rows
    assert row["Resultatart"] == "IngenResultater"
    assert row["AntalStemmeberettigedeVaelgere"] == doc["AntalStemmeberettigedeVælgere"]
    assert page.notices == []
    parties = await source.fetch(q(datamodel, "Valgresultat_IndenforParti", where))
    assert parties.rows == []


async def test_zero_byte_newest_file_falls_back_to_the_previous_version(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    empty = f"{FV}/valgresultater/{ULLERSLEV}-250320260929.json"
    assert raw.files[empty] == b""
    name, doc = newest_by(raw, f"{FV}/valgresultater", "Afstemningsområde")["Ullerslev"]
    where = fv_only(eq("AfstemningsomraadeDagiId", doc["AfstemningsområdeDagiId"]))
    page = await source.fetch(q(datamodel, "Valgresultat", where))
    assert [r["Fil"] for r in page.rows] == [name.removeprefix(f"{FV}/")]
    assert page.notices == [
        {"code": "VALG_FALLBACK", "file": empty, "reason": "empty", "served": name}
    ]
    assert source.fallbacks["empty"] == 1


async def test_a_bad_first_version_is_replaced_by_the_next(
    valg_replica: ValgReplica, live_source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    folder = f"{FV}/partistemmefordeling"
    versions = sorted(
        (raw.doc(name)["FrigivelsesTidspunktUTC"], name)
        for name, _ in raw.folder(folder)
        if "-Fyn-Middelfart-" in name
    )
    assert len(versions) == 2
    first, second = (raw.doc(name) for _, name in versions)
    kreds = first["OpstillingskredsDagiId"]

    def rows_in(doc: dict[str, Any]) -> int:
        return sum(len(party["Kandidater"]) for party in doc["IndenforParti"])

    assert rows_in(first) > 10 * rows_in(second)  # the whole storkreds, repeated
    where = fv_only(eq("OpstillingskredsDagiId", kreds))
    entity = "Partistemmefordeling_IndenforParti_Kandidater"
    valg_replica.clock.set(dt.datetime(2026, 3, 25, 12, 0))
    early = await live_source.fetch(q(datamodel, entity, where, count=True, limit=10))
    valg_replica.clock.set(valg_replica.archive.end)
    late = await live_source.fetch(q(datamodel, entity, where, count=True, limit=10))
    assert (early.total, late.total) == (rows_in(first), rows_in(second))


async def test_files_failing_their_signature_are_never_served(
    valg_replica: ValgReplica, live_source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    folder = f"{KV}/verifikation/valgresultater"
    key = load_pem_public_key(raw.files[f"{KV}/public-key.recovered.pem"])
    assert isinstance(key, rsa.RSAPublicKey)
    good: dict[int, list[dict[str, Any]]] = {}
    bad: list[str] = []
    for name, data in raw.folder(folder):
        signature = raw.files.get(f"{name}.hash")
        if signature is None or not data:
            continue
        try:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            bad.append(name)
            continue
        doc = json.loads(data)
        good.setdefault(doc["AfstemningsområdeDagiId"], []).append(doc)
    assert len(bad) == 2
    expected = {
        ident: max(docs, key=lambda d: d["FrigivelsesTidspunktUTC"])["Afstemningsområde"]
        for ident, docs in good.items()
    }
    where = And((eq("Valgmappe", KV), eq("Verifikation", True)))
    # Before the badly signed versions appeared, the good ones are served.
    valg_replica.clock.set(dt.datetime(2025, 8, 19, 7, 0))
    before = await live_source.fetch(q(datamodel, "Valgresultat", where))
    assert {r["AfstemningsomraadeDagiId"]: r["Afstemningsomraade"] for r in before.rows} == expected
    # Afterwards they are the newest and fail: the last good versions are served, and said so.
    valg_replica.clock.set(valg_replica.archive.end)
    after = await live_source.fetch(q(datamodel, "Valgresultat", where))
    assert {r["AfstemningsomraadeDagiId"]: r["Afstemningsomraade"] for r in after.rows} == expected
    assert not any(r["Fil"].endswith("-190820250843.json") for r in after.rows)
    failed = {n["file"]: n for n in after.notices if n["reason"] == "signature"}
    assert set(failed) == set(bad)
    assert all(n["served"] and n["served"].endswith("-190820250643.json") for n in failed.values())
    # A client that never saw the good versions serves nothing for them.
    cache = Cache()
    cold = ValgSource(live_source.register, live_source.options, Services(cache))
    try:
        page = await cold.fetch(q(datamodel, "Valgresultat", where))
    finally:
        await cold.aclose()
        await cache.close()
    assert not any(r["AfstemningsomraadeDagiId"] == 706166 for r in page.rows)
    assert {n["file"] for n in page.notices if n["reason"] == "signature"} == set(bad)


async def test_a_cold_client_serves_nothing_from_a_bad_signature(
    valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel
) -> None:
    valg_replica.faults.inject(
        Fault("malformed", match="Aabenraa_Kommune-Aabenraa_Midt", times=None)
    )
    where = fv_only(eq("AfstemningsomraadeDagiId", AABENRAA_MIDT))
    page = await source.fetch(q(datamodel, "Valgresultat", where))
    assert page.rows == []
    assert [(n["reason"], n["served"]) for n in page.notices] == [("signature", None)]


INCOMPLETE = {"empty": 0.0, "truncated": 0.5}  # the share of the newest file written so far


@pytest.mark.parametrize("fault", ["empty", "truncated"])
async def test_incomplete_newest_file_falls_back(
    fault: str, valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    area = "Aabenraa_Kommune-Aabenraa_Midt"
    valg_replica.faults.inject(Fault("truncate", keep=INCOMPLETE[fault], match=area, times=None))
    where = fv_only(eq("AfstemningsomraadeDagiId", AABENRAA_MIDT))
    page = await source.fetch(q(datamodel, "Valgresultat", where))
    previous = newest_by(
        raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId", until=dt.datetime(2026, 3, 25)
    )[AABENRAA_MIDT]
    assert [r["Fil"] for r in page.rows] == [previous[0].removeprefix(f"{FV}/")]
    assert page.rows[0]["Resultatart"] == "ForeløbigOptælling"
    (notice,) = page.notices
    assert notice["reason"] == ("empty" if fault == "empty" else "signature")
    assert notice["served"] == previous[0]


async def test_replay_shows_results_arriving(
    valg_replica: ValgReplica,
    register: Register,
    source_json: dict[str, Any],
    datamodel: Datamodel,
    raw: RawArchive,
) -> None:
    cache = Cache()
    options = {**source_json, **valg_replica.overrides["VALG"], "ttl": 0}
    live = ValgSource(register, options, Services(cache))
    where = fv_only(eq("Kommunekode", 580))
    counted = []
    try:
        for hour in (19, 21, 23):
            instant = dt.datetime(2026, 3, 24, hour, 0)
            valg_replica.clock.set(instant)
            page = await live.fetch(q(datamodel, "Valgresultat", where))
            counted.append(Counter(r["Resultatart"] for r in page.rows))
            assert counted[-1] == _expected_states(raw, 580, instant)
    finally:
        await live.aclose()
        await cache.close()
    assert counted[0]["IngenResultater"] > counted[-1]["IngenResultater"]


def _expected_states(raw: RawArchive, kommune: int, instant: dt.datetime) -> Counter[str]:
    """Per area of the kommune: the newest non-empty version by name stamp up to ``instant``."""
    best: dict[str, tuple[dt.datetime, dict[str, Any]]] = {}
    for name, data in raw.folder(f"{FV}/valgresultater"):
        match = STAMP.search(name)
        assert match is not None
        stamp = dt.datetime.strptime(match.group(1), "%d%m%Y%H%M")
        if not data or stamp > instant:
            continue
        doc = json.loads(data)
        if doc["Kommunekode"] != kommune:
            continue
        series = name[: match.start()]
        if series not in best or stamp > best[series][0]:
            best[series] = (stamp, doc)
    return Counter(doc["Resultatart"] for _, doc in best.values())


async def test_whole_storkreds_pages_with_bounded_memory(
    valg_replica: ValgReplica,
    register: Register,
    source_json: dict[str, Any],
    datamodel: Datamodel,
    raw: RawArchive,
) -> None:
    cache = Cache()
    bound = 300_000
    options = {**source_json, **valg_replica.overrides["VALG"], "content_cache_bytes": bound}
    paging = ValgSource(register, options, Services(cache))
    where = fv_only(eq("Storkredsnummer", 1))
    expected = {
        doc["AfstemningsområdeDagiId"]
        for _, doc in newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId").values()
        if doc["Storkredsnummer"] == 1
    }
    seen: list[int] = []
    offset, pages = 0, 0
    try:
        while True:
            page: Page = await paging.fetch(
                q(datamodel, "Valgresultat", where, offset=offset, limit=20)
            )
            seen += [r["AfstemningsomraadeDagiId"] for r in page.rows]
            assert paging.store.contents.bytes <= bound
            offset, pages = offset + 20, pages + 1
            if not page.has_more:
                break
    finally:
        await paging.aclose()
        await cache.close()
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))
    # Each file is read about twice (choosing, then paging), not once per page.
    assert len(result_downloads(valg_replica)) <= 2 * len(expected) + 2
    assert pages == -(-len(expected) // 20)


async def test_reconnects_after_a_dropped_connection(
    valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel
) -> None:
    await source.fetch(q(datamodel, "Valg"))
    valg_replica.drop_connections()
    page = await source.fetch(q(datamodel, "Kommune", eq("Kode", 580)))
    assert len(page.rows) == 1
    valg_replica.faults.inject(Fault("drop"))
    page = await source.fetch(q(datamodel, "Region", None))
    assert len(page.rows) == 4
    assert source.sftp.stats.connects == 3


async def test_slow_reads_time_out(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any], datamodel: Datamodel
) -> None:
    cache = Cache()
    options = {**source_json, **valg_replica.overrides["VALG"], "read_timeout": 0.2}
    slow = ValgSource(register, options, Services(cache))
    valg_replica.faults.inject(Fault("slow", delay=0.5, times=None))
    try:
        with pytest.raises(UpstreamTimeoutError):
            await slow.fetch(q(datamodel, "Region"))
    finally:
        await slow.aclose()
        await cache.close()


async def test_a_listing_that_changes_between_reads_is_read_again(
    valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    valg_replica.clock.set(dt.datetime(2026, 3, 24, 20, 30))
    await source.fetch(q(datamodel, "Afstemningsområde", fv_only(eq("Dagi_id", "0"))))
    valg_replica.clock.step = dt.timedelta(minutes=15)
    where = fv_only(eq("AfstemningsomraadeDagiId", AABENRAA_MIDT))
    page = await source.fetch(q(datamodel, "Valgresultat", where))
    # Listed at 20:30 (IngenResultater), gone at 20:45: read again, the 20:41 version served.
    assert [r["Fil"].rpartition("-")[2] for r in page.rows] == ["240320262041.json"]
    assert page.rows[0]["Resultatart"] == "ForeløbigOptælling"


async def test_host_key_is_pinned(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any], datamodel: Datamodel
) -> None:
    for known_hosts, message in (
        (valg_replica.known_hosts.replace(str(valg_replica.port), "1"), "host key"),
        ("", "pinned"),
    ):
        cache = Cache()
        options = {
            **source_json,
            **valg_replica.overrides["VALG"],
            "known_hosts": known_hosts or "",
        }
        pinned = ValgSource(register, options, Services(cache))
        try:
            with pytest.raises(UpstreamUnavailableError, match=message):
                await pinned.fetch(q(datamodel, "Valg"))
        finally:
            await pinned.aclose()
            await cache.close()


async def test_wrong_password_is_an_upstream_error(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any], datamodel: Datamodel
) -> None:
    cache = Cache()
    options = {**source_json, **valg_replica.overrides["VALG"], "password": "nope"}
    refused = ValgSource(register, options, Services(cache))
    try:
        with pytest.raises(UpstreamUnavailableError, match="refused"):
            await refused.fetch(q(datamodel, "Valg"))
    finally:
        await refused.aclose()
        await cache.close()


async def test_election_filter_lists_only_that_root(
    valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel
) -> None:
    await source.fetch(
        q(datamodel, "Mandatfordeling", eq("Valgmappe", "regionsrådsvalg-134-18-11-2025"))
    )
    listed = {e.path for e in valg_replica.log if e.method == "list"}
    assert not any(path.startswith((f"/data/{KV}", f"/data/{FV}")) for path in listed)


async def test_unknown_entity_is_an_upstream_error(
    source: ValgSource, datamodel: Datamodel
) -> None:
    from dataclasses import replace

    ghost = replace(datamodel.entities["Region"], name="Ghost")
    with pytest.raises(UpstreamInvalidError):
        await source.fetch(Query(ghost))
