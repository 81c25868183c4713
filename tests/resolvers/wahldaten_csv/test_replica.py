"""The replica as an HTTP client sees it: names, listings, validators, faults, controls."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import pytest

from gateway.sources.kinds import DemoHandle
from resolvers.wahldaten_csv.replica.server import (
    LISTING,
    Fault,
    WahldatenDemo,
    WahldatenReplica,
    demo_replica,
    recorded_files,
)
from tests.resolvers.wahldaten_csv.model import DATA_DIR


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_files_are_served_byte_exact_under_their_percent_encoded_names(
    wahldaten_replica: WahldatenDemo, http: httpx.AsyncClient
) -> None:
    paths = sorted(DATA_DIR.rglob("*.csv"))
    assert len(paths) == 37
    for path in paths:
        response = await http.get(wahldaten_replica.url + quote(path.name, safe=""))
        assert response.status_code == 200
        assert response.content == path.read_bytes()
        assert response.headers["content-type"].startswith("text/csv")


async def test_json_and_html_listings_name_every_file(
    wahldaten_replica: WahldatenDemo, http: httpx.AsyncClient
) -> None:
    names = set(recorded_files())
    listed = (await http.get(wahldaten_replica.url, headers={"accept": "application/json"})).json()
    assert {f["name"] for f in listed["files"]} == names
    assert all(f["href"] == quote(f["name"], safe="") for f in listed["files"])
    assert (await http.get(wahldaten_replica.url + "index.json")).json() == listed
    index = (await http.get(wahldaten_replica.url)).text
    assert index.startswith("<html>")
    assert all(f'href="{quote(name, safe="")}"' in index for name in names)


async def test_validators_and_conditional_requests(
    wahldaten_replica: WahldatenDemo, http: httpx.AsyncClient
) -> None:
    (path,) = (DATA_DIR / "kall-kommunal2020").glob("*_Stimmzettel_*")
    url = wahldaten_replica.url + quote(path.name, safe="")
    first = await http.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    # Recorded files are dated by the timestamp in their name.
    assert parsedate_to_datetime(modified) == dt.datetime(2020, 9, 30, 11, 11, 11, tzinfo=dt.UTC)
    assert (await http.get(url, headers={"if-none-match": etag})).status_code == 304
    assert (await http.get(url, headers={"if-none-match": '"other"'})).status_code == 200
    assert (await http.get(url, headers={"if-modified-since": modified})).status_code == 304
    listing = await http.get(wahldaten_replica.url)
    again = await http.get(
        wahldaten_replica.url, headers={"if-none-match": listing.headers["etag"]}
    )
    assert again.status_code == 304
    wahldaten_replica.replica.add_file(
        "05366024_20200913_Ratswahl-NRW_Stimmzettel_V0-2_20201001T000000.csv", b"x\n"
    )
    changed = await http.get(
        wahldaten_replica.url, headers={"if-none-match": listing.headers["etag"]}
    )
    assert changed.status_code == 200
    assert [e.conditional for e in wahldaten_replica.replica.log.where(path=LISTING)] == [
        False,
        True,
        True,
    ]


async def test_faults_hit_as_often_as_asked(
    wahldaten_replica: WahldatenDemo, http: httpx.AsyncClient
) -> None:
    wahldaten_replica.replica.faults.inject(Fault("status", match=LISTING, status=500, times=2))
    statuses = [(await http.get(wahldaten_replica.url)).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    (path,) = (DATA_DIR / "kall-kommunal2020").glob("*_Wahlparameter_*")
    url = wahldaten_replica.url + quote(path.name, safe="")
    wahldaten_replica.replica.faults.inject(Fault("truncate", match=path.name, times=1))
    assert (await http.get(url)).content == path.read_bytes()[: path.stat().st_size // 2]
    assert (await http.get(url)).content == path.read_bytes()
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("explode")


async def test_unknown_files_and_paths_outside_the_folder(
    wahldaten_replica: WahldatenDemo, http: httpx.AsyncClient
) -> None:
    assert (await http.get(wahldaten_replica.url + "nope.csv")).status_code == 404
    assert (await http.get(wahldaten_replica.url + "..%2FREADME.md")).status_code == 404
    with pytest.raises(ValueError, match="no plain file name"):
        wahldaten_replica.replica.add_file("../x.csv", b"")


async def test_controls_over_http(
    wahldaten_replica: WahldatenDemo, http: httpx.AsyncClient
) -> None:
    base = wahldaten_replica.url.removesuffix("wahldaten/")
    name = "05366024_20200913_Ratswahl-NRW_Stimmzettel_V0-2_20201001T000000.csv"
    added = await http.put(base + "_control/files/" + quote(name, safe=""), content=b"a;b\n")
    assert added.status_code == 200
    assert (await http.get(wahldaten_replica.url + quote(name, safe=""))).content == b"a;b\n"
    fault = await http.post(base + "_control/faults", json={"kind": "status", "status": 502})
    assert fault.json() == {"faults": 1}
    assert (await http.get(wahldaten_replica.url)).status_code == 502
    assert (await http.delete(base + "_control/faults")).status_code == 200
    assert (await http.get(wahldaten_replica.url)).status_code == 200
    bad = await http.post(base + "_control/faults", json={"kind": "nonsense"})
    assert bad.status_code == 400
    log = (await http.get(base + "_control/log")).json()
    assert any(
        (e["method"], e["path"], e["status"], e["fault"], e["conditional"])
        == ("GET", LISTING, 502, "status", False)
        for e in log
    )
    removed = await http.delete(base + "_control/files/" + quote(name, safe=""))
    assert removed.status_code == 200
    assert name not in wahldaten_replica.replica.files


async def test_demo_handle() -> None:
    handle: DemoHandle = await demo_replica()
    try:
        assert isinstance(handle, WahldatenDemo)
        assert handle.overrides == {"DE": {"url": handle.address}}
        async with httpx.AsyncClient() as http:
            listed = await http.get(handle.address, headers={"accept": "application/json"})
        assert len(listed.json()["files"]) == 37
    finally:
        await handle.stop()


def test_the_replica_serves_the_recorded_files_flattened() -> None:
    replica = WahldatenReplica.recorded()
    assert {f.name for f in replica.files.values()} == {p.name for p in DATA_DIR.rglob("*.csv")}
