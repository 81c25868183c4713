"""Row versions in the history store: opened, closed by a later version or a deletion, asked
for at instants, as events, after a migration from files only, and pruned."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest

from gateway.history.store import MIGRATIONS, HistoryStore, RowVersion, iso
from tests.support import PostgresServer

pytestmark = pytest.mark.asyncio
UTC = dt.UTC
_NUMBERS = count()

Make = Callable[..., HistoryStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    """A new store (embedded, or on the session's PostgreSQL server, a new database)."""
    if request.param == "sqlite":
        yield lambda **options: HistoryStore(tmp_path / "h.sqlite", **options)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.database(f"rows{next(_NUMBERS)}")
    yield lambda **options: HistoryStore(None, url=url, **options)


def at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=UTC)


def version(key: int, text: str, day: int) -> RowVersion:
    row = {"id": key, "type": text}
    return RowVersion(str(key), json.dumps(row), at(day), at(day), None)


def contents(found: list[str]) -> list[tuple[int, str]]:
    return [(json.loads(c)["id"], json.loads(c)["type"]) for c in found]


async def test_versions_events_and_deletions(make: Make) -> None:
    store = make()
    await store.start()
    try:
        store.record_rows("FT", "T", [version(1, "a", 1), version(2, "b", 1)], at(5))
        store.record_rows("FT", "T", [version(1, "a2", 3)], at(6))
        # the same content again (a cached read) and an older version arriving late
        store.record_rows("FT", "T", [version(1, "a2", 3), version(1, "old", 2)], at(7))
        assert contents(await store.rows_at("FT", "T", at(2))) == [(1, "a"), (2, "b")]
        assert contents(await store.rows_at("FT", "T", at(4))) == [(1, "a2"), (2, "b")]
        assert await store.rows_known_from("FT", "T") == at(5)  # first seen, not registered
        assert await store.rows_newest("FT", "T") == at(3)
        closed = await store.rows_deleted("FT", "T", ["2", "9"], at(8))
        assert [key for key, _ in closed] == ["2"]  # 9 was never open
        assert contents(await store.rows_at("FT", "T", at(9))) == [(1, "a2")]
        assert contents(await store.rows_at("FT", "T", at(7))) == [(1, "a2"), (2, "b")]
        assert await store.open_keys("FT", "T") == {"1"}
        assert await store.deleted_keys("FT") == {"T": {"2"}}
        events = await store.events("FT")
        assert [(e.key, e.action) for e in events] == [
            ("1", "i"),
            ("2", "i"),
            ("1", "u"),
            ("2", "d"),
        ]
        assert events[3].registered_from == at(1)
        assert events[3].registered_to == at(8)
        assert await store.events("FT", ["Other"]) == []
        assert [e.id for e in await store.events("FT", after=events[1].id)] == [
            events[2].id,
            events[3].id,
        ]
        # back upstream: opened again, no longer deleted
        store.record_rows("FT", "T", [version(2, "b again", 9)], at(10))
        assert await store.deleted_keys("FT") == {}
        assert (await store.events("FT"))[-1].action == "i"
    finally:
        await store.aclose()


async def test_a_change_without_a_newer_update_time_is_registered_when_seen(
    make: Make,
) -> None:
    store = make()
    await store.start()
    try:
        undated = RowVersion("1", '{"id": 1, "v": 1}')
        store.record_rows("X", "T", [undated], at(1))
        store.record_rows("X", "T", [RowVersion("1", '{"id": 1, "v": 2}')], at(2))
        # the same seen time as the open version: a microsecond after it
        store.record_rows("X", "T", [RowVersion("1", '{"id": 1, "v": 3}')], at(2))
        starts = [e.registered_from for e in await store.events("X")]
        assert starts == [at(1), at(2), at(2) + dt.timedelta(microseconds=1)]
    finally:
        await store.aclose()


async def test_history_of_files_only_is_migrated_to_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO files VALUES ('V', 'r/a.json', 'r', 1, 'x', x'31', NULL, ?, ?, NULL)",
        (iso(at(1)), iso(at(1))),
    )
    db.commit()
    db.close()
    store = HistoryStore(path)
    await store.start()
    try:
        assert await store.count("V") == 1  # the files are kept
        store.record_rows("FT", "T", [version(1, "a", 1)], at(2))
        assert contents(await store.rows_at("FT", "T", at(3))) == [(1, "a")]
    finally:
        await store.aclose()


async def test_retention_drops_closed_row_versions_and_old_events(make: Make) -> None:
    store = make(retention_days=10)
    await store.start()
    try:
        store.record_rows("FT", "T", [version(1, "a", 1), version(2, "b", 1)], at(1))
        store.record_rows("FT", "T", [version(1, "a2", 2)], at(2))
        store.record_rows("FT", "T", [version(2, "b2", 25)], at(25))
        assert await store.prune(at(20)) == 1 + 3  # a (closed on the 2nd) and 3 events
        assert contents(await store.rows_at("FT", "T", at(26))) == [(1, "a2"), (2, "b2")]
        assert contents(await store.rows_at("FT", "T", at(3))) == [(1, "a2"), (2, "b")]
        assert [e.action for e in await store.events("FT")] == ["u"]
    finally:
        await store.aclose()


async def test_files_and_restarts_on_postgresql(postgres: PostgresServer) -> None:
    url = postgres.database(f"files{next(_NUMBERS)}")
    store = HistoryStore(None, url=url)
    await store.start()
    try:
        store.record("VALG", "r/res/a-240320262000.json", b"one", b"sig", at(24, 20))
        store.record("VALG", "r/res/a-240320262000.json", b"one", b"sig", at(24, 21))  # again
        store.record("VALG", "r/geo/k.json", b"geo", None, at(24, 19))
        versions, folders = await store.listing("VALG", "r", at(24, 22))
        assert versions == []
        assert folders == {"res", "geo"}
        (found,), _ = await store.listing("VALG", "r/res", at(24, 22))
        assert (found.name, found.size, found.signature_size) == ("a-240320262000.json", 3, 3)
        assert await store.deleted("VALG", ["r/geo/k.json"], at(25)) == 1
        assert (await store.listing("VALG", "r/geo", at(26)))[0] == []
        assert store.where == url
    finally:
        await store.aclose()
    again = HistoryStore(None, url=url)  # another process's store, or after a restart
    await again.start()
    try:
        assert await again.read("VALG", "r/res/a-240320262000.json") == (b"one", b"sig")
        assert await again.count("VALG") == 2
        assert await again.known_from("VALG") == at(24, 19)
    finally:
        await again.aclose()


async def test_a_postgresql_url_that_answers_nothing_is_a_clear_error() -> None:
    from gateway.model.errors import DescriptorError
    from tests.support import free_port

    store = HistoryStore(None, url=f"postgresql://nobody:secret@127.0.0.1:{free_port()}/x")
    with pytest.raises(DescriptorError, match="cannot connect") as caught:
        await store.start()
    assert "secret" not in str(caught.value)
    await store.aclose()
    with pytest.raises(DescriptorError, match="not a PostgreSQL URL"):
        HistoryStore(None, url="mysql://x/y")
