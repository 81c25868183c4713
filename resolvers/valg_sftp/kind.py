"""The ``valg-sftp`` kind: signed JSON files on an SFTP server (data.valg.dk)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.history.store import HistoryStore
from gateway.model.datamodel import Register
from gateway.sources.kinds import DemoHandle, Kind
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.detector import ValgDetector
from resolvers.valg_sftp.history import archive_versions, import_versions
from resolvers.valg_sftp.hostkey import ValgHostKeys
from resolvers.valg_sftp.options import check, warnings

__all__ = ["KIND"]


async def _demo(registers: Mapping[str, Mapping[str, Any]]) -> DemoHandle:
    # The replica is test and demo code: loaded only when a demo starts it.
    from resolvers.valg_sftp.replica.server import demo_replica

    return await demo_replica(registers)


async def _history_import(
    history: HistoryStore, register: Register, path: Path, progress: Callable[[int], None]
) -> int:
    return await import_versions(history, register.name, archive_versions(path), progress)


KIND = Kind(
    name="valg-sftp",
    source=ValgSource,
    detector=ValgDetector,
    replica=_demo,
    check_options=check,
    warn_options=warnings,
    description="signed JSON files on an SFTP server (data.valg.dk)",
    host_keys=ValgHostKeys(),
    history_import=_history_import,
)
