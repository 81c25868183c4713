"""What a German file version holds, for the register's events (:mod:`gateway.history.objects`).

A file of one of the five datasets holds rows of its entity (a ``Wahlergebnis`` per ballot
area, a ``Stimmzettel`` entry …), keyed as queries key them: the election the file itself names
(``wahl``), then the row's own identity. A newer version of the publication's dataset (a later
``Zeitstempel``) replaces it, so the series is the folder, publication and dataset; a row whose
values changed is ``u``, one the new version no longer has is ``d``. Where a row sits in its
file (``datei``, ``zeile``) is no part of its content. Votes (``Stimme``) are derived from the
results when queried and have no events of their own: a result's event covers them.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator

import orjson

from gateway.history.objects import ObjectRef
from gateway.model.datamodel import Register
from gateway.model.keys import join_key
from resolvers.wahldaten_csv.names import parse_file_name
from resolvers.wahldaten_csv.parse import DataWarning, Table, WarningLog, read_table
from resolvers.wahldaten_csv.rows import ENTITY_DATASET, Election, build_sheet, entity_rows

__all__ = ["WahldatenDescriber"]

_PLACE = frozenset({"datei", "zeile"})


class WahldatenDescriber:
    """The rows of German file versions (a :class:`~gateway.history.objects.Describer`)."""

    def __init__(self, register: Register) -> None:
        self.register = register

    def series(self, path: str) -> str | None:
        name = parse_file_name(posixpath.basename(path))
        if name is None:
            return None
        return f"{posixpath.dirname(path)}/{name.group}/{name.dataset}"

    def objects(self, path: str, content: bytes) -> Iterator[ObjectRef]:
        file = posixpath.basename(path)
        name = parse_file_name(file)
        if name is None:
            return
        entities = self.register.datamodel.entities
        entity = entities.get(
            next((e for e, d in ENTITY_DATASET.items() if d == name.dataset and e != "Stimme"), "")
        )
        if entity is None:
            return
        vote_type = None
        if name.dataset == "Wahlergebnisse" and "Stimme" in entities:
            vote_type = entities["Stimme"].by_source["anzahl"].type
        try:
            table = read_table(content, file)
        except ValueError as exc:
            table = Table(file, (), (), (DataWarning("EMPTY_FILE", str(exc), file),))
        sheet = build_sheet(table, entity, name.dataset, vote_type)
        found = next(((g, d, n) for g, d, n in sheet.identities if g and d and n), None)
        if found is not None:
            election = Election(found[0], found[1], found[2], file)
        else:  # as the adapter does: the file name says it
            election = Election(name.ags or "", name.day or "", name.election or name.group, file)
        place = {f.name for f in entity.fields if f.source in _PLACE}
        for row in entity_rows(sheet, entity, election, WarningLog()):
            key = join_key(tuple(row.get(k) for k in entity.key))
            content_only = {k: v for k, v in row.items() if k not in place}
            digest = orjson.dumps(content_only, option=orjson.OPT_SORT_KEYS, default=str)
            yield entity.name, key, hashlib.sha256(digest).hexdigest()
