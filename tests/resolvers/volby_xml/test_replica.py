"""The volby.cz replica over a real socket: URL shapes, recorded bytes, errors, clock, faults."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from resolvers.volby_xml.parse import error_of, parse_xml
from resolvers.volby_xml.replica.data import load_catalogue
from resolvers.volby_xml.replica.server import Fault, ReplayClock, VolbyReplica, demo_replica
from tests.resolvers.volby_xml.conftest import DATA, register


@pytest.fixture
async def http(volby_replica: VolbyReplica) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=volby_replica.url) as client:
        yield client


async def get(client: httpx.AsyncClient, path: str, **params: str) -> bytes:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.content


def chyba(content: bytes) -> tuple[int | None, str]:
    error = error_of(parse_xml(content))
    assert error is not None, content[:300]
    return error.code, error.text


RECORDED = [
    ("/pls/kv2014/vysledky", {"datumvoleb": "20141010"}, "kv2014/vysledky.xml"),
    ("/pls/kv2014/vysledky_obce_okres", {"nuts": "CZ0100"}, "kv2014/CZ0100.xml"),
    (
        "/pls/kv2014/vysledky_obce_okres",
        {"datumvoleb": "20141010", "nuts": "CZ0806"},
        "kv2014/CZ0806.xml",
    ),
    (
        "/pls/kv2022/vysledky_obec",
        {"datumvoleb": "20220923", "cislo_obce": "551082"},
        "kv2022/obec_551082.xml",
    ),
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "1", "davka": "25"}, "prez2023/kolo-1_davka-25.xml"),
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "1", "davka": ""}, "prez2023/kolo-1_davka-49.xml"),
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "2"}, "prez2023/kolo-2_davka-30.xml"),
    ("/pls/kv2022/vysledky_okrsky", {"davka": "1"}, "kv_error/csu-okrsky-live-chyba-10.xml"),
]


async def test_recorded_files_are_served_byte_for_byte(http: httpx.AsyncClient) -> None:
    for path, params, recorded in RECORDED:
        assert await get(http, path, **params) == (DATA / recorded).read_bytes(), path


async def test_single_council_document_is_cut_from_its_district(http: httpx.AsyncClient) -> None:
    district = (DATA / "kv2014" / "CZ0806.xml").read_bytes()
    content = await get(http, "/pls/kv2014/vysledky_obec", cislo_obce="569119")
    assert content.startswith(b'<?xml version="1.0" encoding="iso-8859-2"?>\n<VYSLEDKY_OBEC ')
    start = district.index(b'<OBEC KODZASTUP="569119"')
    block = district[start : district.index(b"</OBEC>", start) + len(b"</OBEC>")]
    assert block in content
    root = parse_xml(content)
    assert [c.get("NAZEVZAST") for c in root] == ["Čavisov"]
    assert root.get("DATUM_GENEROVANI") == "23/09/2014"


MISSING = [
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "1", "davka": "2"}),  # a gap of the recording
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "2", "davka": "31"}),  # not published yet
    ("/pls/kv2022/vysledky_obce_okres", {"nuts": "CZ0642"}),  # a district not recorded
    ("/pls/kv2022/vysledky_obec", {"cislo_obce": "554782"}),
    ("/pls/kv2022/vysledky", {}),
]


async def test_missing_data_is_error_10(http: httpx.AsyncClient) -> None:
    for path, params in MISSING:
        assert chyba(await get(http, path, **params)) == (10, ""), (path, params)


NOT_ACTIVATED = [
    ("/pls/kv2014/vysledky", {"datumvoleb": "20221010"}),
    ("/pls/kv2014/vysledky_obce_okres", {"datumvoleb": "20181005", "nuts": "CZ0100"}),
    ("/pls/kv2022/vysledky_obec", {"datumvoleb": "20270313", "cislo_obce": "551082"}),
    ("/pls/kv2022/vysledky_okrsky", {"datumvoleb": "20270313", "davka": ""}),
]


async def test_an_election_date_not_activated_is_error_20(http: httpx.AsyncClient) -> None:
    for path, params in NOT_ACTIVATED:
        assert chyba(await get(http, path, **params)) == (20, ""), (path, params)


async def test_no_batch_yet_for_the_date_is_error_30(http: httpx.AsyncClient) -> None:
    # The newest batch of an activated election without any batch: error 30; a numbered
    # batch that does not exist: error 10, as recorded.
    path = "/pls/kv2022/vysledky_okrsky"
    assert chyba(await get(http, path, datumvoleb="20220923", davka="")) == (30, "")
    assert chyba(await get(http, "/pls/kv2014/vysledky_okrsky")) == (30, "")
    assert chyba(await get(http, path, davka="3")) == (10, "")


REFUSED = [
    ("/pls/kv2014/vysledky_obce_okres", {"nuts": "Praha"}, "nuts"),
    ("/pls/kv2014/vysledky_obce_okres", {}, "nuts"),
    ("/pls/kv2014/vysledky_obec", {"cislo_obce": "12"}, "cislo_obce"),
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "3", "davka": "1"}, "kolo"),
    ("/pls/prez2023/vysledky_okrsky", {"kolo": "1", "davka": "x"}, "davka"),
]


async def test_wrong_parameters_get_the_text_error_form(http: httpx.AsyncClient) -> None:
    for path, params, text in REFUSED:
        content = await get(http, path, **params)
        code, message = chyba(content)
        assert code is None
        assert text in message
        stamp = parse_xml(content).get("DATUM_CAS_GENEROVANI", "")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", stamp)


def configured_elections(name: str) -> list[dict[str, Any]]:
    elections = register(name).source["elections"]
    assert isinstance(elections, list)
    return elections


def test_every_configured_election_is_recorded() -> None:
    # CZ configures the municipal elections the recording holds (kv2006, kv2010 and kv2018
    # are not recorded: data/cz/ATTRIBUTION.md).
    catalogue = load_catalogue(DATA)
    for name in ("CZ", "CZPREZ"):
        for election in configured_elections(name):
            recorded = catalogue[election["path"].removeprefix("pls/")]
            assert election["params"].get("datumvoleb") == recorded.datumvoleb, election
    configured = {e["context"]["volby"] for e in configured_elections("CZ")}
    municipal = {n for n, e in catalogue.items() if e.kind == "kv"}
    assert configured == municipal == {"kv2014", "kv2022"}


async def test_unknown_paths_are_404(http: httpx.AsyncClient) -> None:
    assert (await http.get("/pls/kv1990/vysledky")).status_code == 404
    assert (await http.get("/pls/prez2023/vysledky")).status_code == 404


async def test_manual_clock_releases_batches(manual_volby_replica: VolbyReplica) -> None:
    async with httpx.AsyncClient(base_url=manual_volby_replica.url) as client:
        path = "/pls/prez2023/vysledky_okrsky"
        assert chyba(await get(client, path, kolo="1", davka=""))[0] == 30  # no batch yet
        manual_volby_replica.release("prez2023", "1", 25)
        assert (
            await get(client, path, kolo="1", davka="")
            == (DATA / "prez2023" / "kolo-1_davka-25.xml").read_bytes()
        )
        assert chyba(await get(client, path, kolo="1", davka="44"))[0] == 10
        manual_volby_replica.release("prez2023", "1", 49)
        assert b'PORADI_DAVKY="44"' in await get(client, path, kolo="1", davka="44")


def test_replay_clock_follows_the_recorded_times() -> None:
    now = [100.0]
    replica = VolbyReplica(clock=ReplayClock(speed=60.0, timer=lambda: now[0]))
    batches = replica.catalogue["prez2023"].series["1"]
    # Batch 25 of round 1 was generated 2 hours after batch 1 (14:20 → 16:20).
    assert batches[25].offset == 7200.0
    assert replica.released("prez2023/1", 1, batches[1])
    assert not replica.released("prez2023/1", 25, batches[25])
    now[0] += 7200.0 / 60.0
    assert replica.released("prez2023/1", 25, batches[25])
    replica.clock.restart()
    assert not replica.released("prez2023/1", 25, batches[25])
    assert ReplayClock().released(dt.timedelta(seconds=1e9))


async def test_faults_and_the_request_log(
    volby_replica: VolbyReplica, http: httpx.AsyncClient
) -> None:
    volby_replica.faults.inject(Fault("status", match="cislo_obce=551082", status=503))
    volby_replica.faults.inject(Fault("truncate", match="nuts=CZ0100"))
    volby_replica.faults.inject(Fault("slow", match="vysledky?", delay=0.3))
    assert (
        await http.get("/pls/kv2022/vysledky_obec", params={"cislo_obce": "551082"})
    ).status_code == 503
    assert (
        await http.get("/pls/kv2022/vysledky_obec", params={"cislo_obce": "551082"})
    ).status_code == 200
    full = (DATA / "kv2014" / "CZ0100.xml").read_bytes()
    truncated = await get(http, "/pls/kv2014/vysledky_obce_okres", nuts="CZ0100")
    assert truncated == full[: len(full) // 2]
    started = time.perf_counter()
    await get(http, "/pls/kv2014/vysledky", datumvoleb="20141010")
    assert time.perf_counter() - started >= 0.3
    log = [(r.path, r.params, r.status, r.fault) for r in volby_replica.log]
    assert log == [
        ("/pls/kv2022/vysledky_obec", {"cislo_obce": "551082"}, 503, "status"),
        ("/pls/kv2022/vysledky_obec", {"cislo_obce": "551082"}, 200, None),
        ("/pls/kv2014/vysledky_obce_okres", {"nuts": "CZ0100"}, 200, "truncate"),
        ("/pls/kv2014/vysledky", {"datumvoleb": "20141010"}, 200, "slow"),
    ]


async def test_demo_replica() -> None:
    handle = await demo_replica(speed=None)
    try:
        assert handle.address.startswith("http://127.0.0.1:")
        assert set(handle.overrides) == {"CZ", "CZPREZ"}
        assert handle.overrides["CZ"]["districts"] == {"kv2014": ["CZ0100", "CZ0806"], "kv2022": []}
        async with httpx.AsyncClient() as client:
            url = handle.overrides["CZPREZ"]["url"] + "/pls/prez2023/vysledky_okrsky"
            response = await client.get(url, params={"kolo": "2", "davka": "1"})
        assert response.content == (DATA / "prez2023" / "kolo-2_davka-1.xml").read_bytes()
    finally:
        await handle.stop()
