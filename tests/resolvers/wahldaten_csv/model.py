"""The DE register's descriptors for the tests: paths, Source.json and the datamodel."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from gateway.dls import loader_for
from gateway.model.datamodel import Datamodel, Register

ROOT = Path(__file__).resolve().parents[3]
REGISTER_DIR = ROOT / "registers" / "DE"
RC_DIR = REGISTER_DIR / "rc00005"
DATA_DIR = ROOT / "data" / "de"


def source_json() -> dict[str, object]:
    """The shipped Source.json."""
    loaded: dict[str, object] = json.loads((RC_DIR / "Source.json").read_text(encoding="utf-8"))
    return loaded


@cache
def datamodel() -> Datamodel:
    """The DE datamodel, loaded by the XSD loader as the gateway loads it."""
    spec = source_json()["datamodel"]
    assert isinstance(spec, dict)
    return loader_for(spec["format"])(RC_DIR / "2. Datamodel" / spec["path"], "DE", spec)


def register(options: dict[str, object] | None = None) -> Register:
    """A DE Register with the shipped datamodel and ``options`` as its source."""
    return Register(
        name="DE",
        rc="rc00005",
        datamodel=datamodel(),
        relation_versions={"1": ()},
        default_level=0,
        entity_levels={},
        field_levels={},
        source=options or {},
        path=str(RC_DIR),
    )
