"""The history store: versions by instant, deletions, durability, migrations, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from pathlib import Path

import pytest

from gateway.history.store import ALWAYS, MIGRATIONS, HistoryStore, iso, parse_iso
from gateway.model.errors import DescriptorError

UTC = dt.UTC


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.asyncio
async def test_versions_listed_as_they_were_at_each_instant(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    await store.start()
    try:
        store.record("VALG", "root/res/a-240320262000.json", b"one", b"sig1", at(24, 20))
        store.record("VALG", "root/res/a-240320262100.json", b"two", None, at(24, 21))
        store.record("VALG", "root/geo/k.json", b"geo", b"s", at(24, 19))
        store.record("VALG", "root/public-key.pem", b"pem", None, ALWAYS)  # a key: always
        store.record("OTHER", "root/res/a-240320262000.json", b"x", None, at(24, 20))
        # A version recorded again changes nothing.
        store.record("VALG", "root/res/a-240320262000.json", b"one", b"sig1", at(24, 22))
        assert store.written == 0  # queued: nothing waited for the disk
        versions, folders = await store.listing("VALG", "root/res", at(24, 20, 30))
        assert [v.name for v in versions] == ["a-240320262000.json"]
        assert versions[0].sha256 == hashlib.sha256(b"one").hexdigest()
        assert versions[0].signature_size == 4
        assert versions[0].size == 3
        assert versions[0].registered_from == at(24, 20)
        versions, _ = await store.listing("VALG", "root/res", at(24, 21))
        assert [v.name for v in versions] == ["a-240320262000.json", "a-240320262100.json"]
        assert versions[1].signature_size is None
        assert (await store.listing("VALG", "root/res", at(24, 19)))[0] == []
        _, folders = await store.listing("VALG", "root", at(24, 19, 30))
        assert folders == {"geo"}  # res had nothing yet
        _, folders = await store.listing("VALG", "", at(24, 23))
        assert folders == {"root"}
        assert await store.read("VALG", "root/res/a-240320262000.json") == (b"one", b"sig1")
        assert await store.read("VALG", "root/res/nothing.json") is None
        assert await store.known_from("VALG") == at(24, 19)  # the key is no data
        assert await store.known_from("NONE") is None
        assert await store.count("VALG") == 4
        assert store.written == 5
        # Deleted at 23:00: listed before, not after.
        assert await store.deleted("VALG", ["root/res/a-240320262100.json"], at(24, 23)) == 1
        assert len((await store.listing("VALG", "root/res", at(24, 22, 59)))[0]) == 2
        assert len((await store.listing("VALG", "root/res", at(24, 23)))[0]) == 1
        # Seen again with the same bytes: back.
        store.record("VALG", "root/res/a-240320262100.json", b"two", None, at(24, 21))
        assert len((await store.listing("VALG", "root/res", at(25, 1)))[0]) == 2
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.sqlite"
    first = HistoryStore(path)
    await first.start()
    for n in range(450):  # more than one batch
        first.record("VALG", f"r/d/f{n:03d}-240320262000.json", str(n).encode(), None, at(24, 20))
    await first.aclose()  # what was queued is written on closing
    second = HistoryStore(path)
    await second.start()
    try:
        assert await second.count("VALG") == 450
        assert await second.read("VALG", "r/d/f449-240320262000.json") == (b"449", None)
    finally:
        await second.aclose()


@pytest.mark.asyncio
async def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    store = HistoryStore(path)
    with pytest.raises(DescriptorError, match="newer gateway"):
        await store.start()
    await store.aclose()


@pytest.mark.asyncio
async def test_an_old_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    sqlite3.connect(path).close()  # version 0: empty
    store = HistoryStore(path)
    await store.start()
    await store.aclose()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


@pytest.mark.asyncio
async def test_retention_drops_superseded_versions_only(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=10)
    await store.start()
    try:
        store.record("VALG", "r/d/a-010320260000.json", b"1", None, at(1, 0))
        store.record("VALG", "r/d/a-020320260000.json", b"2", None, at(2, 0))
        store.record("VALG", "r/d/a-240320260000.json", b"3", None, at(24, 0))
        store.record("VALG", "r/d/b-010320260000.json", b"b", None, at(1, 0))
        # 2026-03-20: 'a' of the 1st was superseded on the 2nd (18 days before): dropped;
        # 'a' of the 2nd was superseded on the 24th (after the cutoff): kept; 'b' answers now.
        assert await store.prune(at(20, 0)) == 1
        names = [v.name for v in (await store.listing("VALG", "r/d", at(25, 0)))[0]]
        assert names == ["b-010320260000.json", "a-020320260000.json", "a-240320260000.json"]
    finally:
        await store.aclose()
    with pytest.raises(DescriptorError):
        HistoryStore(tmp_path / "x.sqlite", retention_days=0)


def test_instants_are_stored_as_sortable_utc_text() -> None:
    local = dt.datetime(2026, 3, 24, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert iso(local) == "2026-03-24T21:00:00.000000Z"
    assert parse_iso(iso(local)) == local
    assert iso(dt.datetime(2026, 3, 24, 21)) == "2026-03-24T21:00:00.000000Z"  # naive: UTC
