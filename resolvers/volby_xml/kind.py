"""The ``volby-xml`` kind: XML over HTTP with incremental precinct batches (volby.cz)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.sources.kinds import DemoHandle, Kind
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.detector import BatchDetector
from resolvers.volby_xml.history import import_batches
from resolvers.volby_xml.options import check, warnings

__all__ = ["KIND"]


async def _demo(registers: Mapping[str, Mapping[str, Any]]) -> DemoHandle:
    # The replica is test and demo code: loaded only when a demo starts it.
    from resolvers.volby_xml.replica.server import demo_replica

    return await demo_replica(registers)


KIND = Kind(
    name="volby-xml",
    source=VolbySource,
    detector=BatchDetector,
    replica=_demo,
    check_options=check,
    warn_options=warnings,
    history_import=import_batches,
    description="XML over HTTP with incremental precinct batches (volby.cz)",
)
