"""Loading and validating register folders in the DLS layout (the DLS Validator's job).

A DLS repository holds ``Register/<REG>/`` folders (or point straight at ``registers/`` or at
one register)::

    <REG>/General/DLS_metadata.json                 required: {"version_format": "2.0"}
    <REG>/General/…                                  only machine-readable files and Word files
    <REG>/rcNNNNN/                                   one or more replication channels
        1. Bitemporality/                            the bitemporal model (optional)
        2. Datamodel/MAJOR.MINOR.PATCH.<REG>.xsd     the physical model (required) ...
        2. Datamodel/MAJOR.MINOR.PATCH.<REG>.xmi     ... and the logical model (required)
        2. Datamodel/Relations.json                  the relations, per RelationVersion
        3. Security/Security_Model.json              required
        4. Tabular_data/Automated_Predefined_Filedownloads.json   required for tabular data
        4. Tabular_data/Automated_Pregenerated_Filedownloads.json, Automated_Geographical_
           Filedownloads.json, Automated_Wfs.json    optional
        5. Raster_data/Automated_Pregenerated_Filedownloads.json  optional
        Source.json                                  optional: how the gateway reaches the upstream

``Source.json`` is this gateway's extension. It names the register's kind (which must be
installed, :func:`gateway.sources.kinds.kinds`) and may name a native datamodel (EDMX, JSON
Schema, an attribute-style XSD) in its ``datamodel`` block; without that block the channel's
datamodel is its DLS pair(s). Without ``Source.json`` the register validates and its schema is
generated, and serving it answers every root field with ``UPSTREAM_UNAVAILABLE``.

**Versions.** Each channel may hold several datamodel versions (the as-is and the to-be model
of one channel) and a register may have several channels; every ``MAJOR`` is served side by
side. The newest ``MAJOR`` is the register at ``/graphql``. External versions ``/{REG}/v{N}``
enumerate (datamodel ``MAJOR``, RelationVersion) pairs: the lowest datamodel version's
RelationVersions keep their numbers, each newer one's continue after them.

Validation reports in the DLS vocabulary (:mod:`gateway.dls.report`): an *error* drops what it
concerns (a relation, or a whole register whose datamodel cannot be read) and makes the report
fail; a *warning* keeps it. With ``previous`` (a folder, or ``"git"`` for the committed
version) breaking datamodel changes — a removed entity or field, a changed type — are errors
unless they come as a new datamodel version.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from gateway.dls import LOADERS, SPELLINGS, loader_for
from gateway.dls.report import DlsPair, External, Message, Report
from gateway.history.events import EVENTS, events_entity
from gateway.history.temporal_fields import with_temporal_fields
from gateway.model.datamodel import Datamodel, Entity, Register, Relation, ScalarType, Temporal
from gateway.model.errors import DescriptorError
from gateway.model.naming import graphql_name
from gateway.sources.kinds import kinds
from gateway.sources.options import old_spellings

__all__ = [
    "SUPPORTED_FORMATS",
    "Message",
    "Report",
    "dls_files",
    "generate_relations",
    "load_registers",
    "normalise_rc",
    "register_folders",
    "relations_skeleton",
]

DATAMODEL = "2. Datamodel"
SECURITY = "3. Security"
TABULAR = "4. Tabular_data"
RASTER = "5. Raster_data"
BITEMPORALITY = "1. Bitemporality"
CHANNEL_FOLDERS = (BITEMPORALITY, DATAMODEL, SECURITY, TABULAR, RASTER)
# The DLS format versions this gateway reads (DLS_metadata.json version_format).
SUPPORTED_FORMATS = ("2.0",)
# General/ holds machine-readable files and Word files only (the DLS: no Excel).
_GENERAL_SUFFIXES = frozenset(
    {".json", ".xml", ".xsd", ".xmi", ".csv", ".txt", ".md", ".yaml", ".yml", ".doc", ".docx"}
)
_RC = re.compile(r"^rc\d{5}$")
_DLS_FILE = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(.+)\.(xsd|xmi)$")
_LAYOUT = (
    "General/DLS_metadata.json, and rcNNNNN/ folders with '2. Datamodel/' (MAJOR.MINOR.PATCH."
    "<REG>.xsd and .xmi, Relations.json), '3. Security/Security_Model.json' and "
    "'4. Tabular_data/Automated_Predefined_Filedownloads.json'"
)


def normalise_rc(value: str) -> str:
    """``rc00022``, ``22`` or ``00022`` → ``rc00022`` (the DLS writes both styles)."""
    digits = value[2:] if value.startswith("rc") else value
    return f"rc{int(digits):05d}" if digits.isdigit() and len(digits) <= 5 else value


def _level(value: Any) -> int:
    """A security level written as a number or as a numeric string (validated before)."""
    return int(value)


@cache
def _schema(annex: str) -> dict[str, Any]:
    folder = resources.files("gateway.dls.annex_schemas")
    text = folder.joinpath(f"{annex}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _read_json(path: Path, report: Report, annex: str, *, required: bool = True) -> Any | None:
    """Parse ``path`` and check it against the annex schema; None (and an error) if unusable."""
    if not path.is_file():
        if required:
            report.error(
                path,
                annex,
                "the file is missing (the annex is required)",
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


def dls_files(folder: Path, register: str) -> dict[str, dict[str, Path]]:
    """The DLS datamodel files of a ``2. Datamodel/`` folder: version → {"xsd"/"xmi": path}."""
    found: dict[str, dict[str, Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        match = _DLS_FILE.match(path.name)
        if path.is_file() and match and match.group(4) == register:
            version = ".".join(match.group(1, 2, 3))
            found.setdefault(version, {})[match.group(5)] = path
    return found


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def register_folders(root: Path) -> list[Path]:
    """The register folders below ``root``: itself, ``root/Register/*`` or ``root/*``."""
    if (root / "General").is_dir():
        return [root]
    base = root / "Register" if (root / "Register").is_dir() else root
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name != "Guides")


@dataclass(slots=True)
class _Variant:
    """One datamodel version of one replication channel, as loaded."""

    name: str
    rc: str
    rc_dir: Path
    model: Datamodel
    source: Mapping[str, Any] | None
    datamodel_file: Path
    # The DLS pair, when the channel delivers one: its XSD-loaded model and the read XMI.
    pair_model: Datamodel | None = None
    xmi: Any | None = None
    xmi_file: Path | None = None
    pair_file: Path | None = None  # the pair's XSD

    @property
    def major(self) -> str:
        return self.model.major


@dataclass(slots=True)
class _Loading:
    """What :func:`load_registers` knows while it works."""

    report: Report
    overrides: Mapping[str, Mapping[str, Any]]
    variants: dict[str, list[_Variant]] = field(default_factory=dict)  # register → variants

    def rcs(self) -> dict[str, str]:
        return {v.rc: name for name, vs in self.variants.items() for v in vs}

    def model_of(self, register: str, major: str | None = None) -> Datamodel | None:
        variants = self.variants.get(register, [])
        if major is not None:
            variants = [v for v in variants if v.major == major]
        return max(variants, key=lambda v: int(v.major)).model if variants else None


def load_registers(
    root: Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    previous_relations: Mapping[str, Any] | None = None,
    include: Iterable[str] | None = None,
    previous: Path | str | None = None,
) -> Report:
    """Load and validate every register folder below ``root`` (or ``root`` itself).

    ``overrides`` replaces ``Source.json`` options per register (e.g. a replica's URL).
    ``previous_relations`` maps a register name to its previously committed Relations.json
    document; when absent, the committed version is read from git if ``root`` is in a work tree.
    ``previous`` is the registers folder to check breaking datamodel changes against, or
    ``"git"`` for the version committed at git HEAD; ``None`` skips that check.
    """
    report = Report()
    loading = _Loading(report, overrides or {})
    del include  # every register is loaded: relations may point into any of them
    _load_bases(root, loading)
    if not loading.variants and not report.errors:
        report.error(
            root, "registers", "no register folder found", "point at registers/ or one register"
        )
    _check_pairs(loading)
    for name, variants in loading.variants.items():
        for variant in sorted(variants, key=lambda v: (int(v.major), v.rc)):
            if variant.pair_model is not None and variant.pair_file is not None:
                report.pairs.setdefault(name, []).append(
                    DlsPair(
                        variant.rc,
                        variant.pair_model,
                        variant.xmi,
                        variant.pair_file,
                        variant.xmi_file,
                    )
                )
    for name, variants in loading.variants.items():
        _assemble(name, variants, loading, previous_relations)
    if previous is not None:
        _check_breaking(root, loading, previous)
    return report


def _load_bases(root: Path, loading: _Loading) -> None:
    """Every register folder below ``root``, loaded into ``loading.variants``."""
    for folder in register_folders(root):
        variants = _load_register_base(folder, loading)
        if variants:
            loading.variants[folder.name] = variants


def _load_register_base(folder: Path, loading: _Loading) -> list[_Variant]:
    report = loading.report
    name = folder.name
    if not re.fullmatch(r"[A-Z][A-Z0-9]*", name):
        report.error(
            folder,
            "register",
            f"{name!r} is not a register name",
            "use upper-case letters, e.g. FT",
        )
        return []
    metadata = _read_json(folder / "General" / "DLS_metadata.json", report, "DLS_metadata")
    if metadata is None:
        return []
    if metadata["version_format"] not in SUPPORTED_FORMATS:
        report.error(
            folder / "General" / "DLS_metadata.json",
            "version_format",
            f"DLS format {metadata['version_format']!r} is not one this gateway reads",
            f"use one of: {', '.join(SUPPORTED_FORMATS)}",
        )
        return []
    _check_general(folder / "General", report)
    rc_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and _RC.match(p.name))
    for other in sorted(folder.iterdir()):
        if other.name != "General" and other not in rc_dirs:
            report.warning(
                other,
                "register",
                "not part of the DLS layout (General/ and rcNNNNN/ folders); ignored",
                "move it into General/ or remove it",
            )
    if not rc_dirs:
        report.error(
            folder,
            "register",
            "no replication channel folder (rcNNNNN, five digits)",
            f"add one: {_LAYOUT}",
        )
        return []
    variants: list[_Variant] = []
    for rc_dir in rc_dirs:
        variants.extend(_load_channel(name, rc_dir, loading))
    majors: dict[str, str] = {}
    for variant in variants:
        if variant.major in majors:
            report.error(
                variant.datamodel_file,
                "datamodel version",
                f"datamodel version {variant.major} is delivered by {majors[variant.major]} "
                f"and {variant.rc}",
                "give the new datamodel a new MAJOR version",
            )
            return []
        majors[variant.major] = variant.rc
    return variants


def _check_general(general: Path, report: Report) -> None:
    for path in sorted(general.rglob("*")):
        if path.is_file() and path.suffix.lower() not in _GENERAL_SUFFIXES:
            report.error(
                path,
                "General",
                f"{path.suffix or 'a file without extension'} is not a supported format here",
                "General/ takes machine-readable formats (JSON, XML, …) and Word files only; "
                "convert it (e.g. an Excel sheet to JSON or CSV)",
            )


def _load_channel(name: str, rc_dir: Path, loading: _Loading) -> list[_Variant]:
    report = loading.report
    for entry in sorted(rc_dir.iterdir()):
        if entry.is_dir() and entry.name not in CHANNEL_FOLDERS:
            report.warning(
                entry,
                "replication channel",
                f"{entry.name!r} is not a folder of the DLS layout; ignored",
                f"use one of: {', '.join(CHANNEL_FOLDERS)}",
            )
        elif entry.is_file() and entry.name != "Source.json":
            report.warning(
                entry,
                "replication channel",
                "a file outside the channel's folders; ignored",
                "move it into the folder of its annex",
            )
    source: Mapping[str, Any] | None = None
    source_path = rc_dir / "Source.json"
    override = loading.overrides.get(name, {})
    if source_path.is_file():
        read = _read_json(source_path, report, "Source")
        if read is None:
            return []
        if not _check_kind(source_path, read, override, report):
            return []
        source = {**read, **override}
    elif "kind" in override:
        # No Source.json, but the gateway's settings say where the upstream is.
        if not _check_kind(source_path, override, {}, report):
            return []
        source = dict(override)
    pairs = dls_files(rc_dir / DATAMODEL, name)
    variants: list[_Variant] = []
    spec = source.get("datamodel") if source is not None else None
    if spec is not None:
        native = _native_model(name, rc_dir, source_path, spec, report)
        if native is None:
            return []
        model, path = native
        variants.append(_Variant(name, rc_dir.name, rc_dir, model, source, path))
    elif not pairs:
        report.error(
            rc_dir / DATAMODEL,
            "datamodel",
            f"no datamodel: expected MAJOR.MINOR.PATCH.{name}.xsd and .xmi",
            "deliver the physical (XSD) and logical (XMI) model, named e.g. "
            f"1.0.0.{name}.xsd and 1.0.0.{name}.xmi",
        )
        return []
    # The DLS pairs: the newest MINOR.PATCH of each MAJOR is served (unless a native model is).
    newest: dict[str, str] = {}
    for version in pairs:
        major = version.partition(".")[0]
        if major not in newest or _version_key(version) > _version_key(newest[major]):
            newest[major] = version
    for version in sorted(pairs, key=_version_key):
        files = pairs[version]
        for missing in ("xsd", "xmi"):
            if missing not in files:
                other = files["xmi" if missing == "xsd" else "xsd"]
                report.error(
                    other,
                    "datamodel",
                    f"{version}.{name}.{missing} is missing (both models are required)",
                    f"deliver {version}.{name}.{missing} next to {other.name}",
                )
        if version != newest[version.partition(".")[0]] or "xsd" not in files:
            continue
        pair = _load_pair(name, files, report)
        if pair is None:
            continue
        model, xmi = pair
        if model.version != version:
            if model.version:
                report.warning(
                    files["xsd"],
                    "datamodel version",
                    f"the schema says version {model.version!r}, its file name {version!r}; "
                    "the file name decides",
                    f'write version="{version}" on xs:schema, or rename the files',
                )
            model = replace(model, version=version)
        if spec is None:
            variants.append(
                _Variant(
                    name,
                    rc_dir.name,
                    rc_dir,
                    model,
                    source,
                    files["xsd"],
                    model,
                    xmi,
                    files.get("xmi"),
                    files["xsd"],
                )
            )
        elif variants:
            # A native model with its DLS pair beside it: the pair is checked, not served.
            _check_pair_current(name, variants[0].model, model, files["xsd"], report)
            variants[0].pair_model = model
            variants[0].xmi = xmi
            variants[0].xmi_file = files.get("xmi")
            variants[0].pair_file = files["xsd"]
    return variants


def _check_pair_current(
    name: str, native: Datamodel, pair: Datamodel, xsd_file: Path, report: Report
) -> None:
    """A DLS pair written from the native model must still describe it (entities, fields)."""
    problems = []
    for entity_name in sorted(set(native.entities) ^ set(pair.entities)):
        where = "native model" if entity_name in native.entities else "XSD"
        problems.append(f"entity {entity_name} is only in the {where}")
    for entity_name in sorted(set(native.entities) & set(pair.entities)):
        ours = {f.name: f for f in native.entities[entity_name].fields}
        theirs = {f.name: f for f in pair.entities[entity_name].fields}
        for field_name in sorted(set(ours) ^ set(theirs)):
            where = "native model" if field_name in ours else "XSD"
            problems.append(f"field {entity_name}.{field_name} is only in the {where}")
        for field_name in sorted(set(ours) & set(theirs)):
            if ours[field_name].type != theirs[field_name].type:
                problems.append(
                    f"field {entity_name}.{field_name} is {ours[field_name].type} in the "
                    f"native model, {theirs[field_name].type} in the XSD"
                )
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; … {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        report.warning(
            xsd_file,
            "DLS pair",
            f"no longer describes the native datamodel the register is served from: {shown}",
            f"write it again: gateway dls-export {name}",
        )


def _native_model(
    name: str, rc_dir: Path, source_path: Path, spec: Mapping[str, Any], report: Report
) -> tuple[Datamodel, Path] | None:
    if not isinstance(spec, Mapping) or "format" not in spec or "path" not in spec:
        report.error(
            source_path,
            "datamodel",
            "needs format and path",
            'write "datamodel": {"format": "…", "path": "…"}, or leave the block out to use '
            "the DLS pair (MAJOR.MINOR.PATCH.REG.xsd and .xmi)",
        )
        return None
    if spec["format"] not in LOADERS:
        report.error(
            source_path,
            "datamodel.format",
            f"unknown datamodel format {spec['format']!r}",
            f"use one of {', '.join(sorted(LOADERS))}",
        )
        return None
    for warning in old_spellings(spec, SPELLINGS[spec["format"]], "datamodel"):
        report.warning(source_path, "datamodel", warning, "rename it in Source.json")
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
    return model, path


def _load_pair(
    name: str, files: Mapping[str, Path], report: Report
) -> tuple[Datamodel, Any | None] | None:
    """The XSD of a DLS pair as a datamodel, and its XMI read (None if it has none)."""
    from gateway.dls.dls_xsd import load_dls_xsd
    from gateway.dls.xmi import read_xmi

    try:
        model = load_dls_xsd(files["xsd"], name, {})
    except DescriptorError as exc:
        report.error(files["xsd"], "physical datamodel (XSD)", exc.message, "fix the XSD")
        return None
    xmi = None
    if "xmi" in files:
        try:
            xmi = read_xmi(files["xmi"])
        except DescriptorError as exc:
            report.error(files["xmi"], "logical datamodel (XMI)", exc.message, "fix the XMI")
    return model, xmi


def _check_pairs(loading: _Loading) -> None:
    """XSD ↔ XMI consistency by EAID, per channel that delivers a pair."""
    for name, variants in loading.variants.items():
        for variant in variants:
            if variant.pair_model is None or variant.xmi is None or variant.xmi_file is None:
                continue
            from gateway.dls.relation_generator import check_consistency

            check_consistency(
                name,
                variant.pair_model,
                variant.xmi,
                loading.report,
                str(variant.pair_file),
                str(variant.xmi_file),
            )


def _check_join_scope(
    rc_dir: Path, model: Datamodel, source: Mapping[str, Any] | None, report: Report
) -> None:
    """``joinScope`` names source fields: a name no entity has would scope nothing, silently."""
    names = (source or {}).get("joinScope")
    if not isinstance(names, list):
        return
    fields = {f.source for e in model.entities.values() for f in e.fields}
    for name in names:
        if str(name) not in fields:
            report.error(
                rc_dir / "Source.json",
                "joinScope",
                f"joinScope names {name!r}, which no entity of the datamodel has",
                "name the source fields that every scoped entity carries (e.g. the election's "
                "folder), spelled as in the datamodel",
            )


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


def _assemble(
    name: str,
    variants: list[_Variant],
    loading: _Loading,
    previous_relations: Mapping[str, Any] | None,
) -> None:
    """The register's versions → Register objects, external versions and annex checks."""
    report = loading.report
    ordered = sorted(variants, key=lambda v: (int(v.major), v.rc))
    newest = ordered[-1]
    built: list[Register] = []
    for variant in ordered:
        rc_dir = variant.rc_dir
        previous = (previous_relations or {}).get(name)
        if previous is None and previous_relations is None:
            previous = _committed(rc_dir / DATAMODEL / "Relations.json")
        versions = _load_relations(name, variant, loading, previous, quiet=variant is not newest)
        levels = _load_security(rc_dir, variant.model, report)
        kind = kinds().get(str((variant.source or {}).get("kind", "")))
        records_rows = kind is not None and kind.source.records_rows
        _check_tabular(rc_dir, variant.model, report, records_rows)
        _check_raster(rc_dir, report)
        _check_join_scope(rc_dir, variant.model, variant.source, report)
        if levels is None:
            return
        default, entity_levels, field_levels = levels
        temporal = _load_bitemporality(rc_dir, variant.model, report)
        events = None
        if kind is not None and (records_rows or kind.source.describes_files):
            events = events_entity(name, variant.model)
            if events is None:
                report.warning(
                    rc_dir,
                    "Events",
                    f"the datamodel has an entity named {EVENTS}: the gateway's "
                    f"{name}_{EVENTS} (the recorded events) is left out",
                    "rename the datamodel's entity to have both",
                )
        model, field_levels = _with_temporal_fields(variant.model, temporal, field_levels)
        built.append(
            Register(
                name=name,
                rc=variant.rc,
                datamodel=model,
                relation_versions=versions,
                default_level=default,
                entity_levels=entity_levels,
                field_levels=field_levels,
                source=variant.source if variant.source is not None else {},
                path=str(rc_dir),
                variant="" if variant is newest else f"{variant.rc}:{variant.major}",
                events=events,
                temporal=temporal,
            )
        )
    report.registers.append(built[-1])
    externals: list[External] = []
    offset = 0
    for register in built:
        numbers = sorted((int(v) for v in register.relation_versions), key=int)
        for number in numbers:
            externals.append(External(str(offset + number), register, str(number)))
        offset += max(numbers, default=0)
    report.versions[name] = externals


def _with_temporal_fields(
    model: Datamodel, temporal: Mapping[str, Temporal], levels: dict[tuple[str, str], int]
) -> tuple[Datamodel, dict[tuple[str, str], int]]:
    """The datamodel with the temporal fields on each entity whose times are declared
    (gateway/history/temporal_fields.py), each at the level of the field it reads."""
    if not temporal:
        return model, levels
    entities = dict(model.entities)
    out = dict(levels)
    for name, declared in temporal.items():
        entity = entities.get(name)
        if entity is None:
            continue
        entities[name], reads = with_temporal_fields(entity, declared)
        for source, read in reads.items():
            if (name, read) in levels:
                out[(name, source)] = levels[(name, read)]
    return dataclasses.replace(model, entities=entities), out


def _load_relations(
    name: str,
    variant: _Variant,
    loading: _Loading,
    previous: Any | None,
    *,
    quiet: bool = False,
) -> dict[str, tuple[Relation, ...]]:
    """The relations of one datamodel version, per RelationVersion.

    ``quiet``: an older datamodel version served beside the newest (the as-is model of one
    channel shares the channel's Relations.json): relations that do not resolve in it are left
    out with a warning instead of an error.
    """
    report = loading.report
    path = variant.rc_dir / DATAMODEL / "Relations.json"
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
    sink = Report() if quiet else report
    versions: dict[str, tuple[Relation, ...]] = {}
    for v_index, version in enumerate(document["RelationVersions"]):
        number = version.get("RelationVersionNumber") if isinstance(version, dict) else None
        raws = version.get("Relations") if isinstance(version, dict) else None
        if not isinstance(number, str) or not number.isdigit() or not isinstance(raws, list):
            sink.error(
                path,
                f"RelationVersions[{v_index}]",
                "needs a RelationVersionNumber (a string of digits) and a Relations list",
                'write {"RelationVersionNumber": "1", "Relations": [...]}',
            )
            continue
        if number in versions:
            sink.error(path, f"RelationVersion {number}", "declared twice", "merge or renumber")
            continue
        kept: list[Relation] = []
        aliases: set[tuple[str, str]] = set()
        for index, raw in enumerate(raws):
            label = f"RelationVersion {number}, {_relation_label(index, raw)}"
            relation = _check_relation(
                name, raw, relation_schema, variant.model, loading, sink, path, label
            )
            if relation is None:
                continue
            key = (relation.source_entity, relation.alias)
            entity = variant.model.entities[relation.source_entity]
            if key in aliases or relation.alias in entity.by_name:
                sink.error(
                    path,
                    label,
                    f"alias {relation.alias!r} is already used on {relation.source_entity}",
                    "give the relation a unique Alias",
                )
                continue
            aliases.add(key)
            kept.append(relation)
        if not raws:
            sink.warning(
                path, f"RelationVersion {number}", "has no relations", "add relations if any exist"
            )
        versions[number] = tuple(kept)
    if quiet:
        for message in sink.errors:
            report.warning(
                message.file,
                f"datamodel {variant.model.version or variant.major} ({variant.rc}): "
                + message.what,
                f"left out of this older datamodel version: {message.problem}",
                message.fix,
            )
    if not versions:
        sink.warning(
            path, "Relations", "no RelationVersion", 'add {"RelationVersionNumber": "1", ...}'
        )
        versions["1"] = ()
    if not quiet:
        _check_history(path, document, previous, report)
    return versions


def _check_relation(
    name: str,
    raw: Any,
    schema: jsonschema.Draft202012Validator,
    model: Datamodel,
    loading: _Loading,
    report: Report,
    path: Path,
    label: str,
) -> Relation | None:
    problems = sorted(schema.iter_errors(raw), key=str)
    for problem in problems:
        field_name = "/".join(str(p) for p in problem.absolute_path)
        if field_name == "ToManyRelation" or "'ToManyRelation' is a required" in problem.message:
            fix = "set ToManyRelation to true (to-many) or false (to-one): multiplicity undefined"
        elif field_name in ("SourceField", "TargetField") and raw.get(field_name) == "":
            fix = (
                f"fill in {field_name}: the field of "
                f"{raw.get('SourceEntity' if field_name == 'SourceField' else 'TargetEntity')} "
                "the join uses (the relation generator leaves it empty)"
            )
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
    rcs = loading.rcs()
    target_rc = normalise_rc(raw["TargetRc"])
    target_register = rcs.get(target_rc)
    if target_register is None:
        report.error(
            path,
            label,
            f"TargetRc {raw['TargetRc']!r} is no loaded register's replication channel",
            "use one of " + ", ".join(f"{rc} ({reg})" for rc, reg in sorted(rcs.items())),
        )
        return None
    major = str(raw["TargetRcVersion"]).partition(".")[0]
    target_model = loading.model_of(target_register, major)
    if target_model is None:
        known = sorted({v.major for v in loading.variants[target_register]}, key=int)
        report.error(
            path,
            label,
            f"TargetRcVersion {raw['TargetRcVersion']!r} is no datamodel version of "
            f"{target_register} (it has {', '.join(known)})",
            "use the MAJOR of the target's datamodel file name (MAJOR.MINOR.PATCH.REG.xsd)",
        )
        return None
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
        target_rc=target_rc,
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
    if not isinstance(raw, dict):
        return ()
    values = [str(raw.get(k)) for k in keys]
    values[2] = normalise_rc(values[2])
    return tuple(values)


def _check_history(path: Path, current: Any, previous: Any | None, report: Report) -> None:
    """Published RelationVersions only change in one way: relations added to the newest.

    Removing a relation breaks its users (that needs a new RelationVersion); a relation added
    to an older RelationVersion is a manual change the DLS does not allow (add it to the newest).
    """
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
    newest = max((n for n in now if n.isdigit()), key=int, default=None)
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
        if number == newest:
            continue
        for identity in sorted(now[number] - relations):
            report.error(
                path,
                f"RelationVersion {number}",
                f"relation {identity[0]}.{identity[1]} → {identity[3]}.{identity[4]} "
                f"(alias {identity[5]!r}) was added to RelationVersion {number}, "
                f"which is not the newest ({newest})",
                f"add it to RelationVersion {newest} instead (manual relations go into the "
                "newest RelationVersion)",
            )


def _entity_named(model: Datamodel, name: str) -> Entity | None:
    """An entity by its name, or by its XSD type name (``EjerskabType`` → ``Ejerskab``)."""
    found = model.entities.get(name)
    if found is None and name.endswith("Type"):
        found = model.entities.get(name.removesuffix("Type"))
    return found


def _load_security(
    rc_dir: Path, model: Datamodel, report: Report
) -> tuple[int, dict[str, int], dict[tuple[str, str], int]] | None:
    path = rc_dir / SECURITY / "Security_Model.json"
    document = _read_json(path, report, "Security_Model")
    if document is None:
        return None
    groups = document.get("SpecificSecurity", [])
    if "DefaultSecurity" not in document and not any(g["Entities"] for g in groups):
        report.error(
            path,
            "Security_Model",
            "no DefaultSecurity, and SpecificSecurity names no entity for any level",
            'set "DefaultSecurity" (e.g. 1), or name entities under at least one '
            "SecurityLevel in SpecificSecurity",
        )
        return None
    # An entity not covered by DefaultSecurity or SpecificSecurity defaults to level 1 (DLS).
    default = _level(document.get("DefaultSecurity", 1))
    entity_levels: dict[str, int] = {}
    field_levels: dict[tuple[str, str], int] = {}
    for group in groups:
        level = _level(group["SecurityLevel"])
        for name in group["Entities"]:
            entity_name, _, field_name = name.partition(".")
            entity = _entity_named(model, entity_name)
            if entity is None:
                report.error(
                    path, name, f"unknown entity {entity_name!r}", _choices(model.entities)
                )
                return None
            if not field_name:
                entity_levels[entity.name] = level
            elif field_name in entity.by_source:
                field_levels[(entity.name, field_name)] = level
            else:
                report.error(
                    path,
                    name,
                    f"unknown field {field_name!r} of {entity.name}",
                    _choices(entity.by_source),
                )
                return None
    return default, entity_levels, field_levels


def _load_bitemporality(rc_dir: Path, model: Datamodel, report: Report) -> dict[str, Temporal]:
    """``1. Bitemporality/Bitemporality.json`` (optional): per entity, its registration and
    validity fields, each a DateTime (or Date) field of the entity."""
    folder = rc_dir / BITEMPORALITY
    path = folder / "Bitemporality.json"
    _unknown_files(folder, {"Bitemporality.json"}, report)
    document = _read_json(path, report, "Bitemporality", required=False)
    out: dict[str, Temporal] = {}
    for index, item in enumerate((document or {}).get("Entities", [])):
        name = str(item["Entity"])
        entity = _entity_named(model, name)
        where = f"Entities[{index}] {name!r}"
        if entity is None:
            report.error(path, where, "unknown entity", _choices([*model.entities]))
            continue
        if entity.name in out:
            report.error(path, where, "the entity is named twice", "keep one entry per entity")
            continue
        fields: dict[str, str] = {}
        for role in ("RegistrationFrom", "ValidFrom", "ValidTo"):
            field_name = item.get(role)
            if field_name is None:
                continue
            found = entity.by_source.get(str(field_name))
            if found is None:
                report.error(
                    path,
                    f"{where} {role}",
                    f"{entity.name} has no field {field_name!r}",
                    _choices([f.source for f in entity.fields]),
                )
                continue
            if found.type not in (ScalarType.DATETIME, ScalarType.DATE):
                report.error(
                    path,
                    f"{where} {role}",
                    f"{entity.name}.{field_name} is a {found.type.value}, not a date-time",
                    "name a DateTime or Date field",
                )
                continue
            fields[role] = found.source
        if not fields:
            report.warning(path, where, "names no field; ignored", "name RegistrationFrom, "
                           "ValidFrom or ValidTo")  # fmt: skip
            continue
        out[entity.name] = Temporal(
            entity.name,
            fields.get("RegistrationFrom", ""),
            fields.get("ValidFrom", ""),
            fields.get("ValidTo", ""),
        )
    return out


def _check_tabular(
    rc_dir: Path, model: Datamodel, report: Report, records_rows: bool = False
) -> None:
    folder = rc_dir / TABULAR
    predefined = folder / "Automated_Predefined_Filedownloads.json"
    # Required for tabular data; a channel with raster data only may leave 4. out.
    raster_only = (rc_dir / RASTER).is_dir() and not folder.is_dir()
    document = _read_json(
        predefined, report, "Automated_Predefined_Filedownloads", required=not raster_only
    )
    for index, item in enumerate(document or []):
        name = item["EntityName"]
        if name != "All" and _entity_named(model, name) is None:
            report.error(
                predefined,
                f"[{index}] EntityName {name!r}",
                "unknown entity",
                _choices([*model.entities, "All"]),
            )
        historical = int(item["FileDownloadType"]) == 2 or int(item["TypeOfData"]) in (2, 3)
        if historical and not records_rows:
            report.warning(
                predefined,
                f"[{index}] FileDownloadType {item['FileDownloadType']}, TypeOfData "
                f"{item['TypeOfData']}",
                "this register's kind records no row versions: deltas and versions are not "
                "offered (its downloads are totals of current data)",
                "offer FileDownloadType 1, TypeOfData 1, or serve the register by a kind "
                "that records rows (odata)",
            )
    pregenerated = folder / "Automated_Pregenerated_Filedownloads.json"
    _read_json(pregenerated, report, "Automated_Pregenerated_Filedownloads", required=False)
    geographical = folder / "Automated_Geographical_Filedownloads.json"
    _check_geographical(
        geographical,
        _read_json(geographical, report, "Automated_Geographical_Filedownloads", required=False),
        model,
        report,
    )
    wfs = folder / "Automated_Wfs.json"
    document = _read_json(wfs, report, "Automated_Wfs", required=False)
    for name in (document or {}).get("Entities", []):
        if name != "All" and _entity_named(model, name) is None:
            report.error(wfs, f"Entities {name!r}", "unknown entity", _choices([*model.entities]))
    known = {
        "Automated_Predefined_Filedownloads.json",
        "Automated_Pregenerated_Filedownloads.json",
        "Automated_Geographical_Filedownloads.json",
        "Automated_Wfs.json",
    }
    _unknown_files(folder, known, report)


def _check_geographical(path: Path, document: Any | None, model: Datamodel, report: Report) -> None:
    seen: set[str] = set()
    for index, item in enumerate(document or []):
        where = f"[{index}] {item['EntityName']}"
        entity = _entity_named(model, item["EntityName"])
        if entity is None:
            report.error(path, where, "unknown entity", _choices(model.entities))
            continue
        if entity.name in seen:
            report.error(
                path,
                where,
                "the entity is listed twice",
                "list every geographic field of an entity in one object",
            )
            continue
        seen.add(entity.name)
        types = set()
        for field_name in item["GeographicFieldNames"]:
            found = entity.by_source.get(field_name)
            if found is None:
                report.error(
                    path,
                    f"{where}.{field_name}",
                    f"unknown field of {entity.name}",
                    _choices(entity.by_source),
                )
                continue
            types.add(found.codes.name if found.codes is not None else str(found.type))
        if len(types) > 1:
            report.error(
                path,
                where,
                f"the geographic fields have different types ({', '.join(sorted(types))})",
                "list fields of one type only (e.g. all municipality codes, or all geometries)",
            )


def _check_raster(rc_dir: Path, report: Report) -> None:
    folder = rc_dir / RASTER
    path = folder / "Automated_Pregenerated_Filedownloads.json"
    _read_json(path, report, "Automated_Pregenerated_Filedownloads", required=False)
    _unknown_files(folder, {path.name}, report)


def _unknown_files(folder: Path, known: set[str], report: Report) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name not in known:
            report.warning(
                path,
                folder.name,
                "not an annex of this folder; ignored",
                f"the folder's annexes: {', '.join(sorted(known))}",
            )


def _check_breaking(root: Path, loading: _Loading, previous: Path | str) -> None:
    """Breaking datamodel changes against the previous version, per datamodel MAJOR."""
    report = loading.report
    with tempfile.TemporaryDirectory(prefix="dls-previous-") as scratch:
        if previous == "git":
            before_root = _git_snapshot(root, Path(scratch))
            if before_root is None:
                return
        else:
            before_root = Path(previous)
        before = Report()
        before_loading = _Loading(before, loading.overrides)
        _load_bases(before_root, before_loading)
        for name, old_variants in before_loading.variants.items():
            now = {v.major: v for v in loading.variants.get(name, [])}
            for old in old_variants:
                current = now.get(old.major)
                if current is None:
                    report.warning(
                        root / name,
                        f"datamodel version {old.major}",
                        "is no longer delivered: its external versions are no longer served",
                        "keep the as-is model until its users have moved on",
                    )
                    continue
                _compare_models(name, old.model, current, report)


def _compare_models(name: str, old: Datamodel, current: _Variant, report: Report) -> None:
    where = current.datamodel_file
    fix = (
        "keep it as it was, or deliver the change as a new datamodel version (a new MAJOR: "
        f"{int(current.major) + 1}.0.0.{name}.xsd and .xmi, in this channel beside the as-is "
        "model or in a new replication channel) so the current version keeps being served"
    )
    for entity_name, entity in old.entities.items():
        now = current.model.entities.get(entity_name)
        if now is None:
            report.error(
                where,
                f"breaking change in datamodel {current.major}",
                f"entity {entity_name} was removed",
                fix,
            )
            continue
        for old_field in entity.fields:
            new_field = now.by_source.get(old_field.source)
            if new_field is None:
                report.error(
                    where,
                    f"breaking change in datamodel {current.major}",
                    f"field {entity_name}.{old_field.source} was removed",
                    fix,
                )
            elif (new_field.type, new_field.many) != (old_field.type, old_field.many):
                report.error(
                    where,
                    f"breaking change in datamodel {current.major}",
                    f"field {entity_name}.{old_field.source} changed type from "
                    f"{_type_text(old_field.type, old_field.many)} to "
                    f"{_type_text(new_field.type, new_field.many)}",
                    fix + "; or add a new field with the converted values",
                )


def _type_text(scalar: object, many: bool) -> str:
    return f"[{scalar}]" if many else str(scalar)


def _git_snapshot(root: Path, scratch: Path) -> Path | None:
    """The registers folder as committed at git HEAD, extracted below ``scratch``."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        relative = root.resolve().relative_to(Path(top).resolve()).as_posix() or "."
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", "--", relative],
            cwd=top,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(scratch, filter="data")
    snapshot = scratch / relative
    return snapshot if snapshot.is_dir() else None


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


def generate_relations(root: Path, name: str) -> tuple[dict[str, Any] | None, Report]:
    """The DLS relation generator over a registers folder: ``name``'s Relations.json from its XMI.

    Every register below ``root`` is loaded, so that targets in other registers resolve by the
    EAIDs of their XSDs (the newest datamodel version wins where an EAID is in several). The
    report holds the generator's own messages (and the loading's errors, which may explain a
    missing target); the document is None when ``name`` delivers no readable XMI.
    """
    from gateway.dls.relation_generator import eaid_index, generate

    loaded = load_registers(root)
    report = Report(registers=loaded.registers, messages=list(loaded.errors))
    pairs = loaded.pairs.get(name, [])
    own = next((pair for pair in reversed(pairs) if pair.xmi is not None), None)
    if own is None:
        known = ", ".join(sorted(loaded.pairs)) or "none"
        report.error(
            root,
            "relations-skeleton",
            f"register {name!r} delivers no readable DLS pair (MAJOR.MINOR.PATCH.{name}.xsd and "
            f".xmi) below this folder; registers with one: {known}",
            "deliver the XMI next to the XSD in the register's 2. Datamodel/ folder, or write "
            "one with gateway dls-export",
        )
        return None, report
    everything = [
        (register, pair.rc, pair.model)
        for register, delivered in sorted(loaded.pairs.items())
        for pair in reversed(delivered)
    ]
    assert own.xmi is not None
    assert own.xmi_file is not None
    document = generate(
        name, own.rc, own.model, own.xmi, eaid_index(everything), report, str(own.xmi_file)
    )
    return document, report
