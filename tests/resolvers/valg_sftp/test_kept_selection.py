"""Pages from a kept selection: the files chosen from a listing serve every page until the
listing changes, with the same rows, totals and notices as choosing again.

Against the replica over SFTP; expected rows and notices from the raw recordings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

from gateway.model.datamodel import Datamodel
from gateway.model.query import And, Condition, Filter, Page, Query, SortKey
from resolvers.replica_kit.faults import Fault
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.paging import RowCache, Selection
from resolvers.valg_sftp.replica.server import ValgReplica
from resolvers.valg_sftp.rows import DocContext
from tests.resolvers.valg_sftp.rawdata import FV, KV, RawArchive, newest_by

STAMP = re.compile(r"-(\d{12})\.json$")
AREA = "Aabenraa_Kommune-Aabenraa_Midt"


def q(datamodel: Datamodel, entity: str, where: Filter | None = None, **kw: Any) -> Query:
    return Query(datamodel.entities[entity], where=where, order=(SortKey("Noegle"),), **kw)


def eq(field: str, value: Any) -> Condition:
    return Condition(field, "eq", value)


async def pages(source: ValgSource, query: Query, size: int) -> list[Page]:
    """Every page of ``query`` by ``size`` rows (offsets, a total on each)."""
    out: list[Page] = []
    while True:
        page = await source.fetch(
            Query(
                query.entity,
                where=query.where,
                order=query.order,
                limit=size,
                offset=size * len(out),
                count=True,
            )
        )
        out.append(page)
        if not page.has_more:
            return out


def series_newest(raw: RawArchive, folder: str, until: dt.datetime | None = None) -> dict[str, Any]:
    """Per series of ``folder``: its versions up to ``until``, newest name stamp first."""
    versions: dict[str, list[tuple[dt.datetime, str, bytes]]] = {}
    for name, data in raw.folder(folder):
        match = STAMP.search(name)
        assert match is not None
        stamp = dt.datetime.strptime(match.group(1), "%d%m%Y%H%M")
        if until is not None and stamp > until:
            continue
        versions.setdefault(name[: match.start()], []).append((stamp, name, data))
    return {s: sorted(v, reverse=True) for s, v in versions.items()}


def count_choices(source: ValgSource) -> Counter[str]:
    """How often every file of a folder is chosen (by folder), from now on."""
    chosen: Counter[str] = Counter()
    choose_every = source.store._choose_every

    async def counted(root: str, area: str, *args: Any) -> Any:
        chosen[area] += 1
        return await choose_every(root, area, *args)

    source.store._choose_every = counted  # type: ignore[method-assign,assignment]
    return chosen


async def test_every_page_of_an_election_comes_from_one_choice(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    folder = f"{FV}/valgresultater"
    expected = newest_by(raw, folder, "AfstemningsområdeDagiId")
    # Newest versions that are empty are not served: the previous one is, and said so.
    fallbacks = set()
    for versions in series_newest(raw, folder).values():
        if not versions[0][2]:
            fallbacks.add(versions[0][1])
    assert fallbacks
    chosen = count_choices(source)
    query = q(datamodel, "Valgresultat", eq("Valgmappe", FV))
    for _ in range(2):
        walked = await pages(source, query, 100)
        rows = [r for page in walked for r in page.rows]
        assert [r["Noegle"] for r in rows] == sorted(r["Noegle"] for r in rows)
        assert {r["AfstemningsomraadeDagiId"]: r["Fil"] for r in rows} == {
            ident: name.removeprefix(f"{FV}/") for ident, (name, _) in expected.items()
        }
        assert {page.total for page in walked} == {len(expected)}
        for page in walked:
            assert {n["file"] for n in page.notices if n["code"] == "VALG_FALLBACK"} == fallbacks
    # One choice of the files of the folder, however many pages.
    assert chosen == Counter({"valgresultater": 1})
    assert source.fallbacks["empty"] == len(fallbacks)


async def test_a_filter_on_kept_rows_pages_and_counts_like_the_recording(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    expected = sorted(
        doc["AfstemningsområdeDagiId"]
        for _, doc in newest_by(raw, f"{FV}/valgresultater", "AfstemningsområdeDagiId").values()
        if doc["Resultatart"] == "Fintælling"
    )
    assert 0 < len(expected) < 1314
    query = q(
        datamodel, "Valgresultat", And((eq("Valgmappe", FV), eq("Resultatart", "Fintælling")))
    )
    # The first walk learns the counts per file; the second skips by them.
    for size in (100, 37):
        walked = await pages(source, query, size)
        ids = [r["AfstemningsomraadeDagiId"] for page in walked for r in page.rows]
        assert sorted(ids) == expected
        assert len(ids) == len(set(ids))
        assert {page.total for page in walked} == {len(expected)}
        assert all(len(page.rows) == size for page in walked[:-1])


async def test_rows_handed_out_are_the_callers_own(
    source: ValgSource, datamodel: Datamodel
) -> None:
    query = q(datamodel, "Valgresultat", eq("Valgmappe", FV), limit=5)
    first = await source.fetch(query)
    before = [dict(r) for r in first.rows]
    for row in first.rows:
        row["Resultatart"] = "changed"
        row.clear()
    again = await source.fetch(query)
    assert again.rows == before


async def test_a_new_listing_replaces_the_kept_choice(
    valg_replica: ValgReplica, live_source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    folder = f"{FV}/valgresultater"

    def states(instant: dt.datetime) -> Counter[str]:
        out: Counter[str] = Counter()
        for versions in series_newest(raw, folder, instant).values():
            served = next((name for _, name, data in versions if data), None)
            if served is not None:
                out[raw.doc(served)["Resultatart"]] += 1
        return out

    query = q(datamodel, "Valgresultat", eq("Valgmappe", FV))
    early, late = dt.datetime(2026, 3, 24, 21, 0), dt.datetime(2026, 3, 24, 23, 0)
    assert states(early) != states(late)
    chosen = count_choices(live_source)
    seen = []
    for instant in (early, early, late):
        valg_replica.clock.set(instant)
        page = await live_source.fetch(query)
        assert Counter(r["Resultatart"] for r in page.rows) == states(instant)
        seen.append(chosen["valgresultater"])
    # Listed again alike (ttl 0): the same choice; listed with new versions: chosen again.
    assert seen == [1, 1, 2]


async def test_a_failing_signature_is_told_on_every_page(
    valg_replica: ValgReplica, source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    valg_replica.faults.inject(Fault("malformed", match=AREA, times=None))
    folder = f"{FV}/valgresultater"
    (versions,) = [v for s, v in series_newest(raw, folder).items() if s.endswith(AREA)]
    newest = versions[0][1]
    query = q(datamodel, "Valgresultat", eq("Valgmappe", FV), limit=10, count=True)
    totals = set()
    for _ in range(3):
        page = await source.fetch(query)
        signature = [n for n in page.notices if n.get("reason") == "signature"]
        # The server keeps only the newest version: nothing is served in its place.
        assert signature == [
            {"code": "VALG_FALLBACK", "file": newest, "reason": "signature", "served": None}
        ]
        totals.add(page.total)
    expected = newest_by(raw, folder, "AfstemningsområdeDagiId")
    assert totals == {len(expected) - 1}
    where = And((eq("Valgmappe", FV), eq("Fil", newest.removeprefix(f"{FV}/"))))
    assert (await source.fetch(q(datamodel, "Valgresultat", where))).rows == []
    assert source.fallbacks["signature"] == 1  # counted and logged once


async def test_archived_roots_and_absent_datasets_keep_their_answers(
    source: ValgSource, datamodel: Datamodel, raw: RawArchive
) -> None:
    expected = newest_by(raw, f"{KV}/valgresultater", "AfstemningsområdeDagiId")
    query = q(datamodel, "Valgresultat", eq("Valgmappe", KV), limit=50, count=True)
    absent = q(datamodel, "Folkeafstemning")
    for _ in range(2):
        page = await source.fetch(query)
        assert page.total == len(expected)
        assert len(page.rows) == 50
        assert {r["Arkiveret"] for r in page.rows} == {True}
        assert {r["Valgmappe"] for r in page.rows} == {KV}
        nothing = await source.fetch(absent)
        assert nothing.rows == []
        assert [n["code"] for n in nothing.notices] == ["NOT_YET_AVAILABLE"]


def test_the_row_cache_is_bounded_by_rows() -> None:
    cache = RowCache(limit=5)
    keys = [(DocContext("r", False, "f", f"n{i}", None, str(i)), "E") for i in range(3)]
    cache.put(keys[0], [{"a": 1}] * 3)
    cache.put(keys[1], [{"a": 2}] * 2)
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put(keys[2], [{"a": 3}] * 2)
    assert cache.rows == 5
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]) == [{"a": 1}] * 3
    cache.put(keys[1], [{"a": 2}] * 6)  # larger than the bound: not kept
    assert cache.get(keys[1]) is None


def test_a_selection_skips_by_counts_only_once_all_are_known() -> None:
    ctx = DocContext("r", False, "f", "n", None, "i")
    selection = Selection([(None, ctx, None)] * 3)  # type: ignore[list-item]
    counts = selection.counts("E\x00None")
    assert selection.ends("E\x00None") is None
    counts[:2] = [2, 0]
    assert selection.ends("E\x00None") is None
    counts[2] = 3
    assert selection.ends("E\x00None") == [2, 2, 5]
    assert selection.ends("E\x00other") is None
