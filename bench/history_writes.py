"""Micro-benchmark: what recording rows costs, per row, off the request path.

FT's whole rows read from the upstream are recorded in the history store by its worker
thread (JSON, SHA-256, the open version looked up, the version and its event inserted).
This times ``record_rows`` + ``flush`` of FT's recorded ``Stemme`` rows in batches of 100
(as pages arrive), in CPU seconds of the whole process (the worker thread included), for
new rows and for the same rows again (a read of rows already recorded), on SQLite.

    uv run python bench/history_writes.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.history.store import HistoryStore, RowVersion  # noqa: E402
from resolvers.odata.replica.data import load_ft_data  # noqa: E402


async def main(count: int) -> None:
    rows = list(load_ft_data().rows["Stemme"][:count])
    versions = [RowVersion(str(r["id"]), json.dumps(r, sort_keys=True)) for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "h.sqlite")
        await store.start()
        try:
            figures = []
            for label in ("new rows", "the same rows again"):
                start = time.process_time()
                for i in range(0, len(versions), 100):
                    store.record_rows("FT", "Stemme", versions[i : i + 100])
                await store.flush()
                spent = time.process_time() - start
                figures.append((label, spent / len(versions) * 1e6))
        finally:
            await store.aclose()
    sys.stdout.write(f"{len(versions)} FT Stemme rows, in pages of 100, SQLite\n\n")
    sys.stdout.write("| rows | CPU µs per row |\n|---|---|\n")
    for label, micro in figures:
        sys.stdout.write(f"| {label} | {micro:.1f} |\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    asyncio.run(main(parser.parse_args().rows))
