"""The FT replica's data: the recorded ``$metadata`` and rows, typed by ``$metadata``.

Reads the canonical replica data in ``data/ft/`` (see its ``ATTRIBUTION.md``) into plain rows,
following the recording rules: the SQLite dump's ``''`` and the CSV files' ``NA`` are null, the
texts ``true``/``false`` (any case) are booleans, integers are typed by their ``Edm.Int*`` type
and ``Edm.DateTime`` values stay the service's text. ``Stemmetype`` holds the four confirmed
codes; every other entity set of ``$metadata`` without a recording is empty.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeAlias
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeElementTree

from resolvers.odata.replica.expr import JsonValue, Row, data_datetime

__all__ = [
    "DEFAULT_DATA_DIR",
    "MISSING_SETS",
    "FtData",
    "FtEntitySet",
    "FtProperty",
    "load_ft_data",
]

DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parents[3] / "data" / "ft"

_EDM: Final = "{http://schemas.microsoft.com/ado/2009/11/edm}"
_METADATA_FILE: Final = "metadata_2021-05.xml"
# Entity set → recorded file. The SQLite dump stored JSON null and "" both as ''; R wrote null
# as an unquoted NA (no real value is the text "NA").
_SQLITE_FILES: Final = {
    "Aktør": "ft.oda.Aktør.sqlite.db",
    "Aktørtype": "ft.oda.Aktørtype.sqlite.db",
    "AktørAktørRolle": "ft.oda.AktørAktørRolle.sqlite.db",
    "Afstemningstype": "ft.oda.Afstemningstype.sqlite.db",
}
_CSV_FILES: Final = {
    "Afstemning": "ballot_info_raw.csv",
    "Stemme": "northatlantic_votes_raw.csv",
}
# No raw Stemmetype rows survive; the codes are confirmed, their update time is not.
_STEMMETYPE_DATE: Final = "2014-09-09T09:05:59.653"
_STEMMETYPE: Final = ((1, "For"), (2, "Imod"), (3, "Fravær"), (4, "Hverken for eller imod"))
MISSING_SETS: Final = frozenset({"Sambehandlinger"})
"""Sets listed in ``$metadata`` that the real service answers with 404."""
_INT_TYPES: Final = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"})


@dataclass(frozen=True, slots=True)
class FtProperty:
    """A primitive property of an entity type, as ``$metadata`` declares it."""

    name: str
    type: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class FtEntitySet:
    """An entity set of the container, with its entity type's properties in order."""

    name: str
    entity_type: str
    key: str
    properties: tuple[FtProperty, ...]
    types: Mapping[str, str]
    """Property name → ``Edm`` type, in ``$metadata`` order."""


@dataclass(frozen=True, slots=True)
class FtData:
    """The served data: the ``$metadata`` document, entity sets, and their rows by ``id``."""

    metadata: bytes
    """The EDMX document as served (the recorder's comment line removed)."""
    entity_sets: Mapping[str, FtEntitySet]
    rows: Mapping[str, tuple[Row, ...]]
    """Entity set name → rows in ascending ``id`` order, keyed by property name."""
    index: Mapping[str, Mapping[int, Row]] = field(repr=False)
    """Entity set name → ``id`` → row."""


def load_ft_data(data_dir: Path = DEFAULT_DATA_DIR) -> FtData:
    """Load the FT replica data from ``data_dir`` (parsed once per directory and process).

    Raises:
        OSError: a file is missing.
        ValueError: a file does not fit ``$metadata``.
    """
    return _load(data_dir.resolve())


@functools.lru_cache(maxsize=4)
def _load(data_dir: Path) -> FtData:
    metadata = (data_dir / _METADATA_FILE).read_bytes()
    if metadata.startswith(b"<!--"):
        metadata = metadata.split(b"\n", 1)[1]
    entity_sets = _parse_metadata(metadata)
    rows: dict[str, tuple[Row, ...]] = {}
    for entity_set in entity_sets.values():
        loaded = _load_rows(data_dir, entity_set)
        rows[entity_set.name] = tuple(sorted(loaded, key=lambda row: _int(row["id"])))
    index = {name: {_int(row["id"]): row for row in items} for name, items in rows.items()}
    return FtData(metadata, entity_sets, rows, index)


def _int(value: JsonValue) -> int:
    if not isinstance(value, int):
        raise ValueError(f"id {value!r} is not an integer")
    return value


def _parse_metadata(document: bytes) -> dict[str, FtEntitySet]:
    root: Element = SafeElementTree.fromstring(document)
    types: dict[str, Element] = {}
    for schema in root.iter(f"{_EDM}Schema"):
        for entity_type in schema.iter(f"{_EDM}EntityType"):
            types[f"{schema.get('Namespace')}.{entity_type.get('Name')}"] = entity_type
    sets: dict[str, FtEntitySet] = {}
    for container in root.iter(f"{_EDM}EntityContainer"):
        for element in container.iter(f"{_EDM}EntitySet"):
            name, type_name = element.get("Name", ""), element.get("EntityType", "")
            sets[name] = _entity_set(name, type_name, types[type_name])
    return sets


def _entity_set(name: str, type_name: str, entity_type: Element) -> FtEntitySet:
    properties = tuple(
        FtProperty(p.get("Name", ""), p.get("Type", ""), p.get("Nullable", "true") != "false")
        for p in entity_type.findall(f"{_EDM}Property")
    )
    keys = [ref.get("Name", "") for ref in entity_type.iter(f"{_EDM}PropertyRef")]
    if keys != ["id"]:
        raise ValueError(f"entity type {type_name} has key {keys}, expected ['id']")
    types = {p.name: p.type for p in properties}
    return FtEntitySet(name, type_name, "id", properties, types)


def _load_rows(data_dir: Path, entity_set: FtEntitySet) -> list[Row]:
    name = entity_set.name
    if name in _SQLITE_FILES:
        return _read_sqlite(data_dir / _SQLITE_FILES[name], entity_set)
    if name in _CSV_FILES:
        return _read_csv(data_dir / _CSV_FILES[name], entity_set)
    if name == "Stemmetype":
        return [
            {"id": code, "type": text, "opdateringsdato": _STEMMETYPE_DATE}
            for code, text in _STEMMETYPE
        ]
    return []


def _read_sqlite(path: Path, entity_set: FtEntitySet) -> list[Row]:
    if not path.is_file():
        raise FileNotFoundError(path)
    # Read-only and immutable: no journal files, works on a read-only checkout.
    uri = f"{path.as_uri()}?mode=ro&immutable=1"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        cursor = connection.execute(f'SELECT * FROM "{entity_set.name}"')
        columns = [column[0] for column in cursor.description]
        records = cursor.fetchall()
    return _convert_records(path, columns, records, entity_set, null_text="")


def _read_csv(path: Path, entity_set: FtEntitySet) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        columns = next(reader)
        return _convert_records(path, columns, reader, entity_set, null_text="NA")


_Converter: TypeAlias = Callable[[object], JsonValue]


def _convert_records(
    path: Path,
    columns: Sequence[str],
    records: Iterable[Sequence[object]],
    entity_set: FtEntitySet,
    null_text: str,
) -> list[Row]:
    """Rows keyed by property in ``$metadata`` order, values typed by their ``Edm`` type."""
    if sorted(columns) != sorted(entity_set.types):
        raise ValueError(f"{path.name}: columns {columns} differ from {entity_set.name}")
    plan = [
        (name, columns.index(name), _converter(edm, null_text))
        for name, edm in entity_set.types.items()
    ]
    rows: list[Row] = []
    for number, record in enumerate(records, start=1):
        if len(record) != len(columns):
            raise ValueError(f"{path.name}: record {number} has {len(record)} fields")
        try:
            rows.append({name: convert(record[at]) for name, at, convert in plan})
        except ValueError as exc:
            raise ValueError(f"{path.name}: record {number}: {exc}") from exc
    return rows


def _converter(edm: str, null_text: str) -> _Converter:
    convert = _CONVERTERS.get(edm, _to_text)

    def converter(value: object) -> JsonValue:
        return None if value is None or value == null_text else convert(value)

    return converter


def _to_int(value: object) -> JsonValue:
    if type(value) is int:  # SQLite gives ints; exact type check also refuses bool
        return value
    if type(value) is not str:
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def _to_bool(value: object) -> JsonValue:
    text = str(value).lower()
    if text not in ("true", "false"):
        raise ValueError(f"{value!r} is not a boolean")
    return text == "true"


def _to_datetime_text(value: object) -> JsonValue:
    text = str(value)
    data_datetime(text)  # rejects a malformed value now rather than in a request
    return text


def _to_text(value: object) -> JsonValue:
    return str(value)


_CONVERTERS: Final[Mapping[str, _Converter]] = {
    **dict.fromkeys(_INT_TYPES, _to_int),
    "Edm.Boolean": _to_bool,
    "Edm.DateTime": _to_datetime_text,
}
