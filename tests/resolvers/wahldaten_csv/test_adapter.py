"""The adapter against the replica on a loopback socket; expected answers from the raw CSV."""

from __future__ import annotations

import pytest

from gateway.model.datamodel import Entity, Field, ScalarType
from gateway.model.errors import (
    DescriptorError,
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.model.query import Condition, Query
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.replica.server import (
    LISTING,
    Fault,
    WahldatenDemo,
    WahldatenReplica,
    start_replica,
)
from tests.resolvers.wahldaten_csv.conftest import SourceFactory
from tests.resolvers.wahldaten_csv.model import DATA_DIR
from tests.resolvers.wahldaten_csv.queries import ask, notices
from tests.resolvers.wahldaten_csv.raw import election, elections, header

ELECTIONS = [raw.folder.name for raw in elections()]


async def test_only_the_files_a_query_needs_are_read(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    await ask(source, "Wahlparameter")
    read = {e.path for e in wahldaten_replica.replica.log if e.path != LISTING}
    assert read
    assert all("_Wahlparameter_" in name for name in read)
    kall = election("kall-kommunal2020")
    page = await ask(source, "Wahlergebnis", wahl=kall.wahl)
    assert len(page.rows) == len(kall.rows("Wahlergebnisse"))
    read = {e.path for e in wahldaten_replica.replica.log if "_Wahlergebnisse_" in e.path}
    assert read == {kall.file("Wahlergebnisse").name}  # type: ignore[union-attr]
    before = len(wahldaten_replica.replica.log)
    await ask(source, "Wahlergebnis", wahl=kall.wahl)
    # Files are cached per version; the listing is revalidated (ttl 0) and answers 304.
    assert [(e.path, e.status, e.conditional) for e in wahldaten_replica.replica.log[before:]] == [
        (LISTING, 304, True)
    ]


async def test_a_newer_version_is_picked_up(
    wahldaten_replica: WahldatenDemo, make_source: SourceFactory
) -> None:
    source = await make_source(url=wahldaten_replica.url, ttl=0)
    kall = election("kall-kommunal2020")
    old = kall.file("Wahlergebnisse")
    assert old is not None
    before = await ask(source, "Wahlergebnis", wahl=kall.wahl)
    text = old.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = text[1].split(";")
    fields[-1] = "999\n"
    newer = old.name.replace("20200930T111111", "20201001T090000")
    wahldaten_replica.replica.add_file(
        newer, (text[0] + ";".join(fields) + "".join(text[2:])).encode()
    )
    after = await ask(source, "Wahlergebnis", wahl=kall.wahl)
    assert {r["datei"] for r in before.rows} == {old.name}
    assert {r["datei"] for r in after.rows} == {newer}
    votes = await ask(source, "Stimme", Condition("bezirk_id", "in", [after.rows[0]["bezirk_id"]]))
    assert votes.rows[-1]["anzahl"] == 999
    assert wahldaten_replica.replica.log.where(path=old.name)  # read before, ...
    assert len(wahldaten_replica.replica.log.where(path=newer)) == 1


async def test_html_listing_and_percent_encoded_names(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    wahldaten_replica.replica.json_listing = False
    goettingen = election("goettingen-eu-rad-2024")
    page = await ask(source, "Wahlergebnis", wahl=goettingen.wahl)
    assert len(page.rows) == len(goettingen.rows("Wahlergebnisse"))
    assert wahldaten_replica.replica.log.where(path=goettingen.file("Wahlergebnisse").name)  # type: ignore[union-attr]


async def test_listing_down_without_a_previous_listing(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    wahldaten_replica.replica.faults.inject(Fault("status", match=LISTING, status=503, times=None))
    with pytest.raises(UpstreamUnavailableError) as caught:
        await ask(source, "Wahlparameter")
    assert caught.value.extensions["status"] == 503


async def test_listing_down_after_a_good_one_serves_the_last_listing(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    first = await ask(source, "Wahlparameter")
    wahldaten_replica.replica.faults.inject(Fault("status", match=LISTING, status=502, times=None))
    again = await ask(source, "Wahlparameter")
    assert again.rows == first.rows
    assert notices(again, "STALE_LISTING")


async def test_a_slow_file_times_out(
    wahldaten_replica: WahldatenDemo, make_source: SourceFactory
) -> None:
    source = await make_source(url=wahldaten_replica.url, ttl=0, timeout=0.1)
    kall = election("kall-kommunal2020").file("Wahlparameter")
    assert kall is not None
    wahldaten_replica.replica.faults.inject(Fault("slow", match=kall.name, delay=0.4, times=None))
    with pytest.raises(UpstreamTimeoutError):
        await ask(source, "Wahlparameter")


async def test_a_dropped_connection_is_invalid_data(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    kall = election("kall-kommunal2020").file("Stimmzettel")
    assert kall is not None
    wahldaten_replica.replica.faults.inject(Fault("cut", match=kall.name, times=1))
    with pytest.raises(UpstreamInvalidError):
        await ask(source, "Stimmzettel")
    # Failures are not cached: the next query reads the file again.
    page = await ask(source, "Stimmzettel", wahl=election("kall-kommunal2020").wahl)
    assert len(page.rows) == len(election("kall-kommunal2020").rows("Stimmzettel"))


async def test_a_truncated_file_serves_its_complete_rows(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    raw = election("wiesbaden-citybahn")
    path = raw.file("Wahlergebnisse")
    assert path is not None
    wahldaten_replica.replica.faults.inject(Fault("truncate", match=path.name, times=None))
    page = await ask(source, "Wahlergebnis", wahl=raw.wahl)
    half = path.read_bytes()[: path.stat().st_size // 2]
    complete = half.count(b"\n") - 1  # the header's line break, then one per complete row
    cut = len(half.split(b"\n")[-1].split(b";")) != len(header(path))
    assert len(page.rows) == complete + (0 if cut else 1)
    assert [n["line"] for n in notices(page, "NO_FINAL_LINE_BREAK")] == [complete + 2]


async def test_a_malformed_file_loses_only_its_broken_lines(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    raw = election("hagen-btw2025")
    path = raw.file("Wahlergebnisse")
    assert path is not None
    wahldaten_replica.replica.faults.inject(Fault("malformed", match=path.name, times=None))
    page = await ask(source, "Wahlergebnis", wahl=raw.wahl)
    assert [r["bezirk_nr"] for r in page.rows] == [
        r["bezirk-nr"] for r in raw.rows("Wahlergebnisse")
    ]
    assert [(n["code"], n["line"]) for n in page.notices if n["file"] == path.name] == [
        ("UNTERMINATED_QUOTE", 2),
        ("ROW_WIDTH", 3),
    ]


async def test_options_and_entities_are_checked(make_source: SourceFactory) -> None:
    with pytest.raises(DescriptorError, match="'url' or a 'directory'"):
        await make_source()
    source = await make_source(directory=str(DATA_DIR))
    stranger = Entity("DE", "Fremd", "DE_Fremd", (Field("x", "x", ScalarType.STRING),), ("x",))
    with pytest.raises(DescriptorError, match="no dataset"):
        await source.fetch(Query(entity=stranger))


async def test_requests_are_counted(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    await ask(source, "Wahlparameter")
    assert source.requests == len(wahldaten_replica.replica.log) == 1 + len(ELECTIONS)


async def test_several_listing_urls_are_pooled(
    wahldaten_replica: WahldatenDemo, make_source: SourceFactory
) -> None:
    second = await start_replica(WahldatenReplica())
    try:
        kall = election("kall-kommunal2020")
        for path in kall.folder.glob("*.csv"):
            second.replica.add_file(path.name.replace("Ratswahl", "Stichwahl"), path.read_bytes())
            wahldaten_replica.replica.remove_file(path.name)
        source = await make_source(url=[wahldaten_replica.url, second.url], ttl=0)
        page = await ask(source, "Wahlparameter")
        assert len(page.rows) == len(ELECTIONS)
        (row,) = [r for r in page.rows if r["wahl"] == kall.wahl]
        assert "Stichwahl" in row["datei"]
    finally:
        await second.stop()


async def test_files_of_an_html_index_are_revalidated(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    wahldaten_replica.replica.json_listing = False  # a plain web server: no versions in the listing
    wiesbaden = election("wiesbaden-citybahn")
    path = wiesbaden.file("Wahlparameter")
    assert path is not None
    first = await ask(source, "Wahlparameter", wahl=wiesbaden.wahl)
    again = await ask(source, "Wahlparameter", wahl=wiesbaden.wahl)
    assert again.rows == first.rows
    log = wahldaten_replica.replica.log.where(path=path.name)
    assert [(e.status, e.conditional) for e in log] == [(200, False), (304, True)]
    # Same name, new content: the ETag changes and the new content is read.
    changed = path.read_text(encoding="utf-8").replace("Bürgerentscheid", "Entscheid")
    wahldaten_replica.replica.add_file(path.name, changed.encode("utf-8"))
    third = await ask(source, "Wahlparameter", wahl=wiesbaden.wahl)
    assert third.rows[0]["wahl_bezeichnung"] == "Entscheid Citybahn"
