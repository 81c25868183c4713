"""What a ČSÚ precinct batch holds, for the register's events (:mod:`gateway.history.objects`).

The history keeps each batch as published (``batches/{election}/davka-N.xml``). A batch holds
rows of the entities it maps to: the batch itself (``DAVKA``), the precincts counted in it
(``OKRSEK``), their votes and the progress. Batches add, they do not replace one another, so
each is its own series: a precinct first sent is ``i``, sent again with other values (a higher
``PORADI_ZPRAC``, batches being described in the order published) is ``u``, and nothing of a
batch is ever dropped.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator

import orjson

from gateway.history.objects import ObjectRef
from gateway.model.datamodel import Register
from gateway.model.keys import join_key
from resolvers.volby_xml.options import Election, VolbyConfig
from resolvers.volby_xml.rows import read_document

__all__ = ["VolbyDescriber", "batch_folder"]


def batch_folder(election: Election) -> str:
    """Where the history keeps an election's batches."""
    return "batches/" + election.label.replace("/", "%2F")


class VolbyDescriber:
    """The rows of ČSÚ batches (a :class:`~gateway.history.objects.Describer`)."""

    def __init__(self, register: Register, config: VolbyConfig) -> None:
        self.datamodel = register.datamodel
        self._elections = {batch_folder(e): e for e in config.elections}

    def series(self, path: str) -> str | None:
        if posixpath.dirname(path) not in self._elections or not path.endswith(".xml"):
            return None
        return path

    def objects(self, path: str, content: bytes) -> Iterator[ObjectRef]:
        election = self._elections.get(posixpath.dirname(path))
        if election is None:
            return
        document = read_document(content, self.datamodel, election.context)
        if document.error is not None:
            return
        entities = self.datamodel.entities
        for name, rows in document.rows.items():
            entity = entities.get(name)
            if entity is None or not entity.key:
                continue
            for row in rows:
                key = join_key(tuple(row.get(k) for k in entity.key))
                digest = orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str)
                yield entity.name, key, hashlib.sha256(digest).hexdigest()
