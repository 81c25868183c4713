"""What a VALG file version holds, for the register's events (:mod:`gateway.history.objects`).

A version of ``root/[verifikation/]folder/name`` holds the row of its dataset's document
entity (a ``Valgresultat``, a ``Valgdeltagelse`` …), keyed by the ``Noegle`` queries give it;
a geografi file holds one row per element. Its series is its folder and name without the
``-DDMMYYYYHHmm`` stamp: a newer version of the file replaces it. A document's digest is its
whole content (a candidate's votes changing changes the result's), so a version released
again unchanged is no event. The nested rows (candidates, parties) change with their document:
their ``ForaelderNoegle`` is its key.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from gateway.history.objects import ObjectRef
from gateway.model.datamodel import Register
from gateway.model.keys import join_key
from gateway.model.query import Row
from resolvers.valg_sftp.codec import identity_of, parse_document, series_and_stamp
from resolvers.valg_sftp.options import inherit_spec
from resolvers.valg_sftp.rows import DocContext, RowPlan, build_rows
from resolvers.valg_sftp.store import DocSpec

__all__ = ["ValgDescriber"]

_VERIFICATION = "verifikation"


class ValgDescriber:
    """The document rows of VALG file versions (a :class:`~gateway.history.objects.Describer`)."""

    def __init__(self, register: Register, datamodel: Mapping[str, Any]) -> None:
        self._plans: dict[str, tuple[DocSpec, RowPlan]] = {}
        entities = register.datamodel.entities
        for options in datamodel.get("documents", ()):
            spec = DocSpec.from_options(options)
            entity = entities.get(spec.name)
            if entity is None:
                continue
            plan = RowPlan(entity, ((),), inherit_spec(datamodel, spec.name), spec.identity)
            self._plans[spec.folder] = (spec, plan)

    def _place(self, path: str) -> tuple[str, bool, str, str] | None:
        """(root, verification, folder, name) of a data file, None for anything else."""
        parts = path.split("/")
        if len(parts) == 3:
            root, folder, name = parts
            verification = False
        elif len(parts) == 4 and parts[1] == _VERIFICATION:
            root, _, folder, name = parts
            verification = True
        else:
            return None
        if folder not in self._plans or not name.endswith(".json"):
            return None
        return root, verification, folder, name

    def series(self, path: str) -> str | None:
        placed = self._place(path)
        if placed is None:
            return None
        return f"{posixpath.dirname(path)}/{series_and_stamp(placed[3])[0]}"

    def rows(self, path: str, content: bytes) -> list[Row]:
        """The document rows of the version at ``path`` (as a query would give them)."""
        placed = self._place(path)
        return [] if placed is None else self._rows(placed, parse_document(content))

    def _rows(self, placed: tuple[str, bool, str, str], doc: Any) -> list[Row]:
        root, verification, folder, name = placed
        spec, plan = self._plans[folder]
        identity = identity_of(doc, spec.identity) if isinstance(doc, dict) else None
        ctx = DocContext(
            root,
            verification,
            folder,
            name,
            spec.file,
            identity or f"~{series_and_stamp(name)[0]}",
        )
        return list(build_rows(plan, doc, ctx))

    def objects(self, path: str, content: bytes) -> Iterator[ObjectRef]:
        placed = self._place(path)
        if placed is None:
            return
        spec, plan = self._plans[placed[2]]
        entity = plan.entity
        doc = parse_document(content)
        # One document per file: its whole content is the object's.
        whole = _digest(doc) if spec.file is None else None
        file_field = plan.synthetic.get("Fil")
        for row in self._rows(placed, doc):
            key = join_key(tuple(row.get(k) for k in entity.key))
            if whole is not None:
                yield entity.name, key, whole
            else:  # a geografi element: its row, less the name of the file it was in
                yield entity.name, key, _digest({k: v for k, v in row.items() if k != file_field})


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()
