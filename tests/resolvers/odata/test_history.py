"""FT's history end to end: rows recorded, changed and deleted in the replica, then asked for
at instants before and after, as events, in current answers and in exports.

The gateway records ``Aktørtype`` (``[history] record``): it reads the entity whole at start,
polls its update times on the change feed's schedule and sweeps its ids. The test changes one
row in the replica, then deletes it, noting an instant before each step. Expected rows are
the recorded SQLite dump read here; the update times are Copenhagen wall-clock times.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from gateway.events.bus import bus_for
from resolvers.odata.replica.server import ODataReplica
from tests.resolvers.odata.raw import aktoertype
from tests.support import gateway_client, graphql, register_subset

pytestmark = pytest.mark.asyncio(loop_scope="module")

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
CHANGED = 3  # the row changed, then deleted
NEW_TYPE = "Udvalg (ændret)"
ROWS = """query ($t: DateTime) {
  FT_Aktoertype(first: 100, registreringstid: $t) {
    totalCount nodes { id type opdateringsdato } } }"""
EVENTS = """query ($where: FT_EventsFilterInput) {
  FT_Events(first: 1000, where: $where) {
    totalCount
    nodes { eventId entityName action objectId registreringFra registreringTil opdateret } } }"""


def utc(wall_clock: str) -> dt.datetime:
    """An FT update time (Copenhagen's wall clock) in UTC."""
    return dt.datetime.fromisoformat(wall_clock).replace(tzinfo=COPENHAGEN).astimezone(dt.UTC)


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@dataclass
class Scenario:
    client: httpx.AsyncClient
    replica: ODataReplica
    history: Path
    overrides: dict[str, Any]
    registers: Path
    before: dt.datetime  # everything recorded, nothing changed
    changed: dt.datetime  # row 3 changed, not yet deleted
    after: dt.datetime  # row 3 deleted
    changed_row: dict[str, Any]


def settings(history: Path) -> dict[str, Any]:
    return {"history_path": history, "history_record": ("FT.Aktørtype",)}


async def events(client: httpx.AsyncClient, **where: Any) -> list[dict[str, Any]]:
    filters = {k: {"eq": v} for k, v in where.items()}
    answer = await graphql(client, EVENTS, {"where": filters or None})
    assert "errors" not in answer, answer
    nodes: list[dict[str, Any]] = answer["data"]["FT_Events"]["nodes"]
    return nodes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scenario(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scenario]:
    history = tmp_path_factory.mktemp("ft-history") / "history.sqlite"
    async with ODataReplica() as replica:
        overrides = {"FT": {"url": replica.url, "eventsInterval": 0.05, "deletionSweep": 0.2}}
        with register_subset("FT") as registers:
            async with gateway_client(registers, overrides, **settings(history)) as client:
                gateway = client.app.state.gateway  # type: ignore[attr-defined]
                await gateway.recorder.settled()
                bus = bus_for(gateway.runtime.sources, gateway.runtime.cache)

                async def polling() -> bool:
                    return bool(bus.ready("FT", "Aktørtype"))

                await until(polling)
                before = dt.datetime.now(dt.UTC)
                await asyncio.sleep(0.01)
                changed_row = dict(replica.update("Aktørtype", CHANGED, type=NEW_TYPE))

                async def seen(action: str) -> bool:
                    return any(
                        e["action"] == action for e in await events(client, objectId=str(CHANGED))
                    )

                await until(lambda: seen("u"))
                changed = dt.datetime.now(dt.UTC)
                await asyncio.sleep(0.01)
                replica.delete("Aktørtype", CHANGED)
                await until(lambda: seen("d"))
                after = dt.datetime.now(dt.UTC)
                yield Scenario(
                    client,
                    replica,
                    history,
                    overrides,
                    registers,
                    before,
                    changed,
                    after,
                    changed_row,
                )


async def rows_at(client: httpx.AsyncClient, at: dt.datetime | None) -> dict[str, Any]:
    answer = await graphql(client, ROWS, {"t": None if at is None else at.isoformat()})
    assert "errors" not in answer, answer
    found: dict[str, Any] = answer["data"]["FT_Aktoertype"]
    return found


async def test_the_row_is_seen_inserted_updated_and_deleted(scenario: Scenario) -> None:
    found = await events(scenario.client)
    raw = aktoertype()
    inserted = [e for e in found if e["action"] == "i"]
    assert {e["objectId"] for e in inserted} == {str(r["id"]) for r in raw}
    assert all(e["entityName"] == "Aktørtype" for e in found)
    # the first versions are registered at their own update times
    stamps = {str(r["id"]): utc(r["opdateringsdato"]) for r in raw}
    assert all(instant(e["registreringFra"]) == stamps[e["objectId"]] for e in inserted)
    of_row = [e for e in found if e["objectId"] == str(CHANGED)]
    assert [e["action"] for e in of_row] == ["i", "u", "d"]
    first, update, deletion = of_row
    # each event tells the version as it stood then: open when inserted or updated, closed
    # by the deletion
    assert first["registreringTil"] is None
    assert update["registreringTil"] is None
    assert instant(update["registreringFra"]) == utc(scenario.changed_row["opdateringsdato"])
    assert deletion["registreringFra"] == update["registreringFra"]
    assert scenario.changed < instant(deletion["registreringTil"]) <= scenario.after
    assert first["eventId"] < update["eventId"] < deletion["eventId"]
    # filterable like any entity
    assert [e["eventId"] for e in await events(scenario.client, action="d")] == [
        deletion["eventId"]
    ]


async def test_answers_differ_before_and_after_the_change(scenario: Scenario) -> None:
    raw = aktoertype()
    then = await rows_at(scenario.client, scenario.before)
    assert then["nodes"] == raw
    assert then["totalCount"] == len(raw)
    changed = await rows_at(scenario.client, scenario.changed)
    expected = [scenario.changed_row if r["id"] == CHANGED else r for r in raw]
    assert changed["nodes"] == [
        {k: r[k] for k in ("id", "type", "opdateringsdato")} for r in expected
    ]
    assert next(n for n in changed["nodes"] if n["id"] == CHANGED)["type"] == NEW_TYPE
    gone = [r for r in raw if r["id"] != CHANGED]
    assert (await rows_at(scenario.client, scenario.after))["nodes"] == gone


async def test_the_temporal_fields_tell_each_version(scenario: Scenario) -> None:
    """``registreringFra``/``-Til`` on the entity: at an instant before the change, the first
    version of the row, ended by the change; at the change, the new version, ended by the
    deletion later; now every row's registration is its update time and nothing is ended."""
    query = """query ($t: DateTime, $id: Int!) {
      FT_Aktoertype(registreringstid: $t, where: {id: {eq: $id}}) {
        nodes { id registreringFra registreringTil } } }"""
    original = next(r for r in aktoertype() if r["id"] == CHANGED)
    changed_at = utc(scenario.changed_row["opdateringsdato"])
    then = await graphql(scenario.client, query, {"t": scenario.before.isoformat(), "id": CHANGED})
    (first,) = then["data"]["FT_Aktoertype"]["nodes"]
    assert instant(first["registreringFra"]) == utc(original["opdateringsdato"])
    assert instant(first["registreringTil"]) == changed_at
    later = await graphql(
        scenario.client, query, {"t": scenario.changed.isoformat(), "id": CHANGED}
    )
    (second,) = later["data"]["FT_Aktoertype"]["nodes"]
    assert instant(second["registreringFra"]) == changed_at
    assert scenario.changed < instant(second["registreringTil"]) <= scenario.after
    now = await graphql(scenario.client, query, {"t": None, "id": 1})
    (row,) = now["data"]["FT_Aktoertype"]["nodes"]
    assert instant(row["registreringFra"]) == utc(
        next(r for r in aktoertype() if r["id"] == 1)["opdateringsdato"]
    )
    assert row["registreringTil"] is None


async def test_the_deleted_row_is_gone_from_current_answers_and_exports(
    scenario: Scenario,
) -> None:
    raw = [r for r in aktoertype() if r["id"] != CHANGED]
    now = await rows_at(scenario.client, None)
    assert now["nodes"] == raw
    assert now["totalCount"] == len(raw)
    for params in ({}, {"finished": "1"}):
        response = await scenario.client.get("/FT/v1/download/Aktoertype.csv", params=params)
        assert response.status_code == 200, response.text
        ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(response.text))]
        assert ids == [r["id"] for r in raw]


async def test_an_instant_before_the_history_answers_with_a_notice(scenario: Scenario) -> None:
    answer = await graphql(scenario.client, ROWS, {"t": "2000-01-01T00:00:00Z"})
    assert answer["data"]["FT_Aktoertype"]["nodes"] == []
    notices = answer["extensions"]["notices"]
    assert [n["code"] for n in notices] == ["BEFORE_HISTORY"]
    assert instant(notices[0]["knownFrom"]) <= scenario.before


async def test_an_entity_not_recorded_has_no_history_yet(scenario: Scenario) -> None:
    answer = await graphql(
        scenario.client,
        """query ($t: DateTime) { FT_Stemmetype(registreringstid: $t) { nodes { id } } }""",
        {"t": scenario.after.isoformat()},
    )
    assert answer["data"]["FT_Stemmetype"]["nodes"] == []
    assert answer["extensions"]["notices"][0]["code"] == "BEFORE_HISTORY"


async def test_a_deletion_reaches_subscribers_as_a_d_event(scenario: Scenario) -> None:
    gateway = scenario.client.app.state.gateway  # type: ignore[attr-defined]
    feed = bus_for(gateway.runtime.sources, gateway.runtime.cache).feed("FT", "Aktørtype")
    try:
        removed = scenario.replica.delete("Aktørtype", 5)
        change = await asyncio.wait_for(feed.next(), 20)
        while change.action != "d":
            change = await asyncio.wait_for(feed.next(), 20)
        assert change.rows == ()
        assert [dict(r) for r in change.deleted] == [dict(removed)]
    finally:
        await feed.aclose()
        scenario.replica.insert("Aktørtype", **dict(removed))


async def test_the_history_survives_a_restart(scenario: Scenario) -> None:
    async with gateway_client(
        scenario.registers, scenario.overrides, **settings(scenario.history)
    ) as again:
        gateway = again.app.state.gateway  # type: ignore[attr-defined]
        await gateway.recorder.settled()
        changed = await rows_at(again, scenario.changed)
        assert next(n for n in changed["nodes"] if n["id"] == CHANGED)["type"] == NEW_TYPE
        assert CHANGED not in {n["id"] for n in (await rows_at(again, None))["nodes"]}
        kinds = [e["action"] for e in await events(again, objectId=str(CHANGED))]
        assert kinds[:3] == ["i", "u", "d"]


SECURED = {
    "DefaultSecurity": 0,
    "SpecificSecurity": [{"SecurityLevel": 2, "Entities": ["Aktørtype"]}],
}


async def test_events_are_shown_at_their_entity_level_only(tmp_path: Path) -> None:
    from gateway.http.auth import AuthSettings
    from tests.gateway.events.conftest import registers_with

    async with ODataReplica() as replica:
        overrides = {"FT": {"url": replica.url}}
        with registers_with("FT", security={"FT": SECURED}) as registers:
            async with gateway_client(
                registers,
                overrides,
                auth=AuthSettings.demo(),
                **settings(tmp_path / "history.sqlite"),
            ) as client:
                gateway = client.app.state.gateway  # type: ignore[attr-defined]
                await gateway.recorder.settled()
                query = {"query": "{ FT_Events(first: 100) { totalCount nodes { entityName } } }"}
                anonymous = (await client.post("/graphql", json=query)).json()
                assert anonymous["data"]["FT_Events"]["totalCount"] == 0
                level2 = await client.post(
                    "/graphql", json=query, headers={"X-API-Key": "demo-level-2"}
                )
                nodes = level2.json()["data"]["FT_Events"]["nodes"]
                assert len(nodes) == len(aktoertype())
                assert {n["entityName"] for n in nodes} == {"Aktørtype"}


async def download(client: httpx.AsyncClient, **params: str) -> list[dict[str, str]]:
    response = await client.get("/FT/v1/download/Aktoertype.csv", params=params)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_the_period_s_delta_lists_the_change_and_the_deletion(scenario: Scenario) -> None:
    client = scenario.client
    changed = await download(
        client, since=scenario.before.isoformat(), until=scenario.changed.isoformat()
    )
    assert [(int(r["id"]), r["type"], r["action"]) for r in changed] == [(CHANGED, NEW_TYPE, "u")]
    assert instant(changed[0]["registreringFra"]) == utc(scenario.changed_row["opdateringsdato"])
    assert changed[0]["registreringTil"] == ""
    # over both steps the row's last state is its deletion (as it last stood)
    both = await download(client, since=scenario.before.isoformat(), finished="1")
    mine = [r for r in both if int(r["id"]) == CHANGED]
    assert [(r["type"], r["action"]) for r in mine] == [(NEW_TYPE, "d")]
    assert scenario.changed < instant(mine[0]["registreringTil"]) <= dt.datetime.now(dt.UTC)
    # nothing changed after the deletion (but row 5, deleted and restored by another test)
    later = await download(client, since=scenario.after.isoformat())
    assert {int(r["id"]) for r in later} <= {5}


async def test_every_version_with_its_registration(scenario: Scenario) -> None:
    rows = await download(scenario.client, versions="1")
    of_changed = [r for r in rows if int(r["id"]) == CHANGED]
    assert [r["type"] for r in of_changed] == [
        next(r["type"] for r in aktoertype() if r["id"] == CHANGED),
        NEW_TYPE,
    ]
    first, second = of_changed
    assert first["registreringTil"] == second["registreringFra"]
    assert second["registreringTil"] != ""  # closed by the deletion
    assert {int(r["id"]) for r in rows} == {r["id"] for r in aktoertype()}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "not an ISO 8601"),
        ({"until": "2026-01-01T00:00:00Z"}, "asked with since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "ends after"),
        ({"since": "2026-01-01T00:00:00Z", "versions": "1"}, "delta or for every version"),
    ],
)
async def test_a_bad_period_is_refused(
    scenario: Scenario, params: dict[str, str], message: str
) -> None:
    response = await scenario.client.get("/FT/v1/download/Aktoertype.csv", params=params)
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]
