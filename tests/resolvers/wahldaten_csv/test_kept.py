"""Large answers are kept: further pages of the same query shape are slices of them.

Every page is checked against the gateway's own in-memory filtering and ordering
(:func:`gateway.model.filters.apply_in_memory`) over the entity's rows, and against the
recorded files where a value changes.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from gateway.model.filters import apply_in_memory
from gateway.model.keys import key_order
from gateway.model.query import Condition, Filter, Or, Page, Query, SortKey
from resolvers.wahldaten_csv import adapter
from resolvers.wahldaten_csv.adapter import KEPT, OFFLOAD_ROWS, WahldatenSource
from resolvers.wahldaten_csv.replica.server import WahldatenDemo
from tests.resolvers.wahldaten_csv.conftest import SourceFactory
from tests.resolvers.wahldaten_csv.model import DATA_DIR, datamodel
from tests.resolvers.wahldaten_csv.raw import RawElection, election

VOTE_COLUMN = re.compile(r"[A-Z]\d+(_\d+)?")


def _vote_columns(raw: RawElection) -> list[str]:
    """The letter columns of the election's results: not a column of the dataset (A1, B2…)."""
    known = datamodel().entities["Wahlergebnis"].by_source
    results = raw.rows("Wahlergebnisse")
    header = list(results[0]) if results else []
    return [c for c in header if VOTE_COLUMN.fullmatch(c) and c not in known]


async def _fetch(
    source: WahldatenSource,
    entity: str,
    where: Filter | None = None,
    order: tuple[SortKey, ...] = (),
    offset: int = 0,
    limit: int | None = None,
) -> Page:
    model = source.register.datamodel.entities[entity]
    query = Query(model, where, key_order(model, order), offset, limit)
    return await source.fetch(query)


def _same(got: Page, expected: Page) -> None:
    assert (got.rows, got.total, got.has_more) == (expected.rows, expected.total, expected.has_more)


@pytest.mark.parametrize(
    ("entity", "where", "order"),
    [
        ("Stimme", None, ()),
        ("Stimme", None, (SortKey("anzahl", descending=True),)),
        # kandidatnummer and stimmzettel_id are null in many rows: nulls first ascending,
        # last descending, as the gateway orders them.
        ("Stimme", None, (SortKey("kandidatnummer"), SortKey("anzahl", descending=True))),
        ("Stimme", Condition("anzahl", "gt", 50), (SortKey("stimmzettel_id", descending=True),)),
        (
            "Stimme",
            Or((Condition("kennung", "eq", "F"), Condition("kandidatnummer", "eq", None))),
            (SortKey("datei", descending=True), SortKey("zeile", descending=True)),
        ),
        ("Wahlergebnis", None, (SortKey("B1"), SortKey("zeitstempel_erfassung"))),
        ("Kandidat", Condition("kandidat_geburtsjahr", "gt", 1970), ()),
    ],
)
async def test_pages_of_a_kept_answer_are_the_whole_answer_sliced(
    make_source: SourceFactory, entity: str, where: Filter | None, order: tuple[SortKey, ...]
) -> None:
    source = await make_source(directory=str(DATA_DIR))
    rows = (await _fetch(source, entity)).rows
    model = source.register.datamodel.entities[entity]
    total = None
    for offset, limit in ((0, 1000), (1000, 1000), (7, 50), (0, None), (len(rows) - 3, 1000)):
        query = Query(model, where, key_order(model, order), offset, limit)
        expected = apply_in_memory(rows, query)
        got = await source.fetch(query)
        _same(got, expected)
        total = got.total
    assert total


async def test_a_kept_answer_gives_fresh_rows(make_source: SourceFactory) -> None:
    source = await make_source(directory=str(DATA_DIR))
    first = await _fetch(source, "Stimme", limit=10)
    expected = [dict(row) for row in first.rows]
    for row in first.rows:
        row["anzahl"] = -1
        row["extra"] = "changed"
    again = await _fetch(source, "Stimme", limit=10)
    assert again.rows == expected
    assert all(a is not b for a, b in zip(again.rows, first.rows, strict=True))


def _newer_version(raw: RawElection, change: dict[tuple[int, str], str]) -> tuple[str, bytes]:
    """A later version of ``raw``'s Wahlergebnisse file: (line, column) → the new cell."""
    old = raw.file("Wahlergebnisse")
    assert old is not None
    records = list(csv.reader(io.StringIO(old.read_text(encoding="utf-8")), delimiter=";"))
    for (line, column), cell in change.items():
        records[line - 1][records[0].index(column)] = cell
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(records)
    newer = old.name.replace("20200930T111111", "20201001T090000")
    assert newer != old.name
    return newer, out.getvalue().encode("utf-8")


async def test_every_page_carries_the_data_warnings(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    raw = election("duesseldorf-kommunal2020")
    columns = _vote_columns(raw)
    assert len(raw.rows("Wahlergebnisse")) * len(columns) >= OFFLOAD_ROWS
    newer, body = _newer_version(raw, {(3, "wahl-behoerde-gs"): "05111999", (4, columns[0]): "x1"})
    wahldaten_replica.replica.add_file(newer, body)
    where = Condition("wahl", "eq", raw.wahl)
    for entity, size, codes in (
        ("Wahlergebnis", 100, {("AGS_MISMATCH", 3), ("BAD_VALUE", 4)}),
        # Vote rows are not checked against the election (the result rows are).
        ("Stimme", 1000, {("BAD_VALUE", 4)}),
    ):
        pages = [await _fetch(source, entity, where, offset=o, limit=size) for o in (0, size, 7)]
        assert all(page.rows for page in pages)
        for page in pages:
            assert page.notices == pages[0].notices
            assert {(n["code"], n["line"]) for n in page.notices if n["file"] == newer} == codes


async def test_the_number_of_vote_rows_is_the_files(make_source: SourceFactory) -> None:
    source = await make_source(directory=str(DATA_DIR))
    for folder in ("duesseldorf-kommunal2020", "karlsruhe-eu-gemeinderat-2024"):
        raw = election(folder)
        expected = len(raw.rows("Wahlergebnisse")) * len(_vote_columns(raw))
        where = Condition("wahl", "eq", raw.wahl)
        last = await _fetch(source, "Stimme", where, offset=expected - 1, limit=1000)
        assert (last.total, len(last.rows), last.has_more) == (expected, 1, False)


async def test_only_the_newest_answers_are_kept(make_source: SourceFactory) -> None:
    source = await make_source(directory=str(DATA_DIR))
    shapes = [Condition("anzahl", "gt", 200 + n) for n in range(KEPT + 2)]
    pages = [await _fetch(source, "Stimme", where, limit=1) for where in shapes]
    assert sum(page.total or 0 for page in pages) <= adapter.KEPT_ROWS  # bound by number only
    kept: dict[Any, Any] = source._kept
    assert len(kept) == KEPT
    assert [key[1] for key in kept] == [repr(where) for where in shapes[-KEPT:]]


async def test_the_rows_kept_are_bounded(
    make_source: SourceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await make_source(directory=str(DATA_DIR))
    wide, narrow = Condition("anzahl", "gt", 0), Condition("anzahl", "gt", 100)
    first = await _fetch(source, "Stimme", wide, limit=1)
    assert first.total
    monkeypatch.setattr(adapter, "KEPT_ROWS", first.total + 1)
    second = await _fetch(source, "Stimme", narrow, limit=1)
    assert second.total
    kept: dict[Any, Any] = source._kept
    # Together over the bound: the older goes; the newest stays, however large.
    assert [key[1] for key in kept] == [repr(narrow)]
    monkeypatch.setattr(adapter, "KEPT_ROWS", 1)
    await _fetch(source, "Stimme", wide, limit=1)
    assert [key[1] for key in kept] == [repr(wide)]


async def test_a_new_file_version_is_read_into_a_new_answer(
    wahldaten_replica: WahldatenDemo, source: WahldatenSource
) -> None:
    raw = election("duesseldorf-kommunal2020")
    old = raw.file("Wahlergebnisse")
    assert old is not None
    where = Condition("wahl", "eq", raw.wahl)
    columns = _vote_columns(raw)
    assert len(raw.rows("Wahlergebnisse")) * len(columns) >= OFFLOAD_ROWS
    order = (SortKey("zeile"), SortKey("spalte"))
    before = await _fetch(source, "Stimme", where, order, limit=1000)
    first = raw.rows("Wahlergebnisse")[0]
    column = sorted(columns)[0]
    row = next(r for r in before.rows if r["zeile"] == 2 and r["spalte"] == column)
    assert (row["datei"], row["anzahl"]) == (old.name, int(first[column]))
    # A later version of the file, one count changed.
    newer, body = _newer_version(raw, {(2, column): str(int(first[column]) + 1000)})
    wahldaten_replica.replica.add_file(newer, body)
    after = await _fetch(source, "Stimme", where, order, offset=0, limit=1000)
    row = next(r for r in after.rows if r["zeile"] == 2 and r["spalte"] == column)
    assert (row["datei"], row["anzahl"]) == (newer, int(first[column]) + 1000)
    assert after.total == before.total
