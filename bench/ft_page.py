"""Benchmark: the page-of-100-with-relation query against the FT replica, cold and warm.

Runs the FT replica in this process (its own thread and event loop), the gateway as a
separate `gateway serve` process on loopback, and a load of concurrent clients from this
process. Reports queries per second, latency percentiles and upstream requests per query.

    uv run python bench/ft_page.py [--seconds 10] [--concurrency 8] [--output bench/REPORT-ft.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resolvers.odata.replica.server import ODataReplica, load_ft_data  # noqa: E402

PAGE_QUERY = """query($a: Int!) {
  FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) {
    nodes { id typeid Aktoer { navn } }
  }
}"""


class ReplicaThread:
    """The FT replica on its own event loop, so the load does not share it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.replica = self.call(self._start)

    async def _start(self) -> ODataReplica:
        return await ODataReplica().start()

    def call(self, factory: Callable[[], Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(factory(), self.loop)
        return future.result(timeout=60)

    def stop(self) -> None:
        self.call(self.replica.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_gateway(registers: Path, replica_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = registers / "gateway.toml"
    # A benchmark is one client sending as fast as it can: no rate limit.
    config.write_text("[rate_limit]\nenabled = false\n", encoding="utf-8")
    # A replica on loopback: no politeness rate towards a public service.
    env = {**os.environ, "GATEWAY_SOURCE__FT__url": replica_url, "GATEWAY_SOURCE__FT__rate": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--registers",
         str(registers), "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the gateway did not start")


async def load(
    url: str, seconds: float, concurrency: int, variables: Callable[[int], dict[str, Any]]
) -> tuple[int, list[float], int]:
    """Concurrent clients for ``seconds``; returns (queries, latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    counter = 0
    stop_at = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures, counter
        while time.monotonic() < stop_at:
            counter += 1
            started = time.perf_counter()
            response = await client.post(
                url + "/graphql", json={"query": PAGE_QUERY, "variables": variables(counter)}
            )
            latencies.append(time.perf_counter() - started)
            body = response.json()
            if response.status_code != 200 or body.get("errors") or not body["data"]["FT_Stemme"]:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return len(latencies), latencies, failures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--output", default=str(ROOT / "bench" / "REPORT-ft.md"))
    args = parser.parse_args()

    replica = ReplicaThread()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "FT").symlink_to(ROOT / "registers" / "FT")
        gateway, url = start_gateway(Path(tmp), replica.replica.url)
        try:
            ballots = sorted({int(v) for v in _ballot_ids(replica)})
            rows = []
            scenarios: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
                # Cold: a new ballot every query, so every upstream request misses the cache.
                ("cold (new variables)", lambda i: {"a": ballots[i % len(ballots)]}),
                # Warm: the same query; upstream responses come from the cache.
                ("warm (same query)", lambda i: {"a": ballots[0]}),
            ]  # fmt: skip
            for name, variables in scenarios:
                replica.call(_reset(replica.replica))
                queries, latencies, failures = asyncio.run(
                    load(url, args.seconds, args.concurrency, variables)
                )
                upstream = replica.replica.data_requests()
                p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                per_query = upstream / max(queries, 1)
                rate = queries / args.seconds
                rows.append((name, rate, p50 * 1000, p99 * 1000, per_query, failures, queries))
                print(f"{name}: {rows[-1]}")  # noqa: T201
        finally:
            gateway.send_signal(signal.SIGINT)
            gateway.wait(timeout=30)
            replica.stop()
    write_report(Path(args.output), rows, args)


def _ballot_ids(replica: ReplicaThread) -> list[int]:
    return [int(r["afstemningid"]) for r in load_ft_data().rows["Stemme"]]


def _reset(replica: ODataReplica) -> Callable[[], Any]:
    async def reset() -> None:
        replica.log.clear()

    return reset


def write_report(path: Path, rows: list[tuple[Any, ...]], args: argparse.Namespace) -> None:
    lines = [
        "# FT benchmark: a page of 100 `FT_Stemme` with their `Aktoer`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        f"Load: {args.concurrency} concurrent clients for {args.seconds:g} s per scenario, from a",
        "separate process; gateway: one `gateway serve` process (uvicorn); FT replica on loopback.",
        "",
        "| scenario | queries/s | p50 ms | p99 ms | upstream requests/query | failures | queries |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, qps, p50, p99, upstream, failures, queries in rows:
        cells = [name, f"{qps:.1f}", f"{p50:.1f}", f"{p99:.1f}", f"{upstream:.2f}"]
        lines.append("| " + " | ".join([*cells, str(failures), str(queries)]) + " |")
    lines += [
        "",
        "Cold: every query asks for a different ballot range, so the page of `Stemme` is never in",
        "the cache; the `Aktoer` relation costs one request per distinct set of actor ids (the",
        "recorded votes have only 20 members, so that request is often cached already). At most",
        "2 upstream requests per query, independent of the 100 rows. Warm: the same query again;",
        "every upstream response comes from the cache, so the cost is the gateway's own work.",
        "",
        "Reproduce: `uv run python bench/ft_page.py`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
