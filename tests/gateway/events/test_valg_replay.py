"""Election night over subscriptions: the VALG replica replays the morning of the final count.

The replica's replay clock runs from 08:30 to 09:45 UTC on 25 March 2026 at 1200 times real
time. Subscribers to the results of one storkreds (Bornholm, number 4) must receive each new
file version of that storkreds released in the window, in order, and nothing else; what a
caller's level does not reach never arrives. Expected versions come from the recorded archive,
read with the standard library.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette

from gateway.http.auth import ApiKey, AuthSettings, hash_key
from resolvers.valg_sftp.replica.server import ValgReplica
from tests.gateway.events.conftest import (
    FT_UNUSED,
    bus,
    eventually,
    registers_with,
    running_gateway,
)
from tests.gateway.events.wsclient import GraphQLWebSocket, graphql_ws

ARCHIVE = Path(__file__).resolve().parents[3] / "data" / "valg" / "fv2026-folketingsvalg-135.tar.xz"
ROOT = "folketingsvalg-135-24-03-2026"
START = dt.datetime(2026, 3, 25, 8, 30)
END = dt.datetime(2026, 3, 25, 9, 45)
SPEED = 1200.0
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.replica(instant=START)]
STORKREDS = 4
KEY_1 = "events-level-1-key-0123456789abcdef"
KEY_2 = "events-level-2-key-0123456789abcdef"
# GyldigeStemmer is raised to level 2 for these tests (it is public in the shipped register).
SECURITY = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [{"SecurityLevel": 2, "Entities": ["Valgresultat.GyldigeStemmer"]}],
}

RESULTS = """subscription ($storkreds: Int!) {
  VALG_Valgresultat_changed(where: {Storkredsnummer: {eq: $storkreds}}) {
    id upstream detectedAt nodes { Fil Storkredsnummer Resultatart GyldigeStemmer } } }"""

BY_FORBIDDEN_FIELD = """subscription {
  VALG_Valgresultat_changed(where: {GyldigeStemmer: {gt: 0}}) { id nodes { Fil } } }"""

_STAMP = re.compile(r"-(\d{12})\.json$")


def expected_versions() -> list[tuple[str, int]]:
    """(Fil, GyldigeStemmer) of each Bornholm results file released in (START, END], in order."""
    found: list[tuple[dt.datetime, str, int]] = []
    with tarfile.open(ARCHIVE) as archive:
        for member in archive.getmembers():
            folder, _, name = member.name.rpartition("/")
            match = _STAMP.search(name)
            if folder != f"{ROOT}/valgresultater" or match is None:
                continue
            stamp = dt.datetime.strptime(match.group(1), "%d%m%Y%H%M")
            handle = archive.extractfile(member)
            assert handle is not None
            with handle:
                data = handle.read()
            if not START < stamp <= END or not data:
                continue
            doc = json.loads(data)
            if doc["Storkredsnummer"] == STORKREDS:
                found.append((stamp, f"valgresultater/{name}", doc["GyldigeStemmer"]))
    return [(fil, votes) for _, fil, votes in sorted(found)]


@dataclass
class Night:
    """What the subscribers received during the replay."""

    expected: list[tuple[str, int]]
    level_2: list[dict[str, Any]] = field(default_factory=list)
    level_1: list[dict[str, Any]] = field(default_factory=list)
    refused: dict[str, Any] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)


async def _collect(ws: GraphQLWebSocket, op: str, count: int) -> list[dict[str, Any]]:
    return [await ws.message(op, seconds=30) for _ in range(count)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(module_valg_replica: ValgReplica) -> AsyncIterator[Starlette]:
    overrides = {
        "VALG": {**module_valg_replica.overrides["VALG"], "eventsInterval": 0.1},
        **FT_UNUSED,
    }
    keys = (ApiKey("night-1", 1, hash_key(KEY_1)), ApiKey("night-2", 2, hash_key(KEY_2)))
    with registers_with("VALG", "FT", security={"VALG": SECURITY}) as registers:
        async with running_gateway(registers, overrides, auth=AuthSettings(keys=keys)) as app:
            yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def night(app: Starlette, module_valg_replica: ValgReplica) -> Night:
    night = Night(expected_versions())
    assert len(night.expected) >= 5  # the window holds election-morning traffic
    module_valg_replica.clock.set(START)
    variables = {"storkreds": STORKREDS}
    async with (
        graphql_ws(app, headers={"x-api-key": KEY_2}) as trusted,
        graphql_ws(app, query_string=f"apiKey={KEY_1}") as known,
    ):
        full = await trusted.subscribe(RESULTS, variables)
        partial = await known.subscribe(RESULTS, variables)
        refused = await known.subscribe(BY_FORBIDDEN_FIELD)
        night.refused = await known.message(refused)
        await eventually(lambda: bus(app).ready("VALG", "Valgresultat"), 30)
        module_valg_replica.clock.replay(START, END, SPEED)
        count = len(night.expected)
        night.level_2, night.level_1 = await asyncio.gather(
            _collect(trusted, full, count), _collect(known, partial, count)
        )
        # The replay is over: a few more polls find nothing more for Bornholm.
        watcher = bus(app).watchers["VALG"]
        polls = watcher.polls
        await eventually(lambda: watcher.polls >= polls + 2, 10)
        with pytest.raises(TimeoutError):
            night.extra.append(await trusted.message(full, seconds=0.3))
    return night


def _files(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for message in messages:
        assert message["type"] == "next", message
        event = message["payload"]["data"]["VALG_Valgresultat_changed"]
        out += [node["Fil"] for node in event["nodes"]]
    return out


async def test_each_new_file_version_of_the_storkreds_arrives_in_order(night: Night) -> None:
    assert _files(night.level_2) == [fil for fil, _ in night.expected]
    assert night.extra == []
    for message in night.level_2:
        event = message["payload"]["data"]["VALG_Valgresultat_changed"]
        (node,) = event["nodes"]
        assert node["Storkredsnummer"] == STORKREDS
        assert event["upstream"] == [f"{ROOT}/{node['Fil']}"]
        assert "errors" not in message["payload"]


async def test_the_events_carry_the_new_versions_values(night: Night) -> None:
    votes = [
        node["GyldigeStemmer"]
        for message in night.level_2
        for node in message["payload"]["data"]["VALG_Valgresultat_changed"]["nodes"]
    ]
    assert votes == [v for _, v in night.expected]


async def test_a_level_1_subscriber_gets_the_events_without_level_2_fields(night: Night) -> None:
    assert _files(night.level_1) == [fil for fil, _ in night.expected]
    ids = [m["payload"]["data"]["VALG_Valgresultat_changed"]["id"] for m in night.level_1]
    assert ids == [m["payload"]["data"]["VALG_Valgresultat_changed"]["id"] for m in night.level_2]
    for message in night.level_1:
        nodes = message["payload"]["data"]["VALG_Valgresultat_changed"]["nodes"]
        assert [n["GyldigeStemmer"] for n in nodes] == [None] * len(nodes)
        errors = message["payload"]["errors"]
        assert {e["extensions"]["code"] for e in errors} == {"FORBIDDEN"}
        assert all(e["path"][-1] == "GyldigeStemmer" for e in errors)


async def test_filtering_on_a_field_above_the_level_is_refused(night: Night) -> None:
    assert night.refused["type"] == "error"
    (error,) = night.refused["payload"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "GyldigeStemmer" in error["message"]


TURNOUT = """subscription { VALG_Valgdeltagelse_changed { upstream nodes { Fil Valgdag } } }"""
TURNOUT_FROM = dt.datetime(2026, 3, 24, 8, 40)
TURNOUT_TO = dt.datetime(2026, 3, 24, 8, 59)


def expected_turnout() -> set[str]:
    """The turnout files a listing shows at TURNOUT_TO and not at TURNOUT_FROM.

    The server lists the newest version of each series (one afstemningsområde's files) only.
    """
    newest: dict[str, tuple[dt.datetime, str, bool]] = {}
    with tarfile.open(ARCHIVE) as archive:
        for member in archive.getmembers():
            folder, _, name = member.name.rpartition("/")
            match = _STAMP.search(name)
            if folder != f"{ROOT}/valgdeltagelse" or match is None:
                continue
            stamp = dt.datetime.strptime(match.group(1), "%d%m%Y%H%M")
            series = name[: match.start()]
            if stamp <= TURNOUT_TO and (series not in newest or stamp > newest[series][0]):
                newest[series] = (stamp, name, member.size > 0)
    return {
        f"valgdeltagelse/{name}"
        for stamp, name, has_data in newest.values()
        if stamp > TURNOUT_FROM and has_data
    }


async def test_new_turnout_files_arrive(app: Starlette, module_valg_replica: ValgReplica) -> None:
    expected = expected_turnout()
    assert expected
    module_valg_replica.clock.set(TURNOUT_FROM)
    async with graphql_ws(app) as ws:
        op = await ws.subscribe(TURNOUT)
        await eventually(lambda: bus(app).ready("VALG", "Valgdeltagelse"), 30)
        module_valg_replica.clock.set(TURNOUT_TO)
        files: set[str] = set()
        while len(files) < len(expected):
            message = await ws.message(op, seconds=30)
            event = message["payload"]["data"]["VALG_Valgdeltagelse_changed"]
            files |= {node["Fil"] for node in event["nodes"]}
            assert {node["Valgdag"] for node in event["nodes"]} == {"2026-03-24"}
        assert files == expected
