"""Loading and validating register folders in the DLS layout (the DLS Validator's job).

A register folder::

    <REG>/General/DLS_metadata.json
    <REG>/<rc>/2. Datamodel/<datamodel>            (named by Source.json)
    <REG>/<rc>/2. Datamodel/Relations.json
    <REG>/<rc>/3. Security/Security_Model.json
    <REG>/<rc>/4. Tabular_data/Automated_Predefined_Filedownloads.json
    <REG>/<rc>/Source.json

Validation reports in the DLS vocabulary: an *error* drops what it concerns (a relation, or a
whole register whose datamodel cannot be read) and makes the report fail; a *warning* keeps it.

``Source.json`` names the register's kind, which must be installed
(:func:`gateway.sources.kinds.kinds`); the kind checks the rest of its options: their problems
are errors of the register (it is not loaded), old spellings are warnings.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from gateway.dls import LOADERS, SPELLINGS, loader_for
from gateway.dls.report import Message, Report
from gateway.model.datamodel import Datamodel, Register, Relation
from gateway.model.errors import DescriptorError
from gateway.model.naming import graphql_name
from gateway.sources.kinds import kinds
from gateway.sources.options import old_spellings

__all__ = ["Message", "Report", "load_registers", "relations_skeleton"]

DATAMODEL = "2. Datamodel"
SECURITY = "3. Security"
TABULAR = "4. Tabular_data"
_RC = re.compile(r"^rc\d{5}$")
_LAYOUT = (
    "General/DLS_metadata.json, and one rcNNNNN/ folder with Source.json, "
    "'2. Datamodel/' (the datamodel and Relations.json), '3. Security/Security_Model.json' "
    "and '4. Tabular_data/'"
)


@cache
def _schema(annex: str) -> dict[str, Any]:
    folder = resources.files("gateway.dls.annex_schemas")
    text = folder.joinpath(f"{annex}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _read_json(path: Path, report: Report, annex: str) -> Any | None:
    """Parse ``path`` and check it against the annex schema; None (and an error) if unusable."""
    if not path.is_file():
        report.error(
            path,
            annex,
            "the file is missing",
            f"create {path.name} (the layout of a register folder: {_LAYOUT})",
        )
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.error(path, annex, f"not valid JSON: {exc}", "fix the JSON syntax")
        return None
    if annex == "Relations":
        # Relations are checked one by one so that a bad relation drops only itself.
        return document
    problems = sorted(
        jsonschema.Draft202012Validator(_schema(annex)).iter_errors(document), key=str
    )
    for problem in problems:
        where = "/".join(str(p) for p in problem.absolute_path) or "(document)"
        report.error(path, f"{annex} {where}", problem.message, f"follow {annex}.schema.json")
    return None if problems else document


def load_registers(
    root: Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    previous_relations: Mapping[str, Any] | None = None,
    include: Iterable[str] | None = None,
) -> Report:
    """Load and validate every register folder below ``root`` (or ``root`` itself).

    ``overrides`` replaces ``Source.json`` options per register (e.g. a replica's URL).
    ``previous_relations`` maps a register name to its previously committed Relations.json
    document; when absent, the committed version is read from git if ``root`` is in a work tree.
    """
    report = Report()
    folders = (
        [root] if (root / "General").is_dir() else sorted(p for p in root.iterdir() if p.is_dir())
    )
    loaded: list[tuple[str, str, Path, Datamodel, Mapping[str, Any]]] = []
    for folder in folders:
        item = _load_register_base(folder, report, (overrides or {}).get(folder.name, {}))
        if item is not None:
            loaded.append(item)
    if not loaded and not report.errors:
        report.error(
            root, "registers", "no register folder found", "point at registers/ or one register"
        )
    rcs = {rc: name for name, rc, *_ in loaded}
    models = {name: model for name, _, _, model, _ in loaded}
    for name, rc, rc_dir, model, source in loaded:
        previous = (previous_relations or {}).get(name)
        if previous is None and previous_relations is None:
            previous = _committed(rc_dir / DATAMODEL / "Relations.json")
        versions = _load_relations(name, rc_dir, model, rcs, models, report, previous)
        levels = _load_security(rc_dir, model, report)
        _check_downloads(rc_dir, model, report)
        if levels is None:
            continue
        default, entity_levels, field_levels = levels
        report.registers.append(
            Register(
                name=name,
                rc=rc,
                datamodel=model,
                relation_versions=versions,
                default_level=default,
                entity_levels=entity_levels,
                field_levels=field_levels,
                source=source,
                path=str(rc_dir),
            )
        )
    return report


def _load_register_base(
    folder: Path, report: Report, override: Mapping[str, Any]
) -> tuple[str, str, Path, Datamodel, Mapping[str, Any]] | None:
    name = folder.name
    if not re.fullmatch(r"[A-Z][A-Z0-9]*", name):
        report.error(
            folder,
            "register",
            f"{name!r} is not a register name",
            "use upper-case letters, e.g. FT",
        )
        return None
    if _read_json(folder / "General" / "DLS_metadata.json", report, "DLS_metadata") is None:
        return None
    rc_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and _RC.match(p.name))
    if len(rc_dirs) != 1:
        report.error(
            folder,
            "register",
            f"expected one rcNNNNN folder, found {len(rc_dirs)}",
            "keep exactly one",
        )
        return None
    rc_dir = rc_dirs[0]
    source = _read_json(rc_dir / "Source.json", report, "Source")
    if source is None:
        return None
    if not _check_kind(rc_dir / "Source.json", source, override, report):
        return None
    source = {**source, **override}
    spec = source["datamodel"]
    if spec["format"] not in LOADERS:
        report.error(
            rc_dir / "Source.json",
            "datamodel.format",
            f"unknown datamodel format {spec['format']!r}",
            f"use one of {', '.join(sorted(LOADERS))}",
        )
        return None
    for warning in old_spellings(spec, SPELLINGS[spec["format"]], "datamodel"):
        report.warning(rc_dir / "Source.json", "datamodel", warning, "rename it in Source.json")
    path = rc_dir / DATAMODEL / spec["path"]
    if not path.exists():
        report.error(
            path, "datamodel", "the datamodel file is missing", "fix datamodel.path in Source.json"
        )
        return None
    try:
        model = loader_for(spec["format"])(path, name, spec)
    except DescriptorError as exc:
        report.error(path, "datamodel", exc.message, "fix the datamodel document")
        return None
    return name, rc_dir.name, rc_dir, model, source


def _check_kind(
    path: Path, source: Mapping[str, Any], override: Mapping[str, Any], report: Report
) -> bool:
    """Whether the kind is installed and its options (with the overrides) are usable."""
    name = str(source["kind"])
    found = kinds().get(name)
    if found is None:
        report.error(
            path,
            "kind",
            f"unknown source kind {name!r}",
            f"use one of: {', '.join(sorted(kinds())) or '(no kind installed)'}",
        )
        return False
    # Old spellings are the file's to fix; an override (the gateway configuration, a
    # replica) may use either.
    for warning in found.warn_options(source):
        report.warning(path, f"{name} options", warning, "rename the option in Source.json")
    problems = found.check_options({**source, **override})
    where = getattr(found.check_options, "__module__", None) or f"the {name} kind"
    for problem in problems:
        report.error(path, f"{name} options", problem, f"see {where} for the options")
    return not problems


def _committed(path: Path) -> Any | None:
    """The Relations.json committed at git HEAD, if ``path`` is tracked."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        relative = path.resolve().relative_to(Path(top).resolve())
        shown = subprocess.run(
            ["git", "show", f"HEAD:{relative.as_posix()}"],
            cwd=top,
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
        return json.loads(shown.decode("utf-8-sig"))
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _relation_label(index: int, raw: Any) -> str:
    if not isinstance(raw, dict):
        return f"relation #{index + 1}"
    return (
        f"relation #{index + 1} ({raw.get('SourceEntity')}.{raw.get('SourceField')} → "
        f"{raw.get('TargetRc')} {raw.get('TargetEntity')}.{raw.get('TargetField')})"
    )


def _load_relations(
    name: str,
    rc_dir: Path,
    model: Datamodel,
    rcs: Mapping[str, str],
    models: Mapping[str, Datamodel],
    report: Report,
    previous: Any | None,
) -> dict[str, tuple[Relation, ...]]:
    path = rc_dir / DATAMODEL / "Relations.json"
    document = _read_json(path, report, "Relations")
    if document is None:
        return {"1": ()}
    top = jsonschema.Draft202012Validator(
        {k: v for k, v in _schema("Relations").items() if k != "$defs"}
        | {"properties": {"RelationVersions": {"type": "array"}}}
    )
    problems = list(top.iter_errors(document))
    for problem in problems:
        report.error(path, "Relations", problem.message, "follow Relations.schema.json")
    if problems:
        return {"1": ()}
    relation_schema = jsonschema.Draft202012Validator(_schema("Relations")["$defs"]["relation"])
    versions: dict[str, tuple[Relation, ...]] = {}
    for v_index, version in enumerate(document["RelationVersions"]):
        number = version.get("RelationVersionNumber") if isinstance(version, dict) else None
        raws = version.get("Relations") if isinstance(version, dict) else None
        if not isinstance(number, str) or not number.isdigit() or not isinstance(raws, list):
            report.error(
                path,
                f"RelationVersions[{v_index}]",
                "needs a RelationVersionNumber (a string of digits) and a Relations list",
                'write {"RelationVersionNumber": "1", "Relations": [...]}',
            )
            continue
        if number in versions:
            report.error(path, f"RelationVersion {number}", "declared twice", "merge or renumber")
            continue
        kept: list[Relation] = []
        aliases: set[tuple[str, str]] = set()
        for index, raw in enumerate(raws):
            label = f"RelationVersion {number}, {_relation_label(index, raw)}"
            relation = _check_relation(
                name, raw, relation_schema, model, rcs, models, report, path, label
            )
            if relation is None:
                continue
            key = (relation.source_entity, relation.alias)
            entity = model.entities[relation.source_entity]
            if key in aliases or relation.alias in entity.by_name:
                report.error(
                    path,
                    label,
                    f"alias {relation.alias!r} is already used on {relation.source_entity}",
                    "give the relation a unique Alias",
                )
                continue
            aliases.add(key)
            kept.append(relation)
        if not raws:
            report.warning(
                path, f"RelationVersion {number}", "has no relations", "add relations if any exist"
            )
        versions[number] = tuple(kept)
    if not versions:
        report.warning(
            path, "Relations", "no RelationVersion", 'add {"RelationVersionNumber": "1", ...}'
        )
        versions["1"] = ()
    _check_removed(path, document, previous, report)
    return versions


def _check_relation(
    name: str,
    raw: Any,
    schema: jsonschema.Draft202012Validator,
    model: Datamodel,
    rcs: Mapping[str, str],
    models: Mapping[str, Datamodel],
    report: Report,
    path: Path,
    label: str,
) -> Relation | None:
    problems = sorted(schema.iter_errors(raw), key=str)
    for problem in problems:
        field_name = "/".join(str(p) for p in problem.absolute_path)
        if field_name == "ToManyRelation" or "'ToManyRelation' is a required" in problem.message:
            fix = "set ToManyRelation to true (to-many) or false (to-one): multiplicity undefined"
        else:
            fix = "follow Relations.schema.json"
        report.error(path, label, f"{field_name or 'relation'}: {problem.message}", fix)
    if problems:
        return None
    source = model.entities.get(raw["SourceEntity"])
    if source is None:
        report.error(
            path, label, f"unknown source entity {raw['SourceEntity']!r}", _choices(model.entities)
        )
        return None
    if raw["SourceField"] not in source.by_source:
        report.error(
            path,
            label,
            f"SourceField {raw['SourceField']!r} is not a field of {source.name}",
            _choices(source.by_source),
        )
        return None
    target_register = rcs.get(raw["TargetRc"])
    if target_register is None:
        report.error(
            path,
            label,
            f"TargetRc {raw['TargetRc']!r} is no loaded register's replication channel",
            "use one of " + ", ".join(f"{rc} ({reg})" for rc, reg in sorted(rcs.items())),
        )
        return None
    target_model = models[target_register]
    target = target_model.entities.get(raw["TargetEntity"])
    if target is None:
        report.error(
            path,
            label,
            f"unknown target entity {raw['TargetEntity']!r} in {target_register}",
            _choices(target_model.entities),
        )
        return None
    if raw["TargetField"] not in target.by_source:
        report.error(
            path,
            label,
            f"TargetField {raw['TargetField']!r} is not a field of {target_register} {target.name}",
            _choices(target.by_source),
        )
        return None
    alias = raw["Alias"]
    if not alias:
        alias = (
            f"{raw['SourceField']}_{raw['TargetRc']}_{raw['TargetEntity']}_{raw['TargetField']}_ref"
        )
        report.warning(
            path,
            label,
            f"empty Alias; the relation is named {graphql_name(alias)!r}",
            "give the relation an Alias",
        )
    return Relation(
        source_register=name,
        source_entity=source.name,
        source_field=raw["SourceField"],
        target_rc=raw["TargetRc"],
        target_rc_version=raw["TargetRcVersion"],
        target_register=target_register,
        target_entity=target.name,
        target_field=raw["TargetField"],
        to_many=raw["ToManyRelation"],
        alias=graphql_name(alias),
    )


def _choices(names: Iterable[str]) -> str:
    listed = sorted(names)
    shown = ", ".join(listed[:12]) + (", …" if len(listed) > 12 else "")
    return f"use one of: {shown}"


def _identity(raw: Any) -> tuple[str, ...]:
    keys = ("SourceEntity", "SourceField", "TargetRc", "TargetEntity", "TargetField", "Alias")
    return tuple(str(raw.get(k)) for k in keys) if isinstance(raw, dict) else ()


def _check_removed(path: Path, current: Any, previous: Any | None, report: Report) -> None:
    """Removing a relation inside a RelationVersion breaks its users: that needs a new version."""
    if not isinstance(previous, dict) or not isinstance(previous.get("RelationVersions"), list):
        return

    def by_version(document: Any) -> dict[str, set[tuple[str, ...]]]:
        out: dict[str, set[tuple[str, ...]]] = {}
        for version in document.get("RelationVersions", []):
            if isinstance(version, dict) and isinstance(version.get("Relations"), list):
                number = str(version.get("RelationVersionNumber"))
                out[number] = {_identity(r) for r in version["Relations"]}
        return out

    now, before = by_version(current), by_version(previous)
    for number, relations in before.items():
        if number not in now:
            report.error(
                path,
                f"RelationVersion {number}",
                "was removed, but clients use it",
                "keep every published RelationVersion",
            )
            continue
        for identity in sorted(relations - now[number]):
            report.error(
                path,
                f"RelationVersion {number}",
                f"relation {identity[0]}.{identity[1]} → {identity[3]}.{identity[4]} "
                f"(alias {identity[5]!r}) was removed from a published version",
                "restore it, and remove it in a new RelationVersion instead",
            )


def _load_security(
    rc_dir: Path, model: Datamodel, report: Report
) -> tuple[int, dict[str, int], dict[tuple[str, str], int]] | None:
    path = rc_dir / SECURITY / "Security_Model.json"
    document = _read_json(path, report, "Security_Model")
    if document is None:
        return None
    # An entity not covered by DefaultSecurity or SpecificSecurity defaults to level 1 (DLS).
    default = int(document.get("DefaultSecurity", 1))
    entity_levels: dict[str, int] = {}
    field_levels: dict[tuple[str, str], int] = {}
    for group in document.get("SpecificSecurity", []):
        level = int(group["SecurityLevel"])
        for name in group["Entities"]:
            entity_name, _, field_name = name.partition(".")
            entity = model.entities.get(entity_name)
            if entity is None:
                report.error(
                    path, name, f"unknown entity {entity_name!r}", _choices(model.entities)
                )
                return None
            if not field_name:
                entity_levels[entity_name] = level
            elif field_name in entity.by_source:
                field_levels[(entity_name, field_name)] = level
            else:
                report.error(
                    path,
                    name,
                    f"unknown field {field_name!r} of {entity_name}",
                    _choices(entity.by_source),
                )
                return None
    return default, entity_levels, field_levels


def _check_downloads(rc_dir: Path, model: Datamodel, report: Report) -> None:
    path = rc_dir / TABULAR / "Automated_Predefined_Filedownloads.json"
    if not path.exists():
        report.warning(
            path, "file downloads", "no predefined file downloads", "add the annex to offer exports"
        )
        return
    document = _read_json(path, report, "Automated_Predefined_Filedownloads")
    for item in document or []:
        if item["EntityName"] != "All" and item["EntityName"] not in model.entities:
            report.error(
                path, item["EntityName"], "unknown entity", _choices([*model.entities, "All"])
            )


def relations_skeleton(model: Datamodel, rc: str) -> dict[str, Any]:
    """A Relations.json skeleton from the datamodel's own relations (the DLS generator's job).

    Where the upstream model does not say which columns join (EDMX without referential
    constraints), SourceField and TargetField are left empty to be filled in.
    """
    relations = [
        {
            "SourceEntity": nav.source_entity,
            "SourceField": nav.source_field,
            "TargetRc": rc,
            "TargetRcVersion": "1",
            "TargetEntity": nav.target_entity,
            "TargetField": nav.target_field,
            "ToManyRelation": nav.to_many,
            "Alias": nav.name,
        }
        for nav in model.navigation
    ]
    return {"RelationVersions": [{"RelationVersionNumber": "1", "Relations": relations}]}
