"""In-process caches are bounded in bytes, swept of expired entries, and measured."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

import httpx

from gateway.graphql.response_cache import ResponseCache
from gateway.http.config import HttpSettings
from gateway.http.persisted import APQ_PREFIX, PersistedQueries, sha256
from gateway.sources.cache import Cache
from tests.support import gateway_client, register_subset

MiB = 1024 * 1024


class _Result:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.errors = None
        self.extensions = None


class _Context:
    def __init__(self) -> None:
        self.touched = {"FT"}
        self.notices: list[Any] = []


def _answer(n: int) -> dict[str, Any]:
    """A large answer (some 200 KB of JSON), different for every ``n``."""
    return {"rows": [{"id": n * 1000 + i, "text": f"{n}-{i}-" + "x" * 190} for i in range(1000)]}


async def test_response_cache_memory_stays_within_its_byte_bound() -> None:
    cache = Cache(max_bytes={"response": 2 * MiB})
    responses = ResponseCache(cache, "/graphql", {"FT": 60})
    keys = [responses.key(f"{{ q{n} }}", None, None, 0) for n in range(60)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, key in enumerate(keys):
            await responses.store(key, _Result(_answer(n)), _Context())
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # The cache's own accounting, and the memory actually held (60 answers are ~12 MB).
    assert 0 < cache.bytes["response"] <= 2 * MiB
    assert held < 3 * MiB
    assert cache.entries("response") < 15
    assert await responses.get(keys[0]) is None  # evicted
    assert await responses.get(keys[-1]) is not None


async def test_upstream_rows_are_bounded_in_bytes_too() -> None:
    cache = Cache(max_bytes={"upstream": 4 * MiB})
    for n in range(40):
        await cache.set(f"odata-rows:{n}", _answer(n)["rows"], 60)
    assert 0 < cache.bytes["upstream"] <= 4 * MiB
    assert await cache.get("odata-rows:0") is None
    assert await cache.get("odata-rows:39") is not None
    # An entry larger than half its tier is not kept in process at all.
    await cache.set("odata-rows:huge", [_answer(n)["rows"] for n in range(20)], 60)
    assert await cache.get("odata-rows:huge") is None
    assert cache.bytes["upstream"] <= 4 * MiB


async def test_expired_entries_are_swept_without_being_looked_up() -> None:
    cache = Cache(sweep_interval=0.05)
    for n in range(20):
        await cache.set(f"rows:{n}", _answer(n)["rows"], 0.1)
    full = cache.bytes["upstream"]
    assert cache.entries("upstream") == 20
    await asyncio.sleep(0.2)
    await cache.set("rows:other", [1, 2, 3], 60)  # any insert sweeps, amortised
    assert cache.entries("upstream") == 1
    assert cache.bytes["upstream"] < full / 100


async def test_the_app_sweeps_its_cache_in_the_background() -> None:
    with register_subset("FT") as folder:
        async with gateway_client(
            folder, {"FT": {"url": "http://127.0.0.1:9/api/"}}, cache_sweep_interval=0.05
        ) as client:
            cache: Cache = client.app.state.gateway.services_cache  # type: ignore[attr-defined]
            for n in range(5):
                await cache.set(f"rows:{n}", _answer(n)["rows"], 0.05)
            assert cache.entries("upstream") == 5
            await asyncio.sleep(0.3)
            assert cache.entries("upstream") == 0
            assert cache.bytes["upstream"] == 0


async def test_apq_keeps_no_padded_documents_for_a_day() -> None:
    cache = Cache()
    persisted = PersistedQueries(HttpSettings(), cache)
    padded = "# " + "comment " * 12_000 + "\n{ __typename }"  # some 99 KB
    await persisted.learn(sha256(padded), padded)
    stored = await cache.get(APQ_PREFIX + sha256(padded))
    assert stored == "{ __typename }"
    assert cache.bytes["apq"] < 2048
    entry = cache._l1[APQ_PREFIX + sha256(padded)]
    assert entry.ttl <= 6 * 3600
    # A document whose tokens alone exceed the bound is not learnt at all.
    big = "{ " + " ".join(f"a{n}: __typename" for n in range(3000)) + " }"
    await persisted.learn(sha256(big), big)
    assert await cache.get(APQ_PREFIX + sha256(big)) is None


async def test_metrics_show_cache_bytes_per_tier() -> None:
    with register_subset("FT") as folder:
        async with gateway_client(folder, {"FT": {"url": "http://127.0.0.1:9/api/"}}) as client:
            cache: Cache = client.app.state.gateway.services_cache  # type: ignore[attr-defined]
            await cache.set("response-json:x", b"y" * 10_000, 60)
            text = (await client.get("/metrics")).text
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines() if " " in line}
    assert float(lines['dls_cache_bytes{tier="response"}']) >= 10_000
    assert 'dls_cache_bytes{tier="upstream"}' in lines
    assert 'dls_cache_bytes{tier="apq"}' in lines
    assert float(lines['dls_cache_max_bytes{tier="response"}']) == 64 * MiB
    assert isinstance(client, httpx.AsyncClient)
