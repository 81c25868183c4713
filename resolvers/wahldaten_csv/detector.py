"""Change detection for Offene Wahldaten (DE): new file versions of an election's datasets.

A publication's file names carry their time stamp; the adapter serves the newest version of
each dataset (:meth:`resolvers.wahldaten_csv.adapter.WahldatenSource.file_versions`, read through
its
cached listing). When the version served for an election's dataset changes (or a new election
is published), every row of the watched entities read from that dataset is reported, as the
new version has it: one change per entity and file version.

``Stimme`` (a vote per district and party, derived from the results) has no events of its
own: subscribe to ``Wahlergebnis`` and select its ``Stimmen``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.model.datamodel import Register
from gateway.model.query import Condition, Query
from gateway.sources.changes import Change, Detector
from gateway.sources.port import Source
from resolvers.wahldaten_csv.adapter import WahldatenSource
from resolvers.wahldaten_csv.rows import ENTITY_DATASET

__all__ = ["FileVersionDetector"]

_SEPARATOR = "\x1f"


class FileVersionDetector(Detector):
    """New file versions of DE datasets, and their rows."""

    default_interval = 60.0

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        if not isinstance(source, WahldatenSource):
            raise TypeError("the DE detector needs the Offene Wahldaten adapter")
        self.wahldaten = source
        self._versions: dict[str, str] | None = None
        self._ready: set[str] = set()

    @classmethod
    def entities(cls, register: Register) -> list[str]:
        """Every entity read from one dataset (all but the derived ``Stimme``)."""
        return sorted(e for e in ENTITY_DATASET if e != "Stimme")

    def ready(self, entity: str) -> bool:
        return entity in self._ready

    async def poll(self, watched: frozenset[str]) -> list[Change]:
        """Compare the versions served now with the last ones; read what is new."""
        wanted = watched & set(self.entities(self.register))
        self._ready &= wanted
        current = {
            f"{wahl}{_SEPARATOR}{dataset}": name
            for (wahl, dataset), name in (await self.wahldaten.file_versions()).items()
        }
        before, self._versions = self._versions, current
        changes: list[Change] = []
        if before is not None:
            for key, name in sorted(current.items()):
                if before.get(key) == name:
                    continue
                wahl, _, dataset = key.partition(_SEPARATOR)
                for entity in sorted(self._ready):
                    if ENTITY_DATASET[entity] == dataset:
                        changes += await self._read(entity, wahl, name)
        self._ready |= wanted
        return changes

    async def _read(self, entity: str, wahl: str, name: str) -> list[Change]:
        model = self.register.datamodel.entities[entity]
        page = await self.source.fetch(Query(model, Condition("wahl", "eq", wahl)))
        rows = tuple(r for r in page.rows if r.get("datei") == name)
        if not rows:
            return []
        return [Change(self.register.name, entity, rows, (name,))]

    def state(self) -> dict[str, Any]:
        return {"versions": self._versions, "ready": sorted(self._ready)}

    def restore(self, state: Mapping[str, Any]) -> None:
        versions = state.get("versions")
        ready = state.get("ready", [])
        if isinstance(versions, dict) and isinstance(ready, list):
            self._versions = {str(k): str(v) for k, v in versions.items()}
            self._ready = {str(e) for e in ready}
