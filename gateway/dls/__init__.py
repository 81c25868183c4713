"""Datamodel loaders: an upstream's own model (EDMX, JSON Schema, XSD) → :class:`Datamodel`.

Each loader is ``load(path, register, options) -> Datamodel`` where ``path`` is the file or
folder named by ``Source.json`` ``datamodel.path`` inside ``2. Datamodel/`` and ``options``
is the rest of that block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.dls import jsonschema, xmi, xsd
from gateway.dls.edmx import load_edmx
from gateway.dls.jsonschema import load_json_schemas
from gateway.dls.xsd import load_xsd
from gateway.model.datamodel import Datamodel

__all__ = ["LOADERS", "SPELLINGS", "Loader", "loader_for"]

Loader = Callable[[Path, str, Mapping[str, Any]], Datamodel]

LOADERS: dict[str, Loader] = {
    "edmx": load_edmx,
    "jsonschema": load_json_schemas,
    "xsd": load_xsd,
    "xmi": xmi.load_xmi,
}


# Per format, the older spellings of its options that it still reads (old -> name).
SPELLINGS: dict[str, Mapping[str, str]] = {
    "edmx": {},
    "jsonschema": jsonschema.SPELLINGS,
    "xsd": xsd.SPELLINGS,
    "xmi": xmi.SPELLINGS,
}


def loader_for(fmt: str) -> Loader:
    """The loader for a datamodel format (KeyError for an unknown one)."""
    return LOADERS[fmt]
