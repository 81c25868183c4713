"""Micro-benchmark: what recording rows costs, per row, off the request path.

FT's whole rows read from the upstream are recorded in the history store by its worker
thread (JSON, SHA-256, the open version looked up, the version and its event inserted).
This times ``record_rows`` + ``flush`` of FT's recorded ``Stemme`` rows in batches of 100
(as pages arrive), in CPU seconds of the whole process (the worker thread included), for
new rows and for the same rows again (a read of rows already recorded), on SQLite.

The registers kept as files pay for their events once per new file version: the worker
thread parses the version again and compares its objects (gateway/history/objects.py). The
second table times the recorded FV2026 night (every file version) written as an import
writes it, then described, in CPU µs per version; the ratio is describing over writing.

    uv run python bench/history_writes.py [--rows 20000] [--versions 20000]
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

from gateway.dls.descriptors import load_registers  # noqa: E402
from gateway.history.store import HistoryStore, RowVersion  # noqa: E402
from resolvers.odata.replica.data import load_ft_data  # noqa: E402
from resolvers.valg_sftp.describe import ValgDescriber  # noqa: E402
from resolvers.valg_sftp.history import archive_versions, import_versions  # noqa: E402

ARCHIVE = ROOT / "data" / "valg" / "fv2026-folketingsvalg-135.tar.xz"


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


async def files(limit: int) -> None:
    (valg,) = [r for r in load_registers(ROOT / "registers").registers if r.name == "VALG"]
    kept = [v for _, v in zip(range(limit), archive_versions(ARCHIVE), strict=False)]
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "h.sqlite")
        await store.start()
        try:
            start = time.process_time()
            await import_versions(store, "VALG", kept)
            written = time.process_time() - start
            start = time.process_time()
            store.describe("VALG", ValgDescriber(valg, valg.source["datamodel"]))
            await store.described()
            described = time.process_time() - start
            events = store.events_written
        finally:
            await store.aclose()
    sys.stdout.write(f"\n{len(kept)} VALG file versions (FV2026), {events} events, SQLite\n\n")
    sys.stdout.write("| step | CPU µs per version |\n|---|---|\n")
    sys.stdout.write(f"| written (as imported) | {written / len(kept) * 1e6:.1f} |\n")
    sys.stdout.write(f"| described (events) | {described / len(kept) * 1e6:.1f} |\n")
    sys.stdout.write(f"| ratio described / written | {described / written:.2f} |\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--versions", type=int, default=20000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows))
    asyncio.run(files(arguments.versions))
