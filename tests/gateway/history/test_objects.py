"""Events of file versions (gateway/history/objects.py), on SQLite and PostgreSQL: a real
German results file, a newer version of it with one ballot area changed and one gone, an
older version arriving late, and the series withdrawn. The expected events are read from
the CSV with the standard library."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from gateway.dls.descriptors import load_registers
from gateway.history.store import HistoryStore
from resolvers.wahldaten_csv.describe import WahldatenDescriber
from tests.support import REGISTERS, PostgresServer

pytestmark = pytest.mark.asyncio
DATA = Path(__file__).resolve().parents[3] / "data" / "de" / "karlsruhe-ltw2021"
NAME = "08212000_20210314_Landtagswahl-BW-2021_Wahlergebnisse_V0-3_{}.csv"
_NUMBERS = count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    if request.param == "sqlite":
        yield HistoryStore(tmp_path / "h.sqlite")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield HistoryStore(None, url=server.database(f"objects{next(_NUMBERS)}"))


def describer() -> WahldatenDescriber:
    (register,) = [r for r in load_registers(REGISTERS).registers if r.name == "DE"]
    return WahldatenDescriber(register)


def areas(data: bytes) -> list[str]:
    return [r["bezirk-nr"] for r in csv.DictReader(io.StringIO(data.decode()), delimiter=";")]


def edited(data: bytes) -> bytes:
    """The file with its first area's A1 raised by one and its last area left out."""
    lines = data.decode().splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(";")
    first = lines[1].rstrip("\r\n").split(";")
    column = header.index("A1")
    first[column] = str(int(first[column]) + 1)
    return "".join([lines[0], ";".join(first) + "\r\n", *lines[2:-1]]).encode()


def at(day: int) -> dt.datetime:
    return dt.datetime(2021, 4, day, tzinfo=dt.UTC)


async def test_versions_become_events(store: HistoryStore) -> None:
    original = (DATA / NAME.format("20210427T000000")).read_bytes()
    newer = edited(original)
    keys = areas(original)
    assert len(keys) > 10
    await store.start()
    try:
        # Written before any describer knows the register (as an import writes them).
        store.record("DE", f"files/{NAME.format('20210501T000000')}", newer, None, at(27))
        store.record("DE", f"files/{NAME.format('20210427T000000')}", original, None, at(20))
        await store.flush()
        assert await store.events("DE") == []
        store.describe("DE", describer())
        events = await store.events("DE")
        # Described in the order registered: the original's rows, then the newer version's
        # one change and one ballot area gone.
        inserted = [e for e in events if e.action == "i"]
        assert len(inserted) == len(keys)
        assert {e.registered_from for e in inserted} == {at(20)}
        later = [(e.action, e.key.rsplit("|", 1)[1]) for e in events if e.action != "i"]
        assert later == [("u", keys[0]), ("d", keys[-1])]
        assert {e.registered_from for e in events if e.action != "i"} == {at(27)}
        # An older version arriving now changes nothing.
        store.record("DE", f"files/{NAME.format('20210426T000000')}", original, None, at(19))
        assert len(await store.events("DE")) == len(events)
        # The series withdrawn: every area it still holds is deleted.
        path = f"files/{NAME.format('20210501T000000')}"
        await store.deleted("DE", [path], at(28), withdrawn=[path])
        gone = [e for e in await store.events("DE") if e.id > events[-1].id]
        assert {e.action for e in gone} == {"d"}
        assert sorted(e.key.rsplit("|", 1)[1] for e in gone) == sorted(keys[:-1])
    finally:
        await store.aclose()


async def test_a_reopened_store_describes_what_was_left(tmp_path: Path) -> None:
    """Versions written with no describer are described when a gateway with one opens it."""
    original = (DATA / NAME.format("20210427T000000")).read_bytes()
    first = HistoryStore(tmp_path / "h.sqlite")
    await first.start()
    first.record("DE", f"files/{NAME.format('20210427T000000')}", original, None, at(20))
    await first.aclose()
    second = HistoryStore(tmp_path / "h.sqlite")
    second.describe("DE", describer())
    await second.start()
    try:
        assert len(await second.events("DE")) == len(areas(original))
    finally:
        await second.aclose()
