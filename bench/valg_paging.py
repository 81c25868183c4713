"""Benchmark: paging through the whole-country FV2026 results (1,314 polling districts).

The VALG replica (SFTP) and the gateway run in this process; the whole set of
`VALG_Valgresultat` rows of the general election is paged through with cursors, cold (nothing
cached) and warm (the same pages again), with two sizes of the parsed-content cache. Reports
time, files downloaded, and the peak of Python allocations (tracemalloc) against the size of
one page, to show that memory is bounded by the cache, not by the rows paged through.

    uv run python bench/valg_paging.py [--page 500] [--output bench/REPORT-valg.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resolvers.valg_sftp.replica.server import start_replica  # noqa: E402
from tests.support import gateway_client, register_subset  # noqa: E402

FV = "folketingsvalg-135-24-03-2026"
QUERY = (
    "query ($after: String, $n: Int) { VALG_Valgresultat(first: $n, after: $after, "
    f'where: {{Valgmappe: {{eq: "{FV}"}}}}) {{ pageInfo {{ hasNextPage endCursor }} '
    "nodes { AfstemningsomraadeDagiId Resultatart AfgivneStemmer } } }"
)


async def page_through(client: Any, size: int) -> tuple[int, int, float]:
    after = None
    rows = pages = 0
    first_peak = 0.0
    while True:
        response = await client.post(
            "/graphql", json={"query": QUERY, "variables": {"after": after, "n": size}}
        )
        body = response.json()
        assert "errors" not in body, body
        connection = body["data"]["VALG_Valgresultat"]
        rows += len(connection["nodes"])
        pages += 1
        if pages == 1:
            first_peak = tracemalloc.get_traced_memory()[1] / 2**20
        if not connection["pageInfo"]["hasNextPage"]:
            return rows, pages, first_peak
        after = connection["pageInfo"]["endCursor"]


async def scenario(cache_bytes: int, size: int) -> dict[str, Any]:
    replica = await start_replica()
    try:
        overrides = {
            name: {**dict(options), "content_cache_bytes": cache_bytes}
            for name, options in replica.overrides.items()
        }
        with register_subset("VALG", "FT") as registers:
            async with gateway_client(
                registers, overrides, rate_limit=None, response_cache=False
            ) as client:
                results: dict[str, Any] = {"cache_mib": cache_bytes / 2**20}
                for phase in ("cold", "warm"):
                    opened = len([e for e in replica.log if e.method == "open"])
                    tracemalloc.start()
                    started = time.perf_counter()
                    rows, pages, first_peak = await page_through(client, size)
                    elapsed = time.perf_counter() - started
                    _, peak = tracemalloc.get_traced_memory()
                    tracemalloc.stop()
                    files = len([e for e in replica.log if e.method == "open"]) - opened
                    results[phase] = {
                        "seconds": elapsed,
                        "rows": rows,
                        "pages": pages,
                        "files": files,
                        "peak_mib": peak / 2**20,
                        "first_peak_mib": first_peak,
                    }
                return results
    finally:
        await replica.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--output", default=str(ROOT / "bench" / "REPORT-valg.md"))
    args = parser.parse_args()
    runs = [asyncio.run(scenario(size, args.page)) for size in (128 * 2**20, 8 * 2**20)]
    lines = [
        "# VALG benchmark: paging through the whole-country FV2026 results",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Replica (SFTP, signed files) and gateway in one "
        f"process; pages of {args.page} `VALG_Valgresultat` rows with cursors.",
        "",
        "| content cache | phase | rows | pages | time | files downloaded "
        "| peak memory after page 1 | peak memory, all pages |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for phase in ("cold", "warm"):
            r = run[phase]
            lines.append(
                f"| {run['cache_mib']:.0f} MiB | {phase} | {r['rows']} | {r['pages']} | "
                f"{r['seconds']:.1f} s | {r['files']} | {r['first_peak_mib']:.1f} MiB | "
                f"{r['peak_mib']:.1f} MiB |"
            )
    lines += [
        "",
        "Files downloaded counts every file opened on the SFTP server (results, their signatures,",
        "geografi and keys). Warm with the large cache downloads nothing: parsed files are cached",
        "by name (a named file never changes). Memory is bounded by the content cache",
        "(`content_cache_bytes` in Source.json) plus the file being parsed, not by the rows",
        "paged through: the first page already costs what the whole set costs (the version",
        "choice reads every district's newest file once), and a smaller cache pages the whole",
        "set in less memory at the price of downloading again.",
        "",
        "Reproduce: `uv run python bench/valg_paging.py`.",
        "",
    ]
    Path(args.output).write_text("\n".join(lines), encoding="utf-8")
    sys.stdout.write("\n".join(lines))


if __name__ == "__main__":
    main()
