"""The file downloads a register offers, and the machine-readable catalogue ``/catalog.json``.

A register offers the downloads its ``4. Tabular_data/Automated_Predefined_Filedownloads.json``
names (``"All"``: every entity). The gateway generates each of them on request from the
datamodel, as a total export of the current data (``FileDownloadType`` 1, ``TypeOfData`` 1),
in every format of :data:`gateway.exports.formats.FORMATS`.

Download URLs name an entity by its GraphQL type name without the register prefix:
``FT_Stemme`` → ``/FT/v1/download/Stemme.csv`` (ASCII, as transliterated; ``Aktør`` →
``Aktoer``).

The catalogue lists, for the caller's level: registers (rc, RelationVersions, endpoints),
entities (GraphQL name, key, level, whether the caller may read it), fields (GraphQL and
source name, type, nullability, level, access), relations per RelationVersion, and the
download URLs. With per-level schemas on, what the caller may not see is left out, as the
schema leaves it out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.dls.attribution import attribution
from gateway.exports.files import ExportFileSettings
from gateway.exports.formats import FORMATS
from gateway.history.temporal_fields import is_temporal
from gateway.model.datamodel import Entity, Register, Relation

if TYPE_CHECKING:
    from gateway.graphql.execute import Runtime
    from gateway.graphql.limits import LimitSettings


@dataclass(frozen=True, slots=True)
class Served:
    """What the exports and the catalogue use of the running gateway, and nothing more."""

    registers: Mapping[str, Register]
    runtime: Runtime
    limits: LimitSettings
    anonymous_level: int
    per_level_schema: bool
    introspection: bool
    # Per register, RelationVersion of the served (newest) datamodel → its external version
    # ``/{REG}/v{N}``; the same number when the register has one datamodel version.
    numbers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Per register, every external version served: (number, datamodel version, RelationVersion).
    externals: Mapping[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    # Where finished export files are kept (Parquet; CSV/NDJSON asked for as files).
    files: ExportFileSettings = field(default_factory=ExportFileSettings)
    # The registers whose annex downloads are written on their schedule (exports/scheduled.py).
    scheduled: tuple[str, ...] = ()

    def number(self, register: str, relation_version: str) -> str:
        """The external version serving ``relation_version`` of the newest datamodel."""
        return self.numbers.get(register, {}).get(relation_version, relation_version)


__all__ = [
    "ANNEX",
    "CSVW_SUFFIX",
    "Downloads",
    "catalogue",
    "download_path",
    "export_name",
    "read_downloads",
]

log = logging.getLogger("gateway.exports.routes")

ANNEX = Path("4. Tabular_data") / "Automated_Predefined_Filedownloads.json"

# The CSVW metadata of a CSV export: ``{exportName}.csv-metadata.json`` beside it.
CSVW_SUFFIX = ".csv-metadata.json"


@dataclass(frozen=True, slots=True)
class Downloads:
    """A register's predefined file downloads: the annex entries and the entities offered."""

    entries: tuple[Mapping[str, Any], ...]
    offered: frozenset[str]  # entity source names


def read_downloads(register: Register) -> Downloads:
    """Read the annex of ``register`` (validated when the register loaded)."""
    path = Path(register.path) / ANNEX
    if not register.path or not path.is_file():
        return Downloads((), frozenset())
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read %s (%s); no file downloads", register.name, path, exc)
        return Downloads((), frozenset())
    entries = (
        tuple(e for e in document if isinstance(e, dict)) if isinstance(document, list) else ()
    )
    names = {str(e.get("EntityName", "")) for e in entries}
    entities = register.datamodel.entities
    offered = set(entities) if "All" in names else names & set(entities)
    return Downloads(entries, frozenset(offered))


def export_name(register: Register, entity: Entity) -> str:
    """The entity's name in download URLs: its GraphQL type name without ``{REG}_``."""
    return entity.graphql_name.removeprefix(f"{register.name}_")


def download_path(register: Register, version: str, entity: Entity, fmt: str) -> str:
    """``/{REG}/v{N}/download/{Entity}.{fmt}``."""
    return f"/{register.name}/v{version}/download/{export_name(register, entity)}.{fmt}"


def _versions(register: Register) -> list[str]:
    return sorted(register.relation_versions, key=int)


class _Catalogue:
    def __init__(
        self,
        gateway: Served,
        level: int,
        downloads: Mapping[str, Downloads],
        scheduled: Callable[[Register], list[dict[str, Any]]],
    ) -> None:
        self.gateway = gateway
        self.scheduled = scheduled
        self.level = level
        self.downloads = downloads
        self.hide = gateway.per_level_schema
        self.sdl = gateway.introspection  # the SDL downloads exist only then
        self.registers = gateway.registers

    def document(self, caller: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "caller": dict(caller),
            "levels": {
                "0": "public",
                "1": "known user",
                "2": "restricted",
                "3": "specially restricted",
            },
            "graphql": self.endpoint("/graphql"),
            "downloads": _conventions(),
            "registers": [self.register(r) for r in self.registers.values()],
        }

    def endpoint(self, path: str) -> dict[str, str]:
        return {"endpoint": path, "schema": f"{path}/schema"} if self.sdl else {"endpoint": path}

    def register(self, register: Register) -> dict[str, Any]:
        newest = register.newest_version
        entities = [
            self.entity(register, e)
            for e in register.datamodel.entities.values()
            if not self.hide or self.level >= register.entity_level(e.name)
        ]
        credit = attribution(register)
        return {
            "name": register.name,
            "rc": register.rc,
            "attribution": credit.as_json() if credit is not None else None,
            "relationVersions": [
                {
                    "number": v,
                    "newest": v == newest,
                    **self.endpoint(f"/{register.name}/v{self.gateway.number(register.name, v)}"),
                }
                for v in _versions(register)
            ],
            "externalVersions": [
                {
                    "number": number,
                    "datamodelVersion": datamodel,
                    "relationVersion": relation,
                    **self.endpoint(f"/{register.name}/v{number}"),
                }
                for number, datamodel, relation in self.gateway.externals.get(register.name, ())
            ],
            "predefinedFileDownloads": [dict(e) for e in self.downloads[register.name].entries],
            "scheduledFiles": [
                {
                    **item,
                    "url": f"/{register.name}/v{self.gateway.number(register.name, newest)}"
                    f"/files/{item['name']}",
                }
                for item in self.scheduled(register)
            ],
            "entities": entities,
        }

    def entity(self, register: Register, entity: Entity) -> dict[str, Any]:
        level = register.entity_level(entity.name)
        fields = []
        for f in entity.fields:
            field_level = register.field_level(entity.name, f.source)
            if (self.hide and field_level > self.level) or is_temporal(f):
                continue  # (the temporal fields are no column of the files)
            fields.append(
                {
                    "name": f.name,
                    "source": f.source,
                    "type": f.type.value,
                    "nullable": f.nullable,
                    "level": field_level,
                    "accessible": self.level >= field_level,
                }
            )
        relations = [
            item
            for version in _versions(register)
            for relation in register.relation_versions[version]
            if relation.source_entity == entity.name
            for item in [self.relation(register, entity, version, relation)]
            if item is not None
        ]
        offered = entity.name in self.downloads[register.name].offered
        return {
            "name": entity.name,
            "graphqlName": entity.graphql_name,
            "exportName": export_name(register, entity),
            "description": entity.description,
            "key": list(entity.key),
            "level": level,
            "accessible": self.level >= level,
            "fields": fields,
            "relations": relations,
            "downloads": [
                {
                    "relationVersion": v,
                    **{
                        fmt: download_path(
                            register, self.gateway.number(register.name, v), entity, fmt
                        )
                        for fmt in FORMATS
                    },
                    "csvMetadata": download_path(
                        register, self.gateway.number(register.name, v), entity, "csv"
                    ).removesuffix(".csv")
                    + CSVW_SUFFIX,
                    **self.historical(register, entity, v),
                }
                for v in _versions(register)
            ]
            if offered
            else [],
        }

    def historical(self, register: Register, entity: Entity, version: str) -> dict[str, Any]:
        """The delta and temporal downloads the annex declares for ``entity`` (for a register
        whose row versions the gateway records)."""
        if register.events is None:
            return {}
        out: dict[str, Any] = {}
        csv = download_path(register, self.gateway.number(register.name, version), entity, "csv")
        for entry in self.downloads[register.name].entries:
            if entry.get("EntityName") not in ("All", entity.name):
                continue
            frequency = int(entry.get("Frequency", 1))
            if int(entry.get("FileDownloadType", 1)) == 2:
                out["delta"] = {
                    "frequencyDays": frequency,
                    "csv": csv + "?since={since}&until={until}",
                    "typeOfData": int(entry.get("TypeOfData", 1)),
                }
            elif int(entry.get("TypeOfData", 1)) in (2, 3):
                out["versions"] = {
                    "frequencyDays": frequency,
                    "csv": csv + "?versions=1",
                    "typeOfData": int(entry.get("TypeOfData", 1)),
                }
        return out

    def relation(
        self, register: Register, entity: Entity, version: str, relation: Relation
    ) -> dict[str, Any] | None:
        target_register = self.registers.get(relation.target_register)
        source_field = entity.by_source[relation.source_field]
        item: dict[str, Any] = {
            "relationVersion": version,
            "alias": relation.alias,
            "toMany": relation.to_many,
            "sourceField": source_field.name,
            "targetRegister": relation.target_register,
            "targetRc": relation.target_rc,
        }
        if target_register is None:
            # The target register is not served here: the relation is not in the schema.
            return None if self.hide else {**item, "served": False, "accessible": False}
        target = target_register.datamodel.entities[relation.target_entity]
        levels = (
            target_register.entity_level(target.name),
            register.field_level(entity.name, relation.source_field),
            target_register.field_level(target.name, relation.target_field),
        )
        level = max(levels)
        if self.hide and level > self.level:
            return None
        return {
            **item,
            "targetEntity": target.graphql_name,
            "targetField": target.by_source[relation.target_field].name,
            "served": True,
            "level": level,
            "accessible": self.level >= level,
        }


def _conventions() -> dict[str, Any]:
    return {
        "url": "/{REG}/v{N}/download/{exportName}.{format}",
        "formats": {fmt: media for fmt, (media, _) in FORMATS.items()},
        "parameters": {
            "where": 'JSON shaped like the GraphQL where input, e.g. {"afstemningid":{"eq":1}}',
            "order": 'JSON shaped like the GraphQL order input, e.g. [{"id":"DESC"}]; '
            "default: the key",
            "since": "ISO 8601: the changes from then (FileDownloadType 2, a delta), until "
            "until (default now): one row per object changed, as it stood at the end, with "
            "action i/u/d and its version's registreringFra/-Til and virkningFra/-Til",
            "versions": "1: every version kept (TypeOfData 2/3), with its registration "
            "and validity periods",
        },
        "scheduledFiles": "per register: the annex's downloads written on their Frequency "
        "(daily deltas of the day before, weekly totals and versions to Monday 00:00 UTC) as "
        "CSV files at the annex's SecurityLevel, served from /{REG}/v{N}/files/{name} with "
        "Content-Length, ETag and Range; listed here for the caller's level",
        "rowCount": "header X-Total-Count: the rows matching where when the export started "
        "(of a finished file: the rows it holds)",
        "finished": "Parquet, and CSV/NDJSON on HEAD, with a Range header or ?finished=1, "
        "are built once into a file and served with Content-Length, ETag, Accept-Ranges "
        "and single byte ranges (206/416), If-None-Match (304); a plain GET of CSV/NDJSON "
        "streams",
        "csvMetadata": "{exportName}.csv-metadata.json beside each CSV: W3C CSVW column "
        "types (codes as strings) and ready pandas.read_csv arguments (dls:pandas)",
        "nulls": 'CSV: null is an empty field, an empty text is ""; Parquet/NDJSON: null',
        "dateTimes": "Parquet: timestamp[us, tz=UTC]; CSV/NDJSON: ISO 8601 as served",
        "attribution": "per register (attribution); exports carry it in a Link header "
        "(rel=author), the Parquet key-value metadata and the CSVW file",
        "columns": "the fields the caller's level may read, in datamodel order; others are absent",
        "interrupted": "an export that fails after it started ends without completing the "
        "HTTP response (no final chunk), so no client mistakes it for a whole file",
    }


def catalogue(
    gateway: Served,
    caller: Mapping[str, Any],
    level: int,
    downloads: Mapping[str, Downloads],
    scheduled: Callable[[Register], list[dict[str, Any]]] = lambda register: [],
) -> dict[str, Any]:
    """The catalogue document as a caller of ``level`` sees it; ``scheduled`` lists the
    scheduled files of a register that it may read."""
    return _Catalogue(gateway, level, downloads, scheduled).document(caller)
