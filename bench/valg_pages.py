"""Benchmark: warm and cold pages of 100 ``VALG_Valgresultat`` rows, one gateway tree or two.

The VALG replica (SFTP, signed files) and the gateway run in one process, as in the tests;
the query is the one the full benchmark pages with (every election root, cursors, response
cache off). Measured per tree:

- **cold first walk**: a fresh gateway pages through the whole set once (downloads, signature
  checks and parsing; wall time and CPU time of the process);
- **warm page**: later walks page after page, one client; the median page's wall time;
- **CPU per page under load**: 50 clients at once each fetch pages (the cursors of a warm
  walk), CPU time of the process over the pages served.

With ``--base TREE`` the same measurement runs against another checkout too (e.g.
``git worktree add /tmp/valg-base HEAD``), each tree in its own process with this
interpreter, alternating, and the ratios of the medians are printed:

    uv run python bench/valg_pages.py [--base /tmp/valg-base] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

QUERY = (
    "query($after: String) { VALG_Valgresultat(first: 100, after: $after) "
    "{ pageInfo { hasNextPage endCursor } nodes { Noegle Valgmappe Kommune "
    "Afstemningsomraade Resultatart GyldigeStemmer } } }"
)
CLIENTS = 50


async def _page(client: Any, after: str | None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": QUERY, "variables": {"after": after}})
    body = response.json()
    if "errors" in body:
        raise RuntimeError(f"VALG paging failed: {body['errors']}")
    return dict(body["data"]["VALG_Valgresultat"])


async def _walk(client: Any) -> tuple[list[str | None], list[float], int]:
    """Every page once: the cursors, each page's wall time, the rows."""
    cursors: list[str | None] = []
    times: list[float] = []
    after: str | None = None
    rows = 0
    while True:
        cursors.append(after)
        started = time.perf_counter()
        connection = await _page(client, after)
        times.append(time.perf_counter() - started)
        rows += len(connection["nodes"])
        if not connection["pageInfo"]["hasNextPage"]:
            return cursors, times, rows
        after = connection["pageInfo"]["endCursor"]


async def measure(tree: Path, walks: int) -> dict[str, Any]:
    """One tree's figures (run with ``tree`` first on ``sys.path``)."""
    from gateway.graphql.limits import LimitSettings
    from resolvers.valg_sftp.replica.server import start_replica
    from tests.support import gateway_client, register_subset

    replica = await start_replica()
    try:
        with register_subset("VALG", "FT") as registers:
            async with gateway_client(
                registers,
                replica.overrides,
                rate_limit=None,
                response_cache=False,
                # The cold first page downloads every district's newest file.
                limits=LimitSettings(upstream_requests={0: 100_000}),
            ) as client:
                cpu, wall = time.process_time(), time.perf_counter()
                cursors, _, rows = await _walk(client)
                cold = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
                pages: list[float] = []
                for _ in range(walks):
                    _, times, _ = await _walk(client)
                    pages += times
                queue = [cursors[i % len(cursors)] for i in range(CLIENTS * 4)]

                async def worker() -> None:
                    while queue:
                        await _page(client, queue.pop())

                served = len(queue)
                cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(CLIENTS)))
                load_cpu = time.process_time() - cpu
                load_wall = time.perf_counter() - wall
    finally:
        await replica.stop()
    return {
        "tree": str(tree),
        "rows": rows,
        "pages": len(cursors),
        "cold": cold,
        "warm_page_ms": statistics.median(pages) * 1000,
        "load_cpu_ms_per_page": load_cpu / served * 1000,
        "load_pages_per_s": served / load_wall,
    }


def _child(tree: Path, walks: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = (
        "import asyncio, json, sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(tree)!r}); "
        f"sys.path.insert(0, {str(ROOT / 'bench')!r}); "
        "import valg_pages; "
        f"print(json.dumps(asyncio.run(valg_pages.measure(Path({str(tree)!r}), {walks}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for part in path:
            value = value[part]
        values.append(float(value))
    return statistics.median(values)


ROWS = [
    ("cold first walk, wall (s)", ("cold", "wall_s"), "{:.2f}"),
    ("cold first walk, CPU (s)", ("cold", "cpu_s"), "{:.2f}"),
    ("warm page, median wall (ms)", ("warm_page_ms",), "{:.1f}"),
    (f"CPU per page, {CLIENTS} clients (ms)", ("load_cpu_ms_per_page",), "{:.1f}"),
    (f"pages/s, {CLIENTS} clients", ("load_pages_per_s",), "{:.0f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="another checkout to compare with")
    parser.add_argument("--runs", type=int, default=3, help="processes per tree (medians)")
    parser.add_argument("--walks", type=int, default=3, help="warm walks per process")
    args = parser.parse_args()
    trees = [ROOT] + ([args.base.resolve()] if args.base else [])
    results: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for _ in range(args.runs):
        for tree in trees:
            results[tree].append(_child(tree, args.walks))
    first = results[ROOT][0]
    lines = [
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{first['rows']} rows in {first['pages']} pages of 100; medians of {args.runs} "
        f"processes per tree, {args.walks} warm walks each.",
        "",
        "| measure | " + " | ".join(t.name for t in trees) + (" | ratio |" if args.base else " |"),
        "|---|" + "---|" * (len(trees) + (1 if args.base else 0)),
    ]
    for label, path, fmt in ROWS:
        values = [_median(results[t], *path) for t in trees]
        cells = [fmt.format(v) for v in values]
        if args.base:
            cells.append(f"{values[0] / values[1]:.3f}" if values[1] else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
