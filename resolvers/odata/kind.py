"""The ``odata`` kind: OData v3 services (the Danish Parliament's open data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.sources.kinds import DemoHandle, Kind
from resolvers.odata.adapter import ODataSource
from resolvers.odata.detector import UpdatedRowsDetector
from resolvers.odata.options import check, warnings

__all__ = ["KIND"]


async def _demo(registers: Mapping[str, Mapping[str, Any]]) -> DemoHandle:
    # The replica is test and demo code: loaded only when a demo starts it.
    from resolvers.odata.replica.server import demo_replica

    return await demo_replica(registers)


KIND = Kind(
    name="odata",
    source=ODataSource,
    detector=UpdatedRowsDetector,
    replica=_demo,
    check_options=check,
    warn_options=warnings,
    description="OData v3 services (the Danish Parliament's open data)",
)
