"""Benchmark: DE_Stimme rows through the gateway, in process, over the DE replica.

Three figures, each in wall and CPU time: the first page of a query shape not asked before
(its rows built), the CSV export of ``DE_Stimme`` (rows per second; the files already
parsed, the export's own rows built within it) and paging ``DE_Stimme`` by 1,000 through
GraphQL (milliseconds a page, after the export). The gateway serves on a loopback socket
(the export streams), the replica in the same process.
Each run is a fresh worker process serving one working tree (this one, and with ``--base``
another, e.g. a worktree of the previous commit); runs of the trees alternate and the
medians are compared, so the machine's noise hits both alike.

    uv run python bench/de_rows.py [--base /tmp/de-base] [--runs 3] [--rows 200000]
        [--base-rows 5000]

``--rows`` (``--base-rows`` for the base tree) caps the rows read per export and the pages
per walk (rows / 1,000), so that a slow tree finishes; each figure is a rate or a mean,
comparable whatever the cap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

PAGE = """query($after: String) {
  DE_Stimme(first: 1000, after: $after) {
    nodes { wahl datei zeile bezirk_nr spalte kennung position kandidatnummer anzahl
            stimmzettel_gebiet_nr bezirk_id stimmzettel_id kandidat_id }
    pageInfo { hasNextPage endCursor }
  }
}"""

WARM = """{ DE_Wahlergebnis(first: 1) { nodes { bezirk_nr } }
  DE_Wahlgebiet(first: 1) { nodes { bezirk_nr } }
  DE_Stimmzettel(first: 1) { nodes { stimmzettel_position } } }"""

FIRST = """{ DE_Stimme(first: 1000, where: {anzahl: {gte: 0}}) { nodes { spalte anzahl } } }"""


def worker(root: Path, rows: int) -> dict[str, Any]:
    """Measure the tree at ``root`` (run in its own process, ``root`` first on sys.path)."""
    import asyncio
    import tempfile

    import httpx

    from gateway.http.app import create_app
    from gateway.http.config import Settings
    from gateway.http.server import serve_asgi
    from resolvers.wahldaten_csv.replica.server import start_replica

    async def run() -> dict[str, Any]:
        demo = await start_replica()
        with tempfile.TemporaryDirectory() as tmp:
            os.symlink(root / "registers" / "DE", Path(tmp) / "DE")
            settings = Settings(
                registers_dir=Path(tmp),
                sources={"DE": {"url": demo.url, "rate": 0, "timeout": 60}},
                rate_limit=None,
                response_cache=False,
            )
            app = create_app(settings)
            # On a real socket: an export streams (the ASGI transport would buffer it whole).
            server = await serve_asgi(app)
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
                    return await measure(client)
            finally:
                await server.stop()
                await demo.stop()

    async def export(client: httpx.AsyncClient) -> tuple[int, float, float]:
        """Rows read (up to ``rows``), CPU seconds and wall seconds."""
        catalogue = (await client.get("/catalog.json")).json()
        path = next(
            downloads["csv"]
            for register in catalogue["registers"]
            for entity in register["entities"]
            for downloads in entity["downloads"]
            if entity["exportName"] == "Stimme"
        )
        cpu, wall = time.process_time(), time.perf_counter()
        lines = -1  # the header
        async with client.stream("GET", path) as response:
            assert response.status_code == 200, response.status_code
            async for chunk in response.aiter_bytes():
                lines += chunk.count(b"\n")
                if lines >= rows:
                    break
        return lines, time.process_time() - cpu, time.perf_counter() - wall

    async def walk(client: httpx.AsyncClient) -> tuple[int, float, float]:
        """Pages read (up to rows / 1,000), CPU seconds and wall seconds."""
        cpu, wall = time.process_time(), time.perf_counter()
        after, pages = None, 0
        while pages * 1000 < rows:
            response = await client.post(
                "/graphql", json={"query": PAGE, "variables": {"after": after}}
            )
            body = response.json()
            assert "errors" not in body, body
            connection = body["data"]["DE_Stimme"]
            pages += 1
            if not connection["pageInfo"]["hasNextPage"]:
                break
            assert len(connection["nodes"]) == 1000
            after = connection["pageInfo"]["endCursor"]
        return pages, time.process_time() - cpu, time.perf_counter() - wall

    async def ask(client: httpx.AsyncClient, query: str) -> None:
        response = await client.post("/graphql", json={"query": query})
        assert "errors" not in response.json(), response.text

    async def measure(client: httpx.AsyncClient) -> dict[str, Any]:
        # Warm up: the listing and the files DE_Stimme reads, parsed once (by other entities,
        # so that no DE_Stimme answer is kept yet).
        await ask(client, WARM)
        # The first page of a query shape not asked before (its rows are built).
        cpu, wall = time.process_time(), time.perf_counter()
        await ask(client, FIRST)
        first_cpu, first_wall = time.process_time() - cpu, time.perf_counter() - wall
        got, cpu, wall = await export(client)
        pages, pcpu, pwall = await walk(client)
        return {
            "first_page_ms": 1000 * first_wall,
            "first_page_cpu_ms": 1000 * first_cpu,
            "export_rows": got,
            "export_rows_per_s": got / wall,
            "export_rows_per_cpu_s": got / cpu,
            "pages": pages,
            "page_ms": 1000 * pwall / pages,
            "page_cpu_ms": 1000 * pcpu / pages,
        }

    return asyncio.run(run())


def spawn(root: Path, rows: int) -> dict[str, Any]:
    """One worker process measuring ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(root), "--rows", str(rows)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"worker for {root} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


FIGURES = (
    ("first_page_ms", "first page of a shape, ms", False),
    ("first_page_cpu_ms", "first page, CPU ms", False),
    ("export_rows_per_s", "export, rows/s (wall)", True),
    ("export_rows_per_cpu_s", "export, rows per CPU s", True),
    ("page_ms", "page of 1,000, ms (wall)", False),
    ("page_cpu_ms", "page of 1,000, CPU ms", False),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="another tree to compare (the previous code)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--base-rows", type=int, default=5_000, help="--rows for --base")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        root = args.worker.resolve()
        sys.path.insert(0, str(root))
        sys.stdout.write(json.dumps(worker(root, args.rows)) + "\n")
        return
    trees = {"now": (HERE, args.rows)}
    if args.base is not None:
        trees["base"] = (args.base.resolve(), args.base_rows)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for run in range(args.runs):
        for name, (root, rows) in trees.items():
            result = spawn(root, rows)
            results[name].append(result)
            sys.stdout.write(f"run {run + 1} {name}: {json.dumps(result)}\n")
            sys.stdout.flush()
    header = f"{'figure':28}" + "".join(f"{name:>14}" for name in trees)
    lines = ["", header + ("       ratio" if "base" in trees else "")]
    for key, label, higher in FIGURES:
        medians = {name: statistics.median(r[key] for r in runs) for name, runs in results.items()}
        line = f"{label:28}" + "".join(f"{medians[name]:14.1f}" for name in trees)
        if "base" in medians:
            ratio = medians["now"] / medians["base"] if higher else medians["base"] / medians["now"]
            line += f"{ratio:11.1f}×"
        lines.append(line)
    rows = statistics.median(r["export_rows"] for r in results["now"])
    lines += [
        "",
        f"rows exported per run (now): {rows:.0f}; targets: ≥ 30,000 rows/s, ≤ 50 ms a page",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
