"""Change detection for volby.cz (CZ, CZPREZ): new precinct batches.

ČSÚ publishes precinct results in numbered batches; the adapter reads every batch up to the
newest once (the newest number is asked for at most once per ``ttl``, the upstream's own cache
period) and merges them. Each poll reads the batch rows through the adapter and compares, per
election (or round), the newest batch number with the last one seen. When it grew:

- the batch entity (``DAVKA``) reports the new batches;
- the precinct entity (``OKRSEK``) reports the precincts processed since
  (``PORADI_ZPRAC`` above the highest seen: ČSÚ numbers its processing order across batches);
- the votes entity (``HLASY_OKRSEK``) reports those precincts' votes;
- the progress entity (``PRUBEH``) reports the election's new progress row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.model.datamodel import Entity, Register
from gateway.model.keys import reference_source
from gateway.model.query import Query, Row
from gateway.sources.changes import Change, Detector
from gateway.sources.port import Source
from resolvers.volby_xml.adapter import VolbySource
from resolvers.volby_xml.batches import BatchNames
from resolvers.volby_xml.plan import VolbyConfig

__all__ = ["BatchDetector"]


class BatchDetector(Detector):
    """New batches of precinct results, and the rows they brought."""

    default_interval = 30.0

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        if not isinstance(source, VolbySource):
            raise TypeError("the volby.cz detector needs the volby.cz adapter")
        spec = source.config.families.batches or {}
        self.names = BatchNames(sequence=str(spec.get("sequence", "PORADI_ZPRAC")))
        self.context = sorted({k for e in source.config.elections for k in e.context})
        # election label -> [newest batch number, highest processing sequence]
        self._cursors: dict[str, list[int]] | None = None
        self._ready: set[str] = set()

    @classmethod
    def entities(cls, register: Register) -> list[str]:
        """The entities read from the batches."""
        try:
            batches = VolbyConfig.of(register.source).families.batches
        except Exception:  # an invalid Source.json fails when the adapter is built
            return []
        return sorted(str(e) for e in (batches or {}).get("entities", ()))

    def ready(self, entity: str) -> bool:
        return entity in self._ready

    def _label(self, entity: Entity, row: Row) -> str:
        """The election a row belongs to, by its context fields (``volby``, ``KOLO``)."""
        fields = [(k, entity.by_source[k].name) for k in self.context if k in entity.by_source]
        return ",".join(f"{k}={row.get(name)}" for k, name in fields)

    async def _rows(self, name: str) -> tuple[Entity, list[Row]]:
        entity = self.register.datamodel.entities[name]
        page = await self.source.fetch(Query(entity))
        return entity, page.rows

    def _highest(self, entity: Entity, rows: list[Row], source: str) -> dict[str, int]:
        """Per election: the highest value of a number field."""
        field = entity.by_source[source].name
        out: dict[str, int] = {}
        for row in rows:
            label = self._label(entity, row)
            out[label] = max(out.get(label, 0), int(row.get(field) or 0))
        return out

    async def poll(self, watched: frozenset[str]) -> list[Change]:
        """Read the batches; report what the new ones brought."""
        wanted = watched & set(self.entities(self.register))
        self._ready &= wanted
        batch, batches = await self._rows(self.names.batch)
        newest = self._highest(batch, batches, self.names.number)
        before = self._cursors
        grown = {
            label: top
            for label, top in newest.items()
            if before is None or top > before.get(label, [0, 0])[0]
        }
        changes: list[Change] = []
        if grown:
            precinct, precincts = await self._rows(self.names.precinct)
            sequences = self._highest(precinct, precincts, self.names.sequence)
            cursors = dict(before or {})
            for label, top in sorted(grown.items()):
                seen, sequence = cursors.get(label, [0, 0])
                if before is not None:
                    found = await self._report(label, seen, sequence, batches, precincts)
                    changes += [
                        Change(self.register.name, name, tuple(rows), _marker(label, seen, top))
                        for name, rows in found.items()
                        if rows and name in self._ready
                    ]
                cursors[label] = [top, sequences.get(label, sequence)]
            self._cursors = cursors
        elif before is None:
            self._cursors = {}
        self._ready |= wanted
        return changes

    async def _report(
        self, label: str, seen: int, sequence: int, batches: list[Row], precincts: list[Row]
    ) -> dict[str, list[Row]]:
        """The rows of each batch entity that the batches after ``seen`` brought."""
        batch = self.register.datamodel.entities[self.names.batch]
        number = batch.by_source[self.names.number].name
        precinct = self.register.datamodel.entities[self.names.precinct]
        order = precinct.by_source[self.names.sequence].name
        found = {
            self.names.batch: [
                r for r in batches if self._label(batch, r) == label and int(r[number]) > seen
            ],
            self.names.precinct: [
                r
                for r in precincts
                if self._label(precinct, r) == label and int(r.get(order) or 0) > sequence
            ],
        }
        link = precinct.by_source.get(reference_source(precinct.name))
        if self.names.votes in self._ready and link is not None:
            keys = {r.get(link.name) for r in found[self.names.precinct]}
            _, votes = await self._rows(self.names.votes)
            found[self.names.votes] = [r for r in votes if r.get(link.name) in keys]
        if self.names.progress in self._ready:
            progress, rows = await self._rows(self.names.progress)
            found[self.names.progress] = [r for r in rows if self._label(progress, r) == label]
        return found

    def state(self) -> dict[str, Any]:
        return {"cursors": self._cursors, "ready": sorted(self._ready)}

    def restore(self, state: Mapping[str, Any]) -> None:
        cursors = state.get("cursors")
        ready = state.get("ready", [])
        if isinstance(cursors, dict) and isinstance(ready, list):
            self._cursors = {str(k): [int(v[0]), int(v[1])] for k, v in cursors.items()}
            self._ready = {str(e) for e in ready}


def _marker(label: str, seen: int, top: int) -> tuple[str, ...]:
    """What changed upstream: the batch numbers read (``KOLO=1 davka 26–49``)."""
    first = seen + 1
    return (f"{label} davka {top}" if first >= top else f"{label} davka {first}–{top}",)
