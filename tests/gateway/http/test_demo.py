"""``gateway demo`` for front ends: every register complete at start, ``--replay`` for
election night (VALG and CZPREZ alike), CORS for pages on this machine, the rate it allows.

The replicas are the real ones over the recorded data (``data/cz``, ``data/valg``); the
expected batches and instants are read from the recorded files' names.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import DEMO_BURST, DEMO_RATE, _parser
from gateway.sources.kinds import DEMO_REPLAY_ENV
from resolvers.replica_kit.clock import DEFAULT_SPEED, Replay
from resolvers.valg_sftp.replica import server as valg
from resolvers.volby_xml.replica import server as volby
from tests.support import ROOT, register_subset

PREZ = ROOT / "data" / "cz" / "prez2023"
BATCH = re.compile(r"kolo-(\d)_davka-(\d+)\.xml")


def _recorded_batches(round_: str) -> list[int]:
    found = [BATCH.fullmatch(p.name) for p in PREZ.iterdir()]
    return sorted(int(m[2]) for m in found if m is not None and m[1] == round_)


def _newest(url: str, round_: str) -> bytes:
    response = httpx.get(url + "/pls/prez2023/vysledky_okrsky", params={"kolo": round_})
    return response.content


async def _newest_of(url: str, round_: str) -> bytes:
    """The same, from a replica running in this event loop."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url + "/pls/prez2023/vysledky_okrsky", params={"kolo": round_})
    return response.content


def _batch_file(round_: str, number: int) -> bytes:
    return (PREZ / f"kolo-{round_}_davka-{number}.xml").read_bytes()


@pytest.fixture
def no_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEMO_REPLAY_ENV, raising=False)
    monkeypatch.delenv(valg.REPLAY_ENV, raising=False)


# -- the option ----------------------------------------------------------------------------


def test_the_demo_options() -> None:
    parser = _parser()
    plain = parser.parse_args(["demo"])
    assert plain.replay is None
    assert (plain.rate_limit, plain.burst) == (DEMO_RATE, DEMO_BURST)
    assert parser.parse_args(["demo", "--replay"]).replay == ""
    assert parser.parse_args(["demo", "--replay", "120"]).replay == "120"
    window = "2026-03-24T18:00Z/2026-03-25T12:00Z@120"
    assert parser.parse_args(["demo", "--replay", window]).replay == window


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", Replay()),
        ("120", Replay(speed=120.0)),
        ("@90", Replay(speed=90.0)),
        ("2026-03-24T18:00Z", Replay(dt.datetime(2026, 3, 24, 18))),
        (
            "2026-03-24T19:00+01:00/2026-03-25T12:00Z@120",
            Replay(dt.datetime(2026, 3, 24, 18), dt.datetime(2026, 3, 25, 12), 120.0),
        ),
    ],
)
def test_a_replay_is_read(spec: str, expected: Replay) -> None:
    assert Replay.parse(spec) == expected
    assert Replay().speed == DEFAULT_SPEED


@pytest.mark.parametrize(
    "spec", ["0", "-5", "fast", "yesterday@60", "2026-03-25T12:00/2026-03-24T12:00", "@nan"]
)
def test_a_bad_replay_is_refused_naming_the_option(spec: str) -> None:
    with pytest.raises(ValueError, match="--replay"):
        Replay.parse(spec)


# -- CZPREZ --------------------------------------------------------------------------------


async def test_czprez_starts_with_every_batch(no_replay: None) -> None:
    replica = await volby.demo_replica()
    try:
        assert not replica.clock.replaying
        for round_ in ("1", "2"):
            newest = max(_recorded_batches(round_))
            assert await _newest_of(replica.url, round_) == _batch_file(round_, newest)
    finally:
        await replica.stop()


async def test_czprez_replays_its_night_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEMO_REPLAY_ENV, "120")
    replica = await volby.demo_replica()
    try:
        assert replica.clock.replaying
        assert replica.clock.speed == 120.0
        for round_ in ("1", "2"):
            first = min(_recorded_batches(round_))
            assert await _newest_of(replica.url, round_) == _batch_file(round_, first)
    finally:
        await replica.stop()


# -- VALG ----------------------------------------------------------------------------------


def _election_day(root: str) -> dt.date:
    day, month, year = root.rsplit("-", 3)[1:]
    return dt.date(int(year), int(month), int(day))


async def test_valg_starts_complete_and_replays_the_newest_night(
    monkeypatch: pytest.MonkeyPatch, no_replay: None
) -> None:
    replica = await valg.demo_replica()
    try:
        assert replica.clock.now() == replica.archive.end
        assert not replica.clock.replaying
        newest = max(_election_day(root) for root in replica.archive.roots)
    finally:
        await replica.stop()
    monkeypatch.setenv(DEMO_REPLAY_ENV, "")
    replica = await valg.demo_replica()
    try:
        assert replica.clock.replaying
        assert replica.clock.start == dt.datetime.combine(newest, dt.time(18, 0))
        assert replica.clock.speed == DEFAULT_SPEED
    finally:
        await replica.stop()


async def test_valg_takes_a_window_and_the_older_variable(
    monkeypatch: pytest.MonkeyPatch, no_replay: None
) -> None:
    monkeypatch.setenv(DEMO_REPLAY_ENV, "2025-11-18T19:00Z/2025-11-19T06:00Z@600")
    replica = await valg.demo_replica()
    try:
        assert replica.clock.start == dt.datetime(2025, 11, 18, 19)
        assert replica.clock.speed == 600.0
    finally:
        await replica.stop()
    monkeypatch.delenv(DEMO_REPLAY_ENV)
    monkeypatch.setenv(valg.REPLAY_ENV, "2026-03-24T20:00Z@30")
    replica = await valg.demo_replica()
    try:
        assert replica.clock.start == dt.datetime(2026, 3, 24, 20)
        assert replica.clock.speed == 30.0
    finally:
        await replica.stop()
    monkeypatch.setenv(DEMO_REPLAY_ENV, "2030-01-01T00:00Z@60")  # after the recording
    with pytest.raises(ValueError, match="--replay"):
        await valg.demo_replica()


# -- the demo as people run it -------------------------------------------------------------


def _demo(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in (DEMO_REPLAY_ENV, valg.REPLAY_ENV)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Ctrl-C" in line:
            return process, lines
    process.kill()
    process.communicate()
    raise AssertionError("the demo did not start:\n" + "\n".join(lines))


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.parametrize("replay", [False, True])
def test_the_demo_starts_complete_or_replays(replay: bool, tmp_path: Path) -> None:
    with register_subset("CZPREZ") as registers:
        args = ["--registers", str(registers), *(["--replay", "90"] if replay else [])]
        process, lines = _demo(*args)
        try:
            text = "\n".join(lines)
            replica = re.search(r"replica\s+CZPREZ\s+(http://127\.0\.0\.1:\d+)", text)
            gateway = re.search(r"(http://127\.0\.0\.1:\d+)/graphql", text)
            assert replica is not None, text
            assert gateway is not None, text
            batches = _recorded_batches("1")
            expected = min(batches) if replay else max(batches)
            assert _newest(replica.group(1), "1") == _batch_file("1", expected)
            assert ("replaying election night" in text) is replay
            assert f"{DEMO_RATE} a minute, bursts of {DEMO_BURST}" in text
            # A front-end dev server on this machine may call it.
            answer = httpx.options(
                gateway.group(1) + "/graphql",
                headers={
                    "origin": "http://localhost:5173",
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type, x-api-key",
                },
            )
            assert answer.status_code == 200
            assert answer.headers["access-control-allow-origin"] == "http://localhost:5173"
        finally:
            _stop(process)


def _ft_events(gateway: str, expected: int) -> list[dict[str, Any]]:
    """The demo's FT_Events of Aktørtype, once ``expected`` are recorded (or after 120 s)."""
    query = """{ FT_Events(first: 1000, where: {entityName: {eq: "Aktørtype"}}) {
      nodes { objectId action } } }"""
    deadline = time.monotonic() + 120
    while True:
        answer = httpx.post(gateway + "/graphql", json={"query": query}, timeout=60).json()
        assert "errors" not in answer, answer
        nodes: list[dict[str, Any]] = answer["data"]["FT_Events"]["nodes"]
        if len(nodes) >= expected or time.monotonic() > deadline:
            return nodes
        time.sleep(0.2)


def test_the_demo_imports_election_night_into_its_history(tmp_path: Path) -> None:
    """On first start the demo imports the recorded night (signed as the replica serves it):
    a result at an instant of the night is the version the server listed then, computed
    from the raw recording's file names; a second start imports nothing again."""
    from tests.resolvers.odata.raw import aktoertype
    from tests.resolvers.valg_sftp import test_history as night
    from tests.resolvers.valg_sftp.rawdata import read_raw

    raw = read_raw()
    database = tmp_path / "demo-history.sqlite"
    with register_subset("VALG", "FT") as registers:  # VALG's results relate to FT
        for start in (1, 2):
            process, lines = _demo("--registers", str(registers), "--history", str(database))
            try:
                assert process.stdout is not None
                deadline = time.monotonic() + 240
                if start == 1:
                    while time.monotonic() < deadline and not any(
                        "versions kept" in line for line in lines
                    ):
                        lines.append(process.stdout.readline().rstrip("\n"))
                text = "\n".join(lines)
                assert (f"history  {database}") in text, text
                assert ("importing the recording (first start)" in text) is (start == 1), text
                gateway = re.search(r"(http://127\.0\.0\.1:\d+)/graphql", text)
                assert gateway is not None, text
                for instant in night.instants(raw)[:3]:
                    expected = night.current_at(raw, instant)
                    assert expected is not None
                    answer = httpx.post(
                        gateway.group(1) + "/graphql",
                        json={
                            "query": night.QUERY,
                            "variables": {"t": instant.isoformat(), "area": night.AREA},
                        },
                        timeout=60,
                    ).json()
                    assert "errors" not in answer, answer
                    (node,) = answer["data"]["VALG_Valgresultat"]["nodes"]
                    assert node["Fil"] == expected[0], (instant, node)
                    assert node["AfgivneStemmer"] == expected[1]["AfgivneStemmer"]
                # FT is recorded: its rows read whole on the first start are i events, once
                events = _ft_events(gateway.group(1), len(aktoertype()))
                assert sorted(int(e["objectId"]) for e in events) == [r["id"] for r in aktoertype()]
                assert {e["action"] for e in events} == {"i"}
            finally:
                _stop(process)


def test_the_demo_imports_the_batches_and_the_german_files(tmp_path: Path) -> None:
    """On first start the demo also imports the presidential batches and the German files:
    a precinct query and a German query at instants answer as the raw recordings computed
    then say, their rows are events, and a second start imports nothing again."""
    from tests.resolvers.volby_xml import test_history as prez
    from tests.resolvers.wahldaten_csv import test_history as german

    database = tmp_path / "demo-history.sqlite"
    kept = ("history  CZPREZ: ", "history  DE: ")
    with register_subset("CZ", "CZPREZ", "DE") as registers:
        for start in (1, 2):
            process, lines = _demo("--registers", str(registers), "--history", str(database))
            try:
                assert process.stdout is not None
                deadline = time.monotonic() + 120
                while start == 1 and time.monotonic() < deadline:
                    done = [line for line in lines if "versions kept" in line]
                    if all(any(line.startswith(k) for line in done) for k in kept):
                        break
                    lines.append(process.stdout.readline().rstrip("\n"))
                text = "\n".join(lines)
                assert ("importing the recording (first start)" in text) is (start == 1), text
                assert "history  CZ: " not in text  # its recording has no batches
                gateway = re.search(r"(http://127\.0\.0\.1:\d+)/graphql", text)
                assert gateway is not None, text
                url = gateway.group(1) + "/graphql"
                instant = dt.datetime(2023, 1, 14, 18, 3, tzinfo=prez.PRAGUE)
                answer = httpx.post(
                    url,
                    json={"query": prez.QUERY, "variables": {"t": instant.isoformat()}},
                    timeout=60,
                ).json()
                assert "errors" not in answer, answer
                assert prez.shaped(answer["data"]) == prez.newest_precincts(
                    prez.published_by(instant)
                )
                for moment in german.instants()[:3]:
                    answer = httpx.post(
                        url,
                        json={"query": german.QUERY, "variables": {"t": moment.isoformat()}},
                        timeout=60,
                    ).json()
                    got = {n["datei"] for n in answer["data"]["DE_Wahlparameter"]["nodes"]}
                    files = german.parameter_files()
                    assert got == {p.name for p in files if german.stamp(p) <= moment}
                events = httpx.post(
                    url,
                    json={
                        "query": prez.EVENTS,
                        "variables": {"where": {"entityName": {"eq": "OKRSEK"}}},
                    },
                    timeout=60,
                ).json()
                found = {n["objectId"] for n in events["data"]["CZPREZ_Events"]["nodes"]}
                assert found == {key for _, key, _ in prez.precinct_events()}
            finally:
                _stop(process)
