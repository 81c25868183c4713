"""The SFTP replica of data.valg.dk: tree, names, keys, replay clock, faults, request log."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncssh
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from resolvers.replica_kit.faults import Fault
from resolvers.valg_sftp.codec import verify_signature
from resolvers.valg_sftp.replica.server import ValgReplica, parse_replay
from tests.resolvers.valg_sftp.rawdata import AABENRAA_MIDT_FINAL, FV, KV, RV, RawArchive

STAMP = re.compile(r"-(\d{12})\.json$")


@asynccontextmanager
async def sftp_session(
    valg_replica: ValgReplica, password: str = "Valg"
) -> AsyncIterator[asyncssh.SFTPClient]:
    known = asyncssh.import_known_hosts(valg_replica.known_hosts)
    async with (
        asyncssh.connect(
            valg_replica.host,
            valg_replica.port,
            username="Valg",
            password=password,
            known_hosts=known,
            client_keys=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        yield sftp


async def _names(sftp: asyncssh.SFTPClient, path: str) -> dict[str, int]:
    return {
        str(n.filename): int(n.attrs.size or 0)
        for n in await sftp.readdir(path)
        if n.filename not in (".", "..")
    }


async def _read(sftp: asyncssh.SFTPClient, path: str) -> bytes:
    async with sftp.open(path, "rb") as handle:
        data = await handle.read()
    assert isinstance(data, bytes)
    return data


def _stamp(name: str) -> dt.datetime:
    match = STAMP.search(name)
    assert match is not None, name
    return dt.datetime.strptime(match.group(1), "%d%m%Y%H%M")


def _expected_listing(raw: RawArchive, folder: str, until: dt.datetime) -> set[str]:
    """Newest version per series by time, keeping predecessors of an empty newest file."""
    series: dict[str, list[tuple[dt.datetime, str, bytes]]] = defaultdict(list)
    for name, data in raw.folder(folder):
        base = name.rpartition("/")[2]
        if _stamp(base) <= until:
            series[STAMP.sub("", base)].append((_stamp(base), base, data))
    out = set()
    for versions in series.values():
        for _, base, data in sorted(versions, reverse=True):
            out.add(base)
            if data:
                break
    return out


async def test_root_layout_and_login_directory(valg_replica: ValgReplica) -> None:
    async with sftp_session(valg_replica) as sftp:
        assert set(await _names(sftp, "/")) == {"data", "arkiv"}
        # The 2025 elections were discarded: their roots were moved to the archive folder.
        assert set(await _names(sftp, "/data")) == {FV}
        assert set(await _names(sftp, "/arkiv")) == {KV, RV}
        # A relative path works too: the login directory is "/".
        fv = await _names(sftp, f"data/{FV}")
        assert {"geografi", "valgresultater", "public-key.pem", "Snitfladebeskrivelser"} <= set(fv)
        assert "verifikation" in fv
        assert "public-key.recovered.pem" not in fv


async def test_end_of_recording_shows_newest_version_per_entity(
    valg_replica: ValgReplica, raw: RawArchive
) -> None:
    async with sftp_session(valg_replica) as sftp:
        listed = await _names(sftp, f"/data/{FV}/valgresultater")
    data_files = {n for n in listed if n.endswith(".json")}
    expected = _expected_listing(raw, f"{FV}/valgresultater", valg_replica.archive.end)
    assert data_files == expected
    # Two areas whose newest file is zero bytes still list their previous version.
    assert len(data_files) == 1314 + 2
    assert all(f"{n}.hash" in listed for n in data_files)


async def test_kvrv_names_get_their_stamp_back(valg_replica: ValgReplica, raw: RawArchive) -> None:
    async with sftp_session(valg_replica) as sftp:
        listed = await _names(sftp, f"/arkiv/{KV}/mandatfordeling")
        for name, data in raw.folder(f"{KV}/mandatfordeling"):
            base = name.rpartition("/")[2]
            if STAMP.search(base):
                continue
            released = json.loads(data)["FrigivelsesTidspunktUTC"]
            stamp = (
                released[0:2] + released[3:5] + released[6:10] + released[11:13] + released[14:16]
            )
            served = base.removesuffix(".json") + f"-{stamp}.json"
            assert served in listed, served
            assert await _read(sftp, f"/arkiv/{KV}/mandatfordeling/{served}") == data
            assert (
                await _read(sftp, f"/arkiv/{KV}/mandatfordeling/{served}.hash")
                == raw.files[f"{name}.hash"]
            )


async def test_each_root_publishes_its_key_and_schemas(
    valg_replica: ValgReplica, raw: RawArchive
) -> None:
    async with sftp_session(valg_replica) as sftp:
        for root in (KV, RV):
            pem = await _read(sftp, f"/arkiv/{root}/public-key.pem")
            assert pem == raw.files[f"{root}/public-key.recovered.pem"]
            schema = "Snitfladebeskrivelser/Valgresultater/KVRV-Valgresultater.schema.json"
            assert await _read(sftp, f"/arkiv/{root}/{schema}") == raw.files[f"{FV}/{schema}"]
        fv_pem = await _read(sftp, f"/data/{FV}/public-key.pem")
        assert fv_pem != raw.files[f"{FV}/public-key.recovered.pem"]
        key = load_pem_public_key(fv_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        path = f"/data/{AABENRAA_MIDT_FINAL}"
        data, signature = await _read(sftp, path), await _read(sftp, f"{path}.hash")
        assert data == raw.files[path.removeprefix("/data/")]
        assert verify_signature(key, data, signature)


async def test_replay_clock_shows_only_what_was_released(
    valg_replica: ValgReplica, raw: RawArchive
) -> None:
    instant = dt.datetime(2026, 3, 24, 20, 30)
    valg_replica.clock.set(instant)
    async with sftp_session(valg_replica) as sftp:
        listed = await _names(sftp, f"/data/{FV}/valgresultater")
        assert {n for n in listed if n.endswith(".json")} == _expected_listing(
            raw, f"{FV}/valgresultater", instant
        )
        assert "partistemmefordeling" not in await _names(sftp, f"/data/{FV}")
        valg_replica.clock.set(dt.datetime(2026, 3, 10))
        assert "valgresultater" not in await _names(sftp, f"/data/{FV}")
        # A file that is no longer (or not yet) listed cannot be downloaded.
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await _read(sftp, f"/data/{FV}/geografi/Kommune-190320261917.json")


async def test_replay_runs_faster_than_real_time(valg_replica: ValgReplica) -> None:
    start = dt.datetime(2026, 3, 24, 19, 0)
    valg_replica.clock.replay(start, valg_replica.archive.end, speed=3600.0)
    first = valg_replica.clock.now()
    assert start <= first < start + dt.timedelta(minutes=30)
    valg_replica.clock.replay(start, start + dt.timedelta(seconds=1), speed=1e9)
    assert valg_replica.clock.now() == start + dt.timedelta(seconds=1)
    with pytest.raises(ValueError, match="speed"):
        valg_replica.clock.replay(start, start, speed=0)


async def test_wrong_password_is_refused_and_the_server_is_read_only(
    valg_replica: ValgReplica,
) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with sftp_session(valg_replica, password="wrong"):
            pass
    async with sftp_session(valg_replica) as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.mkdir(f"/data/{FV}/new")
        with pytest.raises(asyncssh.SFTPError):
            async with sftp.open(f"/data/{FV}/x.json", "wb"):
                pass


async def test_fault_empty_newest_keeps_predecessor_listed(valg_replica: ValgReplica) -> None:
    area = "Aabenraa_Kommune-Aabenraa_Midt"
    valg_replica.faults.inject(Fault("truncate", keep=0.0, match=area, times=None))
    async with sftp_session(valg_replica) as sftp:
        listed = await _names(sftp, f"/data/{FV}/valgresultater")
    versions = sorted((n, size) for n, size in listed.items() if area in n and n.endswith(".json"))
    assert [size for _, size in versions if "250320261137" in _] == [0]
    assert len(versions) == 2  # the previous (preliminary) version is still there
    valg_replica.faults.clear()


async def test_fault_truncated_and_bad_signature(
    valg_replica: ValgReplica, raw: RawArchive
) -> None:
    path = AABENRAA_MIDT_FINAL
    async with sftp_session(valg_replica) as sftp:
        good_signature = await _read(sftp, f"/data/{path}.hash")
        valg_replica.faults.inject(Fault("truncate", match="Aabenraa_Midt", times=None))
        half = await _read(sftp, f"/data/{path}")
        assert half == raw.files[path][: len(raw.files[path]) // 2]
        valg_replica.faults.clear()
        valg_replica.faults.inject(Fault("malformed", match="Aabenraa_Midt", times=None))
        assert await _read(sftp, f"/data/{path}") == raw.files[path]
        assert await _read(sftp, f"/data/{path}.hash") != good_signature


async def test_fault_dropped_connection_and_slow_reads(valg_replica: ValgReplica) -> None:
    valg_replica.faults.inject(Fault("drop"))
    with pytest.raises((asyncssh.Error, ConnectionError, OSError)):
        async with sftp_session(valg_replica) as sftp:
            await sftp.readdir("/data")
    valg_replica.faults.inject(Fault("slow", delay=0.2, times=None))
    async with sftp_session(valg_replica) as sftp:
        path = f"/data/{FV}/public-key.pem"
        started = dt.datetime.now()
        await _read(sftp, path)
        assert dt.datetime.now() - started >= dt.timedelta(seconds=0.2)


async def test_listing_changes_between_two_reads(valg_replica: ValgReplica) -> None:
    valg_replica.clock.set(dt.datetime(2026, 3, 24, 20, 0))
    valg_replica.clock.step = dt.timedelta(minutes=30)
    async with sftp_session(valg_replica) as sftp:
        first = await _names(sftp, f"/data/{FV}/valgresultater")
        second = await _names(sftp, f"/data/{FV}/valgresultater")
    assert first != second


async def test_request_log_counts_downloads(valg_replica: ValgReplica) -> None:
    async with sftp_session(valg_replica) as sftp:
        await _read(sftp, f"/data/{FV}/public-key.pem")
        await _names(sftp, f"/data/{FV}")
    assert valg_replica.downloads(".pem") == [f"/data/{FV}/public-key.pem"]
    assert valg_replica.downloads() == []
    assert any(e.method == "list" and e.path == f"/data/{FV}" for e in valg_replica.log)


def test_demo_replay_window_is_read_from_text() -> None:
    end = dt.datetime(2026, 3, 25, 19, 3)
    assert parse_replay("2026-03-24T18:00Z/2026-03-25T12:00Z@120", end) == (
        dt.datetime(2026, 3, 24, 18, 0),
        dt.datetime(2026, 3, 25, 12, 0),
        120.0,
    )
    assert parse_replay("2026-03-24T19:00:00+01:00", end) == (
        dt.datetime(2026, 3, 24, 18, 0),
        end,
        60.0,
    )
    for bad in ("yesterday", "2026-03-25T12:00/2026-03-24T12:00", "2026-03-24T12:00@0"):
        with pytest.raises(ValueError, match="VALG_REPLICA_REPLAY"):
            parse_replay(bad, end)
