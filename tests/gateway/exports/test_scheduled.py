"""Scheduled downloads: the annex's downloads written on their Frequency into the exports
folder, served as static files at their level, and listed in /catalog.json with their period.

FT's annex (copied here to name ``Aktørtype`` only) declares a weekly total, a daily delta and a
weekly temporal download at level 1. The test changes a row in the replica, then moves the
scheduler's clock to the next day: the day's delta holds that row as the raw data and the
change say.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.exports.files import ExportFileSettings
from gateway.exports.scheduled import period_of
from gateway.http.auth import AuthSettings
from gateway.http.config import Settings
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata.raw import aktoertype
from tests.support import gateway_client, graphql

REGISTERS = Path(__file__).resolve().parents[3] / "registers"
LEVEL1 = {"X-API-Key": "demo-level-1"}


def test_periods_end_at_midnight_utc_and_weeks_on_monday() -> None:
    friday = dt.datetime(2026, 12, 4, 15, 0, tzinfo=dt.UTC)
    day = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    assert period_of(1, friday) == (day - dt.timedelta(days=1), day)
    monday = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    assert period_of(7, friday) == (monday - dt.timedelta(days=7), monday)
    assert period_of(7, monday) == (monday - dt.timedelta(days=7), monday)


@pytest.fixture
def registers(tmp_path: Path) -> Path:
    target = tmp_path / "registers" / "FT"
    shutil.copytree(REGISTERS / "FT", target)
    annex = target / "rc00001" / "4. Tabular_data" / "Automated_Predefined_Filedownloads.json"
    entries = json.loads(annex.read_text("utf-8"))
    annex.write_text(json.dumps([{**e, "EntityName": "Aktørtype"} for e in entries]), "utf-8")
    return tmp_path / "registers"


@pytest.mark.asyncio
async def test_scheduled_files_are_written_served_and_listed(
    registers: Path, tmp_path: Path
) -> None:
    async with ODataReplica() as replica:
        overrides = {"FT": {"url": replica.url, "eventsInterval": 0.05}}
        settings = {
            "history_path": tmp_path / "history.sqlite",
            "history_record": ("FT.Aktørtype",),
            "exports": ExportFileSettings(folder=tmp_path / "exports", scheduled=("FT",)),
            "auth": AuthSettings.demo(),
        }
        async with gateway_client(registers, overrides, **settings) as client:
            gateway = client.app.state.gateway  # type: ignore[attr-defined]
            await gateway.recorder.settled()
            scheduler = gateway.exports.scheduler
            await scheduler.settled()
            changed = dict(replica.update("Aktørtype", 3, type="Udvalg (ændret)"))
            for _ in range(400):
                answer = await graphql(
                    client, '{ FT_Events(where: {action: {eq: "u"}}) { totalCount } }'
                )
                if answer["data"]["FT_Events"]["totalCount"]:
                    break
                await asyncio.sleep(0.05)
            tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            scheduler.clock = lambda: tomorrow
            # the new day's delta (the week's total and versions were written at start)
            assert await scheduler.once() == 1
            catalog = (await client.get("/catalog.json", headers=LEVEL1)).json()
            (ft,) = catalog["registers"]
            files: dict[str, dict[str, Any]] = {}
            for item in ft["scheduledFiles"]:  # newest first
                files.setdefault(item["kind"], item)
            assert set(files) == {"total", "delta", "versions"}
            monday = period_of(7, tomorrow)[1]
            assert files["total"]["until"] == f"{monday:%Y-%m-%d}T00:00:00Z"
            delta = files["delta"]
            assert delta["until"] == f"{tomorrow:%Y-%m-%d}T00:00:00Z"
            assert delta["from"] == f"{tomorrow - dt.timedelta(days=1):%Y-%m-%d}T00:00:00Z"
            response = await client.get(delta["url"], headers=LEVEL1)
            assert response.status_code == 200, response.text
            assert int(response.headers["content-length"]) == delta["bytes"]
            rows = list(csv.DictReader(io.StringIO(response.text)))
            assert [(int(r["id"]), r["type"], r["action"]) for r in rows] == [
                (3, changed["type"], "u")
            ]
            # a static file: ranges and validators
            ranged = await client.get(delta["url"], headers={**LEVEL1, "Range": "bytes=0-9"})
            assert ranged.status_code == 206
            assert ranged.content == response.content[:10]
            again = await client.get(
                delta["url"], headers={**LEVEL1, "If-None-Match": response.headers["etag"]}
            )
            assert again.status_code == 304
            total = await client.get(files["total"]["url"], headers=LEVEL1)
            ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(total.text))]
            assert ids == [r["id"] for r in aktoertype()]
            # below the annex's level: neither listed nor served
            anonymous = (await client.get("/catalog.json")).json()
            assert anonymous["registers"][0]["scheduledFiles"] == []
            assert (await client.get(delta["url"])).status_code == 404
            assert (
                await client.get("/FT/v1/files/..%2Fsecret.csv", headers=LEVEL1)
            ).status_code == 404


def test_scheduling_an_unknown_register_is_refused(registers: Path) -> None:
    from gateway.http.app import create_app
    from gateway.model.errors import DescriptorError

    settings = Settings(registers_dir=registers, exports=ExportFileSettings(scheduled=("NOPE",)))
    with pytest.raises(DescriptorError, match=r"exports\.scheduled"):
        create_app(settings)
