"""The replica kit on its own: the replay clock, the fault vocabulary, the request log, and the
HTTP layer that applies faults to any replica's ASGI app."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.http.server import RunningServer, serve_asgi
from resolvers.replica_kit.clock import END_OF_TIME, ReplayClock
from resolvers.replica_kit.faults import KINDS, Fault, Faults
from resolvers.replica_kit.http import FaultyHttp
from resolvers.replica_kit.log import Request, RequestLog

T0 = dt.datetime(2026, 3, 24, 20, 0)


class Timer:
    """Real time, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- clock: instant --------------------------------------------------------------------------


def test_a_clock_without_an_instant_has_everything_out() -> None:
    clock = ReplayClock()
    assert clock.now() == END_OF_TIME
    assert clock.released(dt.datetime(2099, 1, 1))
    assert clock.released(dt.timedelta(days=10_000))
    assert clock.released(None)
    assert clock.speed is None


def test_a_standing_clock_shows_its_instant_until_set_or_advanced() -> None:
    timer = Timer()
    clock = ReplayClock(T0, timer=timer)
    timer.now += 3600
    assert clock.now() == T0
    clock.set(T0 - dt.timedelta(days=1))
    assert clock.now() == T0 - dt.timedelta(days=1)
    clock.advance(dt.timedelta(hours=2))
    assert clock.now() == T0 - dt.timedelta(hours=22)


def test_tick_steps_a_standing_clock_by_its_step() -> None:
    clock = ReplayClock(T0)
    clock.tick()
    assert clock.now() == T0  # no step: ticks change nothing
    clock.step = dt.timedelta(minutes=15)
    clock.tick()
    clock.tick()
    assert clock.now() == T0 + dt.timedelta(minutes=30)


def test_a_replay_runs_at_its_speed_then_stays_at_its_end() -> None:
    timer = Timer()
    clock = ReplayClock(T0, timer=timer)
    end = T0 + dt.timedelta(hours=1)
    clock.replay(T0, end, speed=60.0)
    assert clock.now() == T0
    assert clock.replaying
    assert clock.speed == 60.0
    timer.now += 30  # 30 s real = 30 min replayed
    assert clock.now() == T0 + dt.timedelta(minutes=30)
    timer.now += 3600
    assert clock.now() == end
    assert not clock.replaying
    clock.restart()
    assert clock.now() == T0
    clock.set(T0)  # a set stops the replay
    timer.now += 60
    assert clock.now() == T0
    assert clock.speed is None
    with pytest.raises(ValueError, match="speed"):
        clock.replay(T0, end, speed=0)
    with pytest.raises(ValueError, match="forward"):
        clock.replay(end, T0)


def test_ticks_leave_a_replay_alone_and_advance_shifts_it() -> None:
    timer = Timer()
    clock = ReplayClock(T0, 60.0, timer=timer)
    clock.step = dt.timedelta(hours=1)
    clock.tick()
    assert clock.now() == T0
    clock.advance(dt.timedelta(minutes=5))
    timer.now += 60
    assert clock.now() == T0 + dt.timedelta(minutes=65)


# --- clock: release --------------------------------------------------------------------------


def test_release_semantics_are_the_same_clock_read_as_publication() -> None:
    timer = Timer()
    clock = ReplayClock(speed=60.0, timer=timer)  # from its origin
    assert clock.start == ReplayClock.origin
    first, later = dt.timedelta(0), dt.timedelta(hours=2)
    assert clock.released(first)
    assert not clock.released(later)
    assert not clock.released(ReplayClock.origin + later)
    timer.now += 7200 / 60
    assert clock.released(later)
    assert clock.released(ReplayClock.origin + later)  # an instant or an offset: the same
    assert clock.elapsed() == later
    clock.restart()
    assert not clock.released(later)


def test_instant_and_release_agree_on_one_clock() -> None:
    clock = ReplayClock(T0)
    published = [T0 - dt.timedelta(minutes=1), T0, T0 + dt.timedelta(minutes=1)]
    assert [clock.released(at) for at in published] == [True, True, False]
    clock.advance(dt.timedelta(minutes=1))
    assert all(clock.released(at) for at in published)


# --- faults ----------------------------------------------------------------------------------


def _req(path: str, query: str = "") -> Request:
    return Request("GET", path, query=query)


def test_the_vocabulary_is_checked() -> None:
    assert set(KINDS) == {"status", "slow", "timeout", "drop", "cut", "truncate", "malformed"}
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    for bad in ({"times": 0}, {"after": -1}, {"status": 42}, {"delay": -1.0}, {"keep": 1.0}):
        with pytest.raises(ValueError, match=r"times|after|status|delay|keep"):
            Fault("status", **bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Fault("status", 2)  # type: ignore[misc]  # everything but the kind by name
    with pytest.raises(TypeError):
        Faults().inject("status")  # type: ignore[arg-type]


def test_times_counts_the_requests_a_fault_answers() -> None:
    faults = Faults()
    faults.inject(Fault("status", status=500))
    faults.inject(Fault("status", status=503, times=2))
    taken = [faults.take(_req("/a")) for _ in range(4)]
    assert [f.status if f else None for f in taken] == [500, 503, 503, None]
    assert not faults
    forever = faults.inject(Fault("drop", times=None))
    assert all(faults.take(_req("/a")) is forever for _ in range(50))
    assert faults.pending() == [(forever, None)]
    faults.clear()
    assert len(faults) == 0
    assert faults.take(_req("/a")) is None


def test_after_lets_requests_pass_first() -> None:
    faults = Faults()
    faults.inject(Fault("drop", after=2))
    assert [faults.take(_req("/x")) is not None for _ in range(4)] == [False, False, True, False]


def test_match_is_a_substring_of_path_and_query() -> None:
    faults = Faults()
    faults.inject(Fault("status", match="Aktør", times=None))
    faults.inject(Fault("truncate", match="davka=44", times=None))
    assert faults.take(_req("/api/Aktør")) is not None
    assert faults.take(_req("/api/Stemme")) is None
    hit = faults.take(_req("/pls/prez2023/vysledky_okrsky", "kolo=1&davka=44"))
    assert hit is not None
    assert hit.kind == "truncate"
    assert faults.take("/pls/prez2023/vysledky_okrsky?kolo=1&davka=45") is None


def test_a_passed_fault_does_not_count_against_others() -> None:
    faults = Faults()
    faults.inject(Fault("status", match="/a"))
    faults.inject(Fault("drop", match="/b", after=1))
    assert faults.take(_req("/b")) is None  # passes the drop's one free request
    assert faults.take(_req("/a")) is not None
    assert faults.take(_req("/b")) is not None


def test_kinds_and_peek() -> None:
    faults = Faults()
    faults.inject(Fault("truncate", match="Storkreds"))
    faults.inject(Fault("slow", delay=0.1))
    assert faults.peek("/data/Storkreds.json", kinds=("truncate",)) is not None
    assert faults.peek("/data/Storkreds.json", kinds=("truncate",)) is not None  # not counted
    slow = faults.take(_req("/data/Storkreds.json"), kinds=("slow",))
    assert slow is not None
    assert slow.kind == "slow"
    truncate = faults.take(_req("/data/Storkreds.json"), kinds=("truncate",))
    assert truncate is not None
    assert faults.peek("/data/Storkreds.json") is None
    pending = Faults()
    pending.inject(Fault("drop", after=1))
    assert pending.peek("/x") is None  # not yet: its first request passes


def test_kept_and_json() -> None:
    body = b"0123456789"
    assert Fault("cut").kept(body) == b"01234"
    assert Fault("truncate", keep=0.0).kept(body) == b""
    fault = Fault("status", status=502, times=None, match="x")
    assert Fault.from_json(fault.to_json()) == fault
    for bad in ({"status": 502}, {"kind": "status", "colour": "red"}, [1]):
        with pytest.raises(ValueError, match=r"kind|colour"):
            Fault.from_json(bad)


# --- log -------------------------------------------------------------------------------------


def test_the_log_filters_and_is_a_list() -> None:
    log = RequestLog()
    log.record(Request("list", "/data/FV"))
    opened = log.record(Request("open", "/data/FV/a.json", size=10, status=0))
    log.record(Request("open", "/data/FV/a.json.hash", fault="malformed"))
    log.record(Request("GET", "/api/Aktør", {"$top": "1"}, 503, "status", query="%24top=1"))
    assert len(log) == 4
    assert log[1] is opened
    assert log.paths(method="open") == ["/data/FV/a.json", "/data/FV/a.json.hash"]
    assert log.paths(method="open", suffix=".json") == ["/data/FV/a.json"]
    assert log.where(path="/api/Aktør")[0].params == {"$top": "1"}
    assert log.where(contains="top=1")[0].target == "/api/Aktør?%24top=1"
    assert log.statuses(fault=True) == [None, 503]
    assert log.paths(fault="malformed") == ["/data/FV/a.json.hash"]
    assert len(log.where(fault=False)) == 2
    assert log.where(test=lambda r: r.size > 0) == [opened]
    mark = len(log)
    log.record(Request("stat", "/data"))
    assert [r.method for r in log.since(mark)] == ["stat"]
    assert log[0].raw_path == "/data/FV"
    assert not log[0].conditional
    assert Request("GET", "/", headers={"if-none-match": '"x"'}).conditional
    log.clear()
    assert log == []
    log.keeping = False
    log.record(Request("GET", "/"))
    assert log == []


# --- the HTTP layer --------------------------------------------------------------------------


async def _hello(request: HttpRequest) -> PlainTextResponse:
    return PlainTextResponse("hello, replica " * 10)


@pytest.fixture
async def served() -> AsyncIterator[tuple[FaultyHttp, str]]:
    layer = FaultyHttp(Starlette(routes=[Route("/hello", _hello)]))
    server: RunningServer = await serve_asgi(layer, "127.0.0.1", 0)
    try:
        yield layer, server.url + "/hello"
    finally:
        layer.stopping()
        await server.stop()


async def test_http_layer_applies_each_kind(served: tuple[FaultyHttp, str]) -> None:
    layer, url = served
    full = ("hello, replica " * 10).encode()
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(url)).content == full
        layer.faults.inject(Fault("status", status=502))
        assert (await http.get(url)).status_code == 502
        layer.faults.inject(Fault("truncate", keep=0.2))
        assert (await http.get(url)).content == full[: len(full) // 5]
        layer.faults.inject(Fault("malformed"))
        malformed = await http.get(url)
        assert malformed.status_code == 200
        assert malformed.content != full
        layer.faults.inject(Fault("cut"))
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url)
        layer.faults.inject(Fault("drop"))
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url)
        layer.faults.inject(Fault("timeout"))
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url, timeout=0.3)
        layer.faults.inject(Fault("slow", delay=0.2))
        started = asyncio.get_running_loop().time()
        assert (await http.get(url)).content == full
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert (await http.get(url, params={"a": "1"})).content == full
    assert [(r.status, r.fault) for r in layer.log] == [
        (200, None),
        (502, "status"),
        (200, "truncate"),
        (200, "malformed"),
        (200, "cut"),
        (None, "drop"),
        (None, "timeout"),
        (200, "slow"),
        (200, None),
    ]
    assert layer.log[2].size == len(full) // 5
    assert layer.log[-1].params == {"a": "1"}
    assert layer.log[-1].path == "/hello"
