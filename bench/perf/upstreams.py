"""The upstream replicas of the benchmark, in a process of their own.

Starts the FT replica (OData over HTTP), with ``--valg`` the VALG replica (SFTP) and with
``--de`` the DE replica (a web folder of Offene Wahldaten CSV files), prints one JSON line
``{"FT": {...}, "VALG": {...}, "DE": {...}}`` of ``Source.json`` overrides pointing the
gateway at them, and serves until its standard input closes. The benchmark pins this
process to the load generator's core, so the gateway's core does only the gateway's work.

    uv run python bench/perf/upstreams.py [--valg] [--de]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from resolvers.odata.replica.server import ODataReplica  # noqa: E402


async def serve(valg: bool, de: bool) -> None:
    """Run the replicas until standard input closes."""
    handles: list[Any] = []
    overrides: dict[str, Any] = {}
    ft = await ODataReplica().start()
    # The replica keeps a log of every request for tests; a long benchmark must not grow it.
    ft.log.keeping = False
    handles.append(ft)
    overrides.update({k: dict(v) for k, v in ft.overrides.items()})
    if valg:
        from resolvers.valg_sftp.replica.server import start_replica

        replica = await start_replica()
        handles.append(replica)
        overrides.update({k: dict(v) for k, v in replica.overrides.items()})
    if de:
        from resolvers.wahldaten_csv.replica.server import start_replica as start_de

        folder = await start_de()
        folder.log.keeping = False
        handles.append(folder)
        # No politeness delay between the gateway's requests to its own replica.
        overrides.update({k: {**v, "rate": 0} for k, v in folder.overrides.items()})
    sys.stdout.write(json.dumps(overrides) + "\n")
    sys.stdout.flush()
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        for handle in reversed(handles):
            await handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--valg", action="store_true", help="also start the VALG replica")
    parser.add_argument("--de", action="store_true", help="also start the DE replica")
    args = parser.parse_args()
    asyncio.run(serve(args.valg, args.de))


if __name__ == "__main__":
    main()
