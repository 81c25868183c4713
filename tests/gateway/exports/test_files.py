"""The exports folder: its limit, its age, its levels, and reading its settings."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from gateway.exports.files import ExportFileSettings, _byte_range
from gateway.http.config import Settings
from gateway.model.errors import DescriptorError
from resolvers.odata.replica.server import ODataReplica
from tests.gateway.exports.helpers import stemme
from tests.support import gateway_client, register_subset

PATH = "/FT/v1/download/Stemme.parquet"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".rows")


async def _get(client: httpx.AsyncClient, where: str) -> httpx.Response:
    return await client.get(PATH, params={"where": where})


@pytest.mark.asyncio(loop_scope="module")
async def test_an_export_over_the_limit_is_a_clear_error(
    tmp_path: Path, odata_replica: ODataReplica
) -> None:
    files = ExportFileSettings(folder=tmp_path, max_bytes=2_000)
    with register_subset("FT") as registers:
        async with gateway_client(
            registers, {"FT": {"url": odata_replica.url}}, exports=files
        ) as client:
            response = await _get(client, '{"afstemningid":{"lte":80}}')
            assert response.status_code == 413
            error = response.json()["errors"][0]
            assert error["extensions"] == {"code": "EXPORT_TOO_LARGE", "limit": 2_000}
            assert "CSV or NDJSON" in error["message"]
            # Nothing half-written is left behind; the streamed CSV has no such limit.
            assert _files(tmp_path) == []
            csv = await client.get(
                "/FT/v1/download/Stemme.csv", params={"where": '{"afstemningid":{"lte":80}}'}
            )
            assert csv.status_code == 200
            assert len(csv.content) > 2_000


@pytest.mark.asyncio(loop_scope="module")
async def test_the_oldest_files_make_room_and_stale_ones_are_rebuilt(
    tmp_path: Path, odata_replica: ODataReplica
) -> None:
    first_where, second_where = '{"afstemningid":{"eq":1}}', '{"afstemningid":{"eq":2}}'
    with register_subset("FT") as registers:
        probe_folder = tmp_path / "probe"
        probe = ExportFileSettings(folder=probe_folder)
        async with gateway_client(
            registers, {"FT": {"url": odata_replica.url}}, exports=probe
        ) as client:
            size = len((await _get(client, first_where)).content)
        # Room for one of these files, not two.
        folder = tmp_path / "exports"
        files = ExportFileSettings(folder=folder, max_bytes=size + size // 2, max_age=3600)
        async with gateway_client(
            registers, {"FT": {"url": odata_replica.url}}, exports=files
        ) as client:
            one = await _get(client, first_where)
            assert one.status_code == 200
            (kept,) = _files(folder)
            two = await _get(client, second_where)
            assert two.status_code == 200
            (now,) = _files(folder)
            assert now != kept  # the older file made room
            ids = pq.read_table(io.BytesIO(two.content)).column("id").to_pylist()
            assert ids == [r["id"] for r in stemme(afstemningid=2)]
            # Fresh: served again without asking the upstream.
            odata_replica.log.clear()
            again = await _get(client, second_where)
            assert odata_replica.data_requests() == 0
            assert again.headers["etag"] == two.headers["etag"]
        # max_age 0: every request builds the file anew from the upstream.
        stale = ExportFileSettings(folder=folder, max_age=0)
        async with gateway_client(
            registers, {"FT": {"url": odata_replica.url}}, exports=stale
        ) as client:
            await client.app.state.gateway.sources["FT"].services.cache.clear()  # type: ignore[attr-defined]
            odata_replica.log.clear()
            rebuilt = await _get(client, second_where)
            assert rebuilt.status_code == 200
            assert odata_replica.data_requests() >= 1
            assert rebuilt.content == two.content


def test_the_settings_come_from_toml_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[exports]\nfolder = "files"\nmax_bytes = 1000\nmax_age = 60\n', "utf-8")
    settings = Settings.load(config, env={})
    assert settings.exports == ExportFileSettings(
        folder=(tmp_path / "files").resolve(), max_bytes=1000, max_age=60.0
    )
    env = {"GATEWAY_EXPORTS_MAX_BYTES": "5000", "GATEWAY_EXPORTS_MAX_AGE": "1.5"}
    settings = Settings.load(config, env=env)
    assert settings.exports.folder == (tmp_path / "files").resolve()
    assert (settings.exports.max_bytes, settings.exports.max_age) == (5000, 1.5)
    assert Settings.load(None, env={}).exports.folder is None  # a temporary folder
    for bad in ("0", "-1", "lots"):
        with pytest.raises(DescriptorError, match=r"(?i)exports"):
            Settings.load(None, env={"GATEWAY_EXPORTS_MAX_BYTES": bad})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=100-", False),
        ("bytes=9-5", False),
        ("bytes=-0", False),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_byte_ranges(header: str, expected: object) -> None:
    assert _byte_range(header, 100) == expected
