"""Turning one verified VALG document into rows of one entity.

A document entity has one row per file (or, for the geografi files, which are arrays, one
row per element); a nested-array entity has one row per array element, reached by its path
from the document. Rows carry the synthetic fields the datamodel declares:

- ``Noegle``: ``root/[verifikation/]folder/[file/]identity`` for documents, then
  ``/Property/NNNNN`` per array level (stable while the served version does not change);
- ``ForaelderNoegle`` (the parent's ``Noegle``) and ``Position`` for nested rows;
- ``Valgmappe``, ``Verifikation`` and ``Fil`` (the served file, relative to the root).

Values not found on the element itself are taken from the ancestors that hand them down
(the ``inherit`` configuration), then converted to the field's type (ISO 8601 for dates).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model.datamodel import Entity, ScalarType
from gateway.model.query import Row
from resolvers.valg_sftp.codec import convert, identity_of

__all__ = ["DocContext", "RowPlan", "build_rows", "document_key"]

_SYNTHETIC = {
    "Noegle",
    "Valgmappe",
    "Arkiveret",
    "Verifikation",
    "Fil",
    "ForaelderNoegle",
    "Position",
}


@dataclass(frozen=True, slots=True)
class DocContext:
    """Where a document comes from."""

    root: str
    verification: bool
    folder: str
    name: str
    file: str | None
    identity: str
    archived: bool = False
    """The root was moved to the archive folder (the election was discarded)."""

    @property
    def area(self) -> str:
        """The folder below the root: ``valgresultater`` or ``verifikation/valgresultater``."""
        return f"verifikation/{self.folder}" if self.verification else self.folder

    @property
    def key(self) -> str:
        """The document's key (for a geografi file: the prefix of its elements' keys)."""
        base = f"{self.root}/{self.area}"
        return f"{base}/{self.file}" if self.file else f"{base}/{self.identity}"


def document_key(ctx: DocContext, element_identity: str | None = None) -> str:
    """The ``Noegle`` of a document row (or of a geografi element)."""
    return ctx.key if element_identity is None else f"{ctx.key}/{element_identity}"


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    source: str
    kind: ScalarType
    dotted: tuple[str, ...]


class RowPlan:
    """How to make rows of ``entity`` from documents of one dataset."""

    def __init__(
        self,
        entity: Entity,
        paths: tuple[tuple[str, ...], ...],
        inherit: Mapping[tuple[str, ...], frozenset[str]],
        identity_fields: list[str],
        value_field: str = "Vaerdi",
    ) -> None:
        self.entity = entity
        self.paths = paths
        self.inherit = inherit
        self.identity_fields = identity_fields
        self.value_field = value_field
        self.columns = [
            _Column(f.name, f.source, f.type, tuple(f.source.split(".")))
            for f in entity.fields
            if f.source not in _SYNTHETIC
        ]
        self.synthetic = {f.source: f.name for f in entity.fields if f.source in _SYNTHETIC}


def build_rows(plan: RowPlan, doc: Any, ctx: DocContext) -> Iterator[Row]:
    """The rows of ``plan.entity`` in ``doc`` (unordered)."""
    for path in plan.paths:
        if isinstance(doc, list):
            if not path:
                yield from _array_document(plan, doc, ctx)
            continue
        if not isinstance(doc, dict):
            continue
        if not path:
            yield _row(plan, doc, [((), doc)], ctx, document_key(ctx), None, None, doc)
            continue
        yield from _walk(plan, doc, path, 0, [((), doc)], document_key(ctx), ctx, doc)


def _array_document(plan: RowPlan, doc: list[Any], ctx: DocContext) -> Iterator[Row]:
    for element in doc:
        if not isinstance(element, dict):
            continue
        identity = identity_of(element, plan.identity_fields) or ""
        key = document_key(ctx, identity)
        yield _row(plan, element, [((), element)], ctx, key, None, None, element)


def _walk(
    plan: RowPlan,
    node: dict[str, Any],
    path: tuple[str, ...],
    depth: int,
    ancestors: list[tuple[tuple[str, ...], Any]],
    key: str,
    ctx: DocContext,
    doc: dict[str, Any],
) -> Iterator[Row]:
    prop = path[depth]
    items = node.get(prop)
    if not isinstance(items, list):
        return
    level = path[: depth + 1]
    for position, item in enumerate(items):
        child_key = f"{key}/{prop}/{position:05d}"
        if depth + 1 == len(path):
            yield _row(plan, item, [*ancestors, (level, item)], ctx, child_key, key, position, doc)
        elif isinstance(item, dict):
            yield from _walk(
                plan, item, path, depth + 1, [*ancestors, (level, item)], child_key, ctx, doc
            )


def _lookup(obj: Any, dotted: tuple[str, ...]) -> tuple[bool, Any]:
    for part in dotted:
        if not isinstance(obj, dict) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


def _row(
    plan: RowPlan,
    item: Any,
    chain: list[tuple[tuple[str, ...], Any]],
    ctx: DocContext,
    key: str,
    parent_key: str | None,
    position: int | None,
    doc: Any,
) -> Row:
    row: Row = {}
    valgdag = doc.get("Valgdag") if isinstance(doc, dict) else None
    for column in plan.columns:
        if isinstance(item, dict):
            found, value = _lookup(item, column.dotted)
        else:
            # An element of an array of scalars.
            found, value = column.source == plan.value_field, item
        if not found:
            value = _inherited(plan, chain, column.source)
        row[column.name] = convert(value, column.kind, valgdag)
    synthetic = plan.synthetic
    values: dict[str, Any] = {
        "Noegle": key,
        "Valgmappe": ctx.root,
        "Arkiveret": ctx.archived,
        "Verifikation": ctx.verification,
        "Fil": f"{ctx.area}/{ctx.name}",
        "ForaelderNoegle": parent_key,
        "Position": position,
    }
    for source, name in synthetic.items():
        row[name] = values[source]
    return row


def _inherited(plan: RowPlan, chain: list[tuple[tuple[str, ...], Any]], source: str) -> Any:
    # Nearest ancestor first; the element itself is the last entry of the chain.
    for level, obj in reversed(chain[:-1]):
        if source in plan.inherit.get(level, ()) and isinstance(obj, dict) and source in obj:
            return obj[source]
    return None
