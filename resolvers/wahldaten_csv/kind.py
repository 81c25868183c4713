"""The ``wahldaten-csv`` kind: Offene Wahldaten CSV files over HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.sources.kinds import DemoHandle, Kind
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.detector import FileVersionDetector
from resolvers.wahldaten_csv.history import import_files
from resolvers.wahldaten_csv.options import check, warnings

__all__ = ["KIND"]


async def _demo(registers: Mapping[str, Mapping[str, Any]]) -> DemoHandle:
    # The replica is test and demo code: loaded only when a demo starts it.
    from resolvers.wahldaten_csv.replica.server import demo_replica

    return await demo_replica(registers)


KIND = Kind(
    name="wahldaten-csv",
    source=WahldatenSource,
    detector=FileVersionDetector,
    replica=_demo,
    check_options=check,
    warn_options=warnings,
    history_import=import_files,
    description="Offene Wahldaten CSV files over HTTP",
)
