"""Change detection for VALG: new file versions in the election folders.

Each poll lists the dataset folder of every watched entity (``valgresultater`` for
``Valgresultat``, ``valgdeltagelse`` for the turnout, ...) in every election root, through the
adapter's store (the fresh listing also replaces the one queries are answered from). A name
not listed before, or listed with another size or signature size (a file still being written,
a signature arriving late), is a new file version; the adapter reads it as a query would serve
it (verified against the root's public key) and its rows make one change per file. A new
election root is new data too: everything in it is reported once its folders appear. A file
gone with no version of its series left (data withdrawn, not replaced) is a ``d`` change of
the rows it held, as the history store kept them.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Mapping
from typing import Any

from gateway.model.datamodel import Register
from gateway.sources.changes import Change, Detector
from gateway.sources.port import Source
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.codec import FileProblem, series_and_stamp, withdrawn

__all__ = ["ValgDetector"]

# directory → file name → [size, size of its signature (-1: none yet)]
Listed = dict[str, list[int]]


class ValgDetector(Detector):
    """New verified file versions of VALG's per-entity datasets."""

    default_interval = 5.0

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        if not isinstance(source, ValgSource):
            raise TypeError("the VALG detector needs the VALG adapter")
        self.valg = source
        self.folders = source.event_folders()
        self._seen: dict[str, Listed] = {}
        self._ready: set[str] = set()

    @classmethod
    def entities(cls, register: Register) -> list[str]:
        """The datasets whose files each hold one entity (not the geografi files)."""
        model = register.source.get("datamodel")
        documents = model.get("documents", ()) if isinstance(model, Mapping) else ()
        return sorted(
            str(d["name"]) for d in documents if isinstance(d, Mapping) and d.get("file") is None
        )

    def ready(self, entity: str) -> bool:
        return entity in self._ready

    async def poll(self, watched: frozenset[str]) -> list[Change]:
        """List the watched folders of every root; read and report what is new."""
        wanted = watched & self.folders.keys()
        self._forget(wanted)
        store = self.valg.store
        store.invalidate("")
        roots = await store.roots()
        changes: list[Change] = []
        for entity in sorted(wanted):
            folder = self.folders[entity]
            for root in roots:
                directory = f"{root}/{folder}"
                listed = await self._list(directory)
                if listed is None:
                    continue
                before = self._seen.get(directory)
                self._seen[directory] = listed
                if entity not in self._ready:
                    continue  # the baseline
                new = [n for n, sizes in listed.items() if (before or {}).get(n) != sizes]
                if new:
                    changes += await self._read(entity, root, new)
                gone = withdrawn([n for n in before or {} if n not in listed], listed)
                if gone:
                    changes += await self._withdrawn(entity, directory, gone)
            self._ready.add(entity)
        return changes

    def _forget(self, wanted: frozenset[str]) -> None:
        """Entities nobody watches any more lose their baseline (taken again if watched)."""
        for entity in self._ready - wanted:
            self._ready.discard(entity)
            suffix = f"/{self.folders[entity]}"
            for directory in [d for d in self._seen if d.endswith(suffix)]:
                del self._seen[directory]

    async def _list(self, directory: str) -> Listed | None:
        store = self.valg.store
        store.invalidate(directory)
        try:
            entries = await store.listing(directory)
        except FileProblem:
            return None  # the folder is not published (yet)
        listed: Listed = {}
        for name, entry in entries.items():
            if entry.is_dir or not name.endswith(".json"):
                continue
            signature = entries.get(f"{name}.hash")
            listed[name] = [entry.size, signature.size if signature is not None else -1]
        return listed

    async def _read(self, entity: str, root: str, names: list[str]) -> list[Change]:
        # In the order the server released them (the stamp in the name), as it published them.
        names = sorted(names, key=lambda n: (series_and_stamp(n)[1] or dt.datetime.min, n))
        found = await self.valg.rows_of_files(self.register.datamodel.entities[entity], root, names)
        return [
            Change(self.register.name, entity, tuple(rows), (path,)) for path, rows in found if rows
        ]

    async def _withdrawn(self, entity: str, directory: str, names: list[str]) -> list[Change]:
        """Files withdrawn (no version of their series listed any more): a ``d`` of their
        rows as last kept in the history (without a history store, nothing is known of
        them to tell)."""
        history = self.valg.services.history
        if history is None:
            return []
        describer = self.valg.describer()
        changes = []
        for name in names:
            path = f"{directory}/{name}"
            found = await history.read(self.register.name, path)
            if found is None:
                continue
            try:
                rows = describer.rows(path, found[0])
            except FileProblem:
                continue
            if rows:
                changes.append(Change(self.register.name, entity, (), (path,), deleted=tuple(rows)))
        return changes

    def received(self, change: Change) -> None:
        """Another process saw new files: list their folders afresh for queries here."""
        for path in change.upstream:
            self.valg.store.invalidate(posixpath.dirname(path))

    def state(self) -> dict[str, Any]:
        return {"ready": sorted(self._ready), "seen": self._seen}

    def restore(self, state: Mapping[str, Any]) -> None:
        seen = state.get("seen", {})
        ready = state.get("ready", [])
        if isinstance(seen, dict) and isinstance(ready, list):
            self._seen = {str(d): dict(v) for d, v in seen.items() if isinstance(v, dict)}
            self._ready = {str(e) for e in ready if str(e) in self.folders}
