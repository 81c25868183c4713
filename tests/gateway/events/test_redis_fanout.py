"""Two gateway processes sharing a private Redis: a change is detected once, both hear it."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis

from resolvers.volby_xml.replica.server import VolbyReplica
from tests.gateway.events.conftest import bus, eventually, registers_with, running_gateway
from tests.gateway.events.wsclient import graphql_ws
from tests.resolvers.volby_xml.raw import batch_files, children, root_of
from tests.support import free_port

pytestmark = pytest.mark.replica(released={"1": 1, "2": 0})

BATCHES = """subscription { CZPREZ_DAVKA_changed { id upstream nodes { KOLO PORADI_DAVKY } } }"""


@pytest.fixture
async def clean_redis(redis_url: str) -> str:
    """The session's Redis, emptied before the test (other tests share it)."""
    client: Any = redis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return redis_url


def _numbers(kolo: int, after: int, upto: int) -> list[int]:
    numbers = []
    for path in batch_files(kolo):
        number = int(children(root_of(path), "DAVKA")[0].get("PORADI_DAVKY", "0"))
        if after < number <= upto:
            numbers.append(number)
    return sorted(numbers)


async def test_two_processes_detect_once_and_both_subscribers_hear_it(
    manual_volby_replica: VolbyReplica, clean_redis: str
) -> None:
    options = {
        "CZPREZ": {**manual_volby_replica.overrides["CZPREZ"], "ttl": 0.05, "eventsInterval": 0.1}
    }
    with registers_with("CZPREZ") as registers:
        async with (
            running_gateway(registers, options, cache_url=clean_redis) as one,
            running_gateway(registers, options, cache_url=clean_redis) as two,
            graphql_ws(one) as first,
            graphql_ws(two) as second,
        ):
            op_one = await first.subscribe(BATCHES)
            op_two = await second.subscribe(BATCHES)
            buses = [bus(one), bus(two)]
            await eventually(lambda: any(b.ready("CZPREZ", "DAVKA") for b in buses))
            watchers = [b.watchers["CZPREZ"] for b in buses]
            # Both processes watch; exactly one polls.
            await eventually(lambda: sum(w.polls for w in watchers) >= 3)
            leaders = [w for w in watchers if w.polls]
            assert len(leaders) == 1

            # Whatever else reaches the channel is ignored.
            channel = f"{bus(one).namespace}CZPREZ:changes"
            client: Any = redis.Redis.from_url(clean_redis)
            try:
                for junk in (b"not json", b"[]", b'{"register": "CZPREZ", "rows": 1}'):
                    assert await client.publish(channel, junk) == 2
            finally:
                await client.aclose()

            manual_volby_replica.release("prez2023", "1", 25)
            heard_one = await first.message(op_one)
            heard_two = await second.message(op_two)

            event_one = heard_one["payload"]["data"]["CZPREZ_DAVKA_changed"]
            event_two = heard_two["payload"]["data"]["CZPREZ_DAVKA_changed"]
            assert event_one == event_two  # the same change, by id too
            assert [n["PORADI_DAVKY"] for n in event_one["nodes"]] == _numbers(1, 1, 25)
            assert [w for w in watchers if w.polls] == leaders
            assert all(w.delivered == 1 for w in watchers)
            # Only the leader asked the upstream.
            sources = [app.state.gateway.sources["CZPREZ"] for app in (one, two)]
            asked = [s.requests for s in sources]
            assert sorted(asked)[0] == 0 < sorted(asked)[1]
            assert sum(asked) == len(manual_volby_replica.log)


async def test_another_process_takes_over_where_the_leader_stopped(
    manual_volby_replica: VolbyReplica, clean_redis: str
) -> None:
    options = {
        "CZPREZ": {**manual_volby_replica.overrides["CZPREZ"], "ttl": 0.05, "eventsInterval": 0.1}
    }
    with registers_with("CZPREZ") as registers:
        async with (
            running_gateway(registers, options, cache_url=clean_redis) as one,
            running_gateway(registers, options, cache_url=clean_redis) as two,
            graphql_ws(one) as first,
            graphql_ws(two) as second,
        ):
            ops = {id(one): (first, await first.subscribe(BATCHES))}
            ops[id(two)] = (second, await second.subscribe(BATCHES))
            await eventually(
                lambda: bus(one).ready("CZPREZ", "DAVKA") or bus(two).ready("CZPREZ", "DAVKA")
            )
            leader, follower = (one, two) if bus(one).ready("CZPREZ", "DAVKA") else (two, one)
            manual_volby_replica.release("prez2023", "1", 25)
            for ws, op in ops.values():
                event = (await ws.message(op))["payload"]["data"]["CZPREZ_DAVKA_changed"]
                assert event["upstream"] == ["KOLO=1 davka 2–25"]

            # The leader's only subscriber leaves: it stops polling and gives the lease up.
            ws, op = ops[id(leader)]
            await ws.complete(op)
            await eventually(lambda: "CZPREZ" not in bus(leader).watchers)
            await eventually(lambda: bus(follower).ready("CZPREZ", "DAVKA"))

            manual_volby_replica.release("prez2023", "1", 49)
            ws, op = ops[id(follower)]
            event = (await ws.message(op))["payload"]["data"]["CZPREZ_DAVKA_changed"]
            # Carried on from the saved state: only what came after batch 25.
            assert event["upstream"] == ["KOLO=1 davka 26–49"]
            assert [n["PORADI_DAVKY"] for n in event["nodes"]] == _numbers(1, 25, 49)


async def test_without_redis_each_process_serves_its_own_subscribers(
    manual_volby_replica: VolbyReplica,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    options = {
        "CZPREZ": {**manual_volby_replica.overrides["CZPREZ"], "ttl": 0.05, "eventsInterval": 0.1}
    }
    with registers_with("CZPREZ") as registers:
        async with (
            running_gateway(registers, options, cache_url=nowhere) as app,
            graphql_ws(app) as ws,
        ):
            op = await ws.subscribe(BATCHES)
            await eventually(lambda: bus(app).ready("CZPREZ", "DAVKA"))
            manual_volby_replica.release("prez2023", "1", 25)
            event = (await ws.message(op))["payload"]["data"]["CZPREZ_DAVKA_changed"]
            assert [n["PORADI_DAVKY"] for n in event["nodes"]] == _numbers(1, 1, 25)
