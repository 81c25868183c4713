"""Soak benchmark: mixed queries at a steady rate against the demo for a long time.

Starts `gateway demo` (all registers, their replicas in the same process), sends a steady
open-loop rate of queries drawn from a mix that covers every register, and reports
throughput, p50/p99 latency, the demo process's memory over time, upstream requests per
query and the cache hit ratio (from /metrics).

    uv run python bench/soak.py [--minutes 10] [--rate 20] [--output bench/REPORT-soak.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

# (register, query, variables generator): variables vary over a bounded set, as real traffic.
MIX: list[tuple[str, str, Any]] = [
    (
        "FT",
        "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
        "{ nodes { id typeid Aktoer { navn } } } }",
        lambda r: {"a": r.randrange(1, 9000, 50)},
    ),
    (
        "FT",
        "query($t: Int) { FT_Afstemning(first: 20, where: {typeid: {eq: $t}}, "
        "order: [{opdateringsdato: DESC}]) { totalCount nodes { id nummer vedtaget } } }",
        lambda r: {"t": r.randint(1, 4)},
    ),
    (
        "VALG",
        "{ VALG_Storkreds(first: 20) { nodes { Nummer Navn } } }",
        lambda r: {},
    ),
    (
        "CZ",
        '{ CZ_OBEC(where: {volby: {eq: "kv2014"}, KODZASTUP: {eq: "554782"}}) '
        "{ nodes { KODZASTUP NAZEVZAST } } }",
        lambda r: {},
    ),
    (
        "CZPREZ",
        "query($k: Int) { CZPREZ_OKRSEK(first: 50, where: {KOLO: {eq: $k}}) "
        "{ totalCount nodes { CIS_OBEC CIS_OKRSEK PORADI_ZPRAC } } }",
        lambda r: {"k": r.randint(1, 2)},
    ),
    (
        "DE",
        "{ DE_Wahlergebnis(first: 50) { totalCount nodes { bezirk_nr A B } } }",
        lambda r: {},
    ),
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def run(args: argparse.Namespace) -> dict[str, Any]:
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
        [sys.executable, "-m", "gateway", "demo", "--port", "0", "--rate-limit", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    url = ""
    registers: set[str] = set()
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the demo exited")
        found = re.search(r"(http://127\.0\.0\.1:\d+)/graphql", line)
        if line.startswith("replica"):
            registers.update(re.split(r"[ ,]+", line.split(None, 1)[1].rsplit(" ", 1)[0].strip()))
        if found:
            url = found.group(1)
        if "Ctrl-C" in line:
            break
    mix = [m for m in MIX if m[0] in registers]
    rng = random.Random(7)
    latencies: list[float] = []
    failures = 0
    memory: list[tuple[float, int]] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        # Warm-up: every query shape once, then the baseline memory.
        for _, query, variables in mix:
            await client.post(url + "/graphql", json={"query": query, "variables": variables(rng)})
        before = (await client.get(url + "/metrics")).text
        started = time.monotonic()
        memory.append((0.0, rss_kib(process.pid)))
        duration = args.minutes * 60
        tasks: set[asyncio.Task[None]] = set()

        async def one(query: str, variables: dict[str, Any]) -> None:
            nonlocal failures
            t0 = time.perf_counter()
            try:
                response = await client.post(
                    url + "/graphql", json={"query": query, "variables": variables}
                )
                body = response.json()
                if response.status_code != 200 or body.get("errors"):
                    failures += 1
            except httpx.HTTPError:
                failures += 1
            latencies.append(time.perf_counter() - t0)

        sent = 0
        next_sample = 30.0
        while (elapsed := time.monotonic() - started) < duration:
            due = int(elapsed * args.rate) + 1
            while sent < due:
                _, query, variables = rng.choice(mix)
                task = asyncio.create_task(one(query, variables(rng)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if elapsed >= next_sample:
                memory.append((elapsed, rss_kib(process.pid)))
                next_sample += 30.0
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        memory.append((time.monotonic() - started, rss_kib(process.pid)))
        after = (await client.get(url + "/metrics")).text
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    upstream = metric(after, "dls_upstream_requests_total") - metric(
        before, "dls_upstream_requests_total"
    )
    hits = metric(after, "dls_cache_hits_total") - metric(before, "dls_cache_hits_total")
    misses = metric(after, "dls_cache_misses_total") - metric(before, "dls_cache_misses_total")
    ordered = sorted(latencies)
    return {
        "registers": sorted(registers),
        "sent": sent,
        "seconds": duration,
        "failures": failures,
        "p50": ordered[len(ordered) // 2] * 1000,
        "p99": ordered[int(len(ordered) * 0.99)] * 1000,
        "throughput": len(latencies) / duration,
        "memory": memory,
        "upstream_per_query": upstream / max(sent, 1),
        "hit_ratio": hits / max(hits + misses, 1),
    }


def report(path: Path, result: dict[str, Any], args: argparse.Namespace) -> None:
    memory = result["memory"]
    start, end = memory[0][1], memory[-1][1]
    peak = max(m for _, m in memory)
    growth = end - start
    bound = args.bound_mib * 1024
    lines = [
        "# Soak benchmark: steady mixed load against the demo",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        f"Registers: {', '.join(result['registers'])}. Rate {args.rate}/s for {args.minutes:g} min "
        f"({result['sent']} queries), open loop, from a separate process.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| throughput | {result['throughput']:.1f} queries/s |",
        f"| p50 / p99 latency | {result['p50']:.1f} ms / {result['p99']:.1f} ms |",
        f"| failures | {result['failures']} |",
        f"| upstream requests per query | {result['upstream_per_query']:.3f} |",
        f"| cache hit ratio (upstream responses) | {result['hit_ratio']:.3f} |",
        f"| RSS after warm-up / at end / peak | {start / 1024:.1f} / {end / 1024:.1f} / "
        f"{peak / 1024:.1f} MiB |",
        f"| growth over the run (bound {args.bound_mib} MiB) | {growth / 1024:.1f} MiB "
        f"({'within' if growth <= bound else 'ABOVE'} the bound) |",
        "",
        "RSS samples (seconds, MiB): " + ", ".join(f"{t:.0f}: {m / 1024:.1f}" for t, m in memory),
        "",
        "The demo process holds the gateway and the replicas; the caches are bounded (L1 by",
        "entries, responses by TTL), so memory levels off after the working set is cached.",
        "",
        f"Reproduce: `uv run python bench/soak.py --minutes {args.minutes:g} --rate {args.rate}`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--bound-mib", type=float, default=64)
    parser.add_argument("--output", default=str(ROOT / "bench" / "REPORT-soak.md"))
    args = parser.parse_args()
    result = asyncio.run(run(args))
    report(Path(args.output), result, args)
    sys.stdout.write(Path(args.output).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
