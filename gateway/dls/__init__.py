"""Datamodel loaders: an upstream's own model (EDMX, JSON Schema, XSD) → :class:`Datamodel`.

Each loader is ``load(path, register, options) -> Datamodel`` where ``path`` is the file or
folder named by ``Source.json`` ``datamodel.path`` inside ``2. Datamodel/`` and ``options``
is the rest of that block.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.model.datamodel import Datamodel

__all__ = ["LOADERS", "Loader", "loader_for"]

Loader = Callable[[Path, str, Mapping[str, Any]], Datamodel]

# format -> "module:function"
LOADERS: dict[str, str] = {
    "edmx": "gateway.dls.edmx:load_edmx",
    "jsonschema": "gateway.dls.jsonschema:load_json_schemas",
    "xsd": "gateway.dls.xsd:load_xsd",
}


def loader_for(fmt: str) -> Loader:
    """The loader for a datamodel format (KeyError for an unknown one)."""
    module_name, _, attr = LOADERS[fmt].partition(":")
    func: Loader = getattr(importlib.import_module(module_name), attr)
    return func
