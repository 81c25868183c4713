"""From parsed Offene Wahldaten files to entity rows.

A file version is converted once (:func:`build_sheet`, cached by the adapter): values typed by
the datamodel's field types, placeholders and unreadable values reported. Per query the rows get
what depends on the election they belong to (:func:`entity_rows`, :func:`stimme_rows`): the
``wahl`` identity and the join keys ``wahl|…`` that keep several elections of one municipality on
one day apart. The vote columns of a result (``Dn``, ``Fn``, ``Dk_m``) become ``Stimme`` rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model.datamodel import Entity, ScalarType
from gateway.model.filters import equal_values
from gateway.model.keys import KEY_SEPARATOR, join_key
from gateway.model.query import Filter, Row
from resolvers.wahldaten_csv.letters import LetterColumn, classify_columns
from resolvers.wahldaten_csv.names import ENTITY_DATASETS
from resolvers.wahldaten_csv.parse import (
    DataWarning,
    Record,
    Table,
    WarningLog,
    german_date,
    german_timestamp,
)

__all__ = [
    "DERIVED",
    "ENTITY_DATASET",
    "Election",
    "Sheet",
    "StimmeFilter",
    "build_sheet",
    "convert",
    "election_key",
    "election_prefix",
    "entity_rows",
    "partei_of",
    "stimme_rows",
]

# Entity (datamodel name) -> the dataset (file-name part) its rows come from.
ENTITY_DATASET = {entity: datasets[0] for entity, datasets in ENTITY_DATASETS.items()}
# Fields the gateway derives; every other field is the CSV column of the same name.
DERIVED = frozenset(
    {
        "wahl", "datei", "zeile", "bezirk_id", "stimmzettel_gebiet_id", "kandidat_gebiet_id",
        "stimmzettel_id", "partei_id", "kandidat_id",
    }
)  # fmt: skip
IDENTITY = ("wahl-behoerde-gs", "wahl-datum", "wahl-name")
# Columns without which a row cannot be placed; rows lacking them are skipped.
REQUIRED = {
    "Wahlgebietseinteilungen": ("bezirk-nr",),
    "Wahlergebnisse": ("bezirk-nr",),
    "Stimmzettel": ("stimmzettel-position",),
}
# Columns that identify a row within its file; a repeated identity keeps the newest row.
UNIQUE = {
    "Wahlgebietseinteilungen": ("bezirk-nr",),
    "Wahlergebnisse": ("bezirk-nr",),
    "Stimmzettel": ("stimmzettel-gebiet-nr", "stimmzettel-position"),
}
# Columns whose raw text builds join keys.
_JOIN_COLUMNS = (
    "bezirk-nr", "stimmzettel-gebiet-nr", "kandidat-gebiet-nr", "partei-kurzname",
    "partei-langname",
)  # fmt: skip
_PLACEHOLDER = re.compile(r"^\?{3}")
_INTEGER = re.compile(r"[+-]?\d+")


def election_key(*parts: object) -> str:
    """A join key: the parts joined by ``|`` (``wahl|bezirk-nr`` …), a ``|`` inside a part
    escaped as the XSD loader's composite keys are, so no two keys collide.
    """
    return join_key(parts)


def election_prefix(wahl: str) -> str:
    """What every join key of the election ``wahl`` starts with."""
    return join_key((wahl,)) + KEY_SEPARATOR


@dataclass(frozen=True, slots=True)
class Election:
    """Who held which election on which day: the content of the election's files."""

    gs: str
    day: str  # ISO 8601
    name: str
    source: str  # the file the identity was read from

    @property
    def wahl(self) -> str:
        """The identity as one string: ``05366024_2020-09-13_Ratswahl NRW``."""
        return f"{self.gs}_{self.day}_{self.name}"


def convert(raw: str, kind: ScalarType) -> tuple[Any, str | None]:
    """A cell as a value of ``kind``, and a problem description if it could not be read.

    Empty cells are null for every type (an empty count is "not counted", not 0).
    """
    text = raw.strip()
    if not text:
        return None, None
    if _PLACEHOLDER.match(text):
        return None, f"placeholder {text!r} instead of a value"
    if kind in (ScalarType.INT, ScalarType.LONG):
        return (int(text), None) if _INTEGER.fullmatch(text) else (None, f"{text!r} is no integer")
    if kind is ScalarType.FLOAT:
        try:
            return float(text.replace(",", ".")), None
        except ValueError:
            return None, f"{text!r} is no number"
    if kind is ScalarType.DATE:
        date = german_date(text)
        return (date, None) if date else (None, f"{text!r} is no date dd.mm.yyyy")
    if kind is ScalarType.DATETIME:
        stamp = german_timestamp(text)
        return (stamp, None) if stamp else (None, f"{text!r} is no timestamp dd.mm.yyyy hh:mm:ss")
    if kind is ScalarType.BOOLEAN:
        flag = {"j": True, "ja": True, "true": True, "1": True}.get(text.casefold())
        if flag is None and text.casefold() in ("n", "nein", "false", "0"):
            flag = False
        return (flag, None) if flag is not None else (None, f"{text!r} is no yes/no value")
    return text, None


@dataclass(frozen=True, slots=True)
class Sheet:
    """One file version converted for its entity, without what depends on the election.

    ``rows`` are keyed by field name; ``joins`` hold the raw text of the join columns (None for
    a placeholder); for Wahlergebnisse, ``votes`` holds each row's vote columns in the order of
    ``letters``.
    """

    file: str
    dataset: str
    rows: tuple[Mapping[str, Any], ...]
    lines: tuple[int, ...]
    identities: tuple[tuple[str | None, str | None, str | None], ...]
    joins: tuple[Mapping[str, str | None], ...]
    letters: tuple[LetterColumn, ...] = ()
    votes: tuple[tuple[int | None, ...], ...] = ()
    warnings: tuple[DataWarning, ...] = ()


def build_sheet(
    table: Table, entity: Entity, dataset: str, vote_type: ScalarType | None = None
) -> Sheet:
    """Convert a parsed file for ``entity``; every problem becomes a warning with file and line."""
    log = WarningLog()
    log.extend(table.warnings)
    columns = [(f, table.index.get(f.source)) for f in entity.fields if f.source not in DERIVED]
    _check_columns(table, entity, dataset, log)
    letters: tuple[LetterColumn, ...] = ()
    if vote_type is not None:
        letters, _ = classify_columns(table.header, entity.by_source)
    letter_positions = [table.index[letter.column] for letter in letters]
    required = REQUIRED.get(dataset, ())
    kept: dict[tuple[Any, ...], _Entry] = {}
    for number, record in enumerate(table.records):
        row = _convert_record(table, record, columns, log)
        joins = _joins(table, record)
        missing = [c for c in required if row.get(entity.by_source[c].name) is None]
        # A placeholder cannot identify a row either (an empty ballot area can: the only one).
        missing += [c for c in UNIQUE.get(dataset, ()) if c in joins and joins[c] is None]
        if missing:
            log.add(
                "ROW_WITHOUT_KEY",
                f"the row has no {', '.join(missing)}; it was skipped",
                table.file,
                record.line,
                missing[0],
            )
            continue
        counts: tuple[int | None, ...] = ()
        if vote_type is not None:
            counts = _votes(table, record, letters, letter_positions, vote_type, log)
        entry = _Entry(record.line, row, _identity(table, record), joins, counts)
        identity = tuple(row.get(entity.by_source[c].name) for c in UNIQUE.get(dataset, ()))
        key = identity if identity else (number,)
        kept[key] = _newer(kept.get(key), entry, entity, table.file, log)
    entries = sorted(kept.values(), key=lambda e: e.line)
    return Sheet(
        file=table.file,
        dataset=dataset,
        rows=tuple(e.row for e in entries),
        lines=tuple(e.line for e in entries),
        identities=tuple(e.identity for e in entries),
        joins=tuple(e.joins for e in entries),
        letters=letters,
        votes=tuple(e.votes for e in entries) if vote_type is not None else (),
        warnings=log.freeze(),
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    line: int
    row: Mapping[str, Any]
    identity: tuple[str | None, str | None, str | None]
    joins: Mapping[str, str | None]
    votes: tuple[int | None, ...]


def _newer(
    seen: _Entry | None, entry: _Entry, entity: Entity, file: str, log: WarningLog
) -> _Entry:
    """Of two rows with the same identity in one file, the one entered last (by
    zeitstempel-erfassung where both have one, else the later line).
    """
    if seen is None:
        return entry
    stamp = entity.by_source.get("zeitstempel-erfassung")
    newer = entry
    if stamp is not None:
        first, second = seen.row.get(stamp.name), entry.row.get(stamp.name)
        if first is not None and second is not None and second < first:
            newer = seen
    log.add(
        "REPEATED_ROW",
        f"the row repeats the row of line {seen.line}; the one of line {newer.line} is used",
        file,
        entry.line,
    )
    return newer


def _check_columns(table: Table, entity: Entity, dataset: str, log: WarningLog) -> None:
    for column in (*IDENTITY, *REQUIRED.get(dataset, ())):
        if column not in table.index:
            log.add("MISSING_COLUMN", f"the file has no column {column!r}", table.file, 1, column)
    known = set(entity.by_source)
    if dataset == "Wahlergebnisse":
        _, unknown = classify_columns(table.header, known)
    else:
        unknown = tuple(name for name in table.header if name not in known)
    for name in unknown:
        log.add(
            "UNKNOWN_COLUMN",
            f"column {name!r} is not part of the {dataset} dataset; it was ignored",
            table.file,
            1,
            name,
        )


def _convert_record(
    table: Table, record: Record, columns: list[tuple[Any, int | None]], log: WarningLog
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field, position in columns:
        if position is None:
            row[field.name] = None
            continue
        value, problem = convert(record.values[position], field.type)
        if problem is not None:
            code = "PLACEHOLDER" if problem.startswith("placeholder") else "BAD_VALUE"
            log.add(code, f"{field.source}: {problem}", table.file, record.line, field.source)
        row[field.name] = value
    return row


def _identity(table: Table, record: Record) -> tuple[str | None, str | None, str | None]:
    gs, day, name = (table.get(record, column) for column in IDENTITY)
    return (
        gs.strip() if gs else None,
        german_date(day) if day else None,
        name.strip() if name else None,
    )


def _joins(table: Table, record: Record) -> dict[str, str | None]:
    joins: dict[str, str | None] = {}
    for column in _JOIN_COLUMNS:
        raw = (table.get(record, column) or "").strip()
        joins[column] = None if _PLACEHOLDER.match(raw) else raw
    return joins


def _votes(
    table: Table,
    record: Record,
    letters: tuple[LetterColumn, ...],
    positions: list[int],
    kind: ScalarType,
    log: WarningLog,
) -> tuple[int | None, ...]:
    counts: list[int | None] = []
    for letter, position in zip(letters, positions, strict=True):
        cell = record.values[position]
        if cell.isdigit() and kind in (ScalarType.INT, ScalarType.LONG):
            counts.append(int(cell))  # the common case, 150,000 times for a large file
            continue
        value, problem = convert(cell, kind)
        if problem is not None:
            log.add(
                "BAD_VALUE", f"{letter.column}: {problem}", table.file, record.line, letter.column
            )
        counts.append(value)
    return tuple(counts)


def entity_rows(sheet: Sheet, entity: Entity, election: Election, log: WarningLog) -> Iterator[Row]:
    """The rows of ``sheet`` as rows of ``entity`` in ``election`` (fresh dicts, safe to change)."""
    put = _setter(entity)
    derive = _DERIVE.get(entity.name)
    for row, line, identity, joins in zip(
        sheet.rows, sheet.lines, sheet.identities, sheet.joins, strict=True
    ):
        _check_identity(identity, election, sheet.file, line, log)
        out = dict(row)
        put(out, "wahl", election.wahl)
        put(out, "datei", sheet.file)
        put(out, "zeile", line)
        if derive is not None:
            derive(out, put, election.wahl, joins, entity)
        yield out


def _check_identity(
    identity: tuple[str | None, str | None, str | None],
    election: Election,
    file: str,
    line: int,
    log: WarningLog,
) -> None:
    gs, day, name = identity
    if gs is not None and gs != election.gs:
        log.add(
            "AGS_MISMATCH",
            f"wahl-behoerde-gs {gs} differs from {election.gs} of the election "
            f"(read from {election.source}); the row was kept in that election",
            file,
            line,
            "wahl-behoerde-gs",
        )
    if (day is not None and day != election.day) or (name is not None and name != election.name):
        log.add(
            "ELECTION_MISMATCH",
            f"wahl-datum/wahl-name ({day}, {name!r}) differ from the election "
            f"({election.day}, {election.name!r}, read from {election.source})",
            file,
            line,
        )


Setter = Callable[[dict[str, Any], str, Any], None]


def _setter(entity: Entity) -> Setter:
    names = {f.source: f.name for f in entity.fields}

    def put(row: dict[str, Any], source: str, value: Any) -> None:
        name = names.get(source)
        if name is not None:
            row[name] = value

    return put


def _value(row: Mapping[str, Any], entity: Entity, source: str) -> Any:
    field = entity.by_source.get(source)
    return None if field is None else row.get(field.name)


def partei_of(joins: Mapping[str, str | None]) -> str | None:
    """A party's join text: its short name, or its long name when the short name is empty."""
    short, long = joins.get("partei-kurzname"), joins.get("partei-langname")
    return short or long or None


def _key(wahl: str, text: str | None) -> str | None:
    return None if text is None else election_key(wahl, text)


def _derive_wahlgebiet(
    row: dict[str, Any], put: Setter, wahl: str, joins: Mapping[str, str | None], entity: Entity
) -> None:
    put(row, "bezirk_id", _key(wahl, joins["bezirk-nr"]))
    put(row, "stimmzettel_gebiet_id", _key(wahl, joins["stimmzettel-gebiet-nr"]))
    put(row, "kandidat_gebiet_id", _key(wahl, joins["kandidat-gebiet-nr"]))


def _derive_stimmzettel(
    row: dict[str, Any], put: Setter, wahl: str, joins: Mapping[str, str | None], entity: Entity
) -> None:
    area = joins["stimmzettel-gebiet-nr"]
    position = _value(row, entity, "stimmzettel-position")
    put(row, "stimmzettel_gebiet_id", _key(wahl, area))
    put(row, "stimmzettel_id", None if area is None else election_key(wahl, area, position))
    put(row, "partei_id", _key(wahl, partei_of(joins)))


def _derive_kandidat(
    row: dict[str, Any], put: Setter, wahl: str, joins: Mapping[str, str | None], entity: Entity
) -> None:
    party = partei_of(joins)
    place = _value(row, entity, "kandidat-listenplatz")
    put(row, "partei_id", _key(wahl, party))
    put(row, "kandidat_gebiet_id", _key(wahl, joins["kandidat-gebiet-nr"]))
    listed = party is not None and isinstance(place, int) and place > 0
    put(row, "kandidat_id", election_key(wahl, party, place) if listed else None)


def _derive_wahlergebnis(
    row: dict[str, Any], put: Setter, wahl: str, joins: Mapping[str, str | None], entity: Entity
) -> None:
    put(row, "bezirk_id", _key(wahl, joins["bezirk-nr"]))


_DERIVE: dict[str, Callable[[dict[str, Any], Setter, str, Mapping[str, str | None], Entity], None]]
_DERIVE = {
    "Wahlgebiet": _derive_wahlgebiet,
    "Stimmzettel": _derive_stimmzettel,
    "Kandidat": _derive_kandidat,
    "Wahlergebnis": _derive_wahlergebnis,
}


@dataclass(frozen=True, slots=True)
class StimmeFilter:
    """What a query restricts Stimme rows to, checked before a row is built (Karlsruhe's
    Gemeinderat file alone gives 150,000 of them); the full filter is applied afterwards.
    """

    bezirk_ids: frozenset[Any] | None = None
    bezirk_nrs: frozenset[Any] | None = None
    kennungen: frozenset[Any] | None = None
    positions: frozenset[Any] | None = None
    kandidatnummern: frozenset[Any] | None = None
    stimmzettel_ids: frozenset[Any] | None = None
    kandidat_ids: frozenset[Any] | None = None

    @classmethod
    def of(cls, where: Filter | None, entity: Entity) -> StimmeFilter:
        """The restrictions ``where`` puts on the top level (None where it puts none)."""

        def values(source: str, numeric: bool = False) -> frozenset[Any] | None:
            field = entity.by_source.get(source)
            found = None if field is None else equal_values(where, field.name)
            if found is None:
                return None
            if numeric:
                try:
                    return frozenset(None if v is None else int(v) for v in found)
                except (TypeError, ValueError):
                    return None
            return frozenset(found)

        return cls(
            bezirk_ids=values("bezirk_id"),
            bezirk_nrs=values("bezirk-nr"),
            kennungen=values("kennung"),
            positions=values("position", numeric=True),
            kandidatnummern=values("kandidatnummer", numeric=True),
            stimmzettel_ids=values("stimmzettel_id"),
            kandidat_ids=values("kandidat_id"),
        )

    def columns(self, letters: tuple[LetterColumn, ...]) -> list[int]:
        """Indexes of the vote columns that can match."""
        return [
            i
            for i, letter in enumerate(letters)
            if (self.kennungen is None or letter.kennung in self.kennungen)
            and (self.positions is None or letter.position in self.positions)
            and (self.kandidatnummern is None or letter.kandidatnummer in self.kandidatnummern)
        ]

    def keys(self, ballot: str | None, candidate: str | None) -> bool:
        """Whether a column with these join keys can match."""
        return (self.stimmzettel_ids is None or ballot in self.stimmzettel_ids) and (
            self.kandidat_ids is None or candidate in self.kandidat_ids
        )

    def district(self, bezirk_id: str | None, bezirk_nr: str | None) -> bool:
        """Whether rows of this district can match."""
        return (self.bezirk_ids is None or bezirk_id in self.bezirk_ids) and (
            self.bezirk_nrs is None or bezirk_nr in self.bezirk_nrs
        )


# The sources of a vote row, in the order its dict holds them.
_STIMME_SOURCES = (
    "wahl",
    "datei",
    "zeile",
    "bezirk-nr",
    "bezirk_id",
    "spalte",
    "kennung",
    "position",
    "kandidatnummer",
    "anzahl",
    "stimmzettel-gebiet-nr",
    "stimmzettel_id",
    "kandidat_id",
)


def stimme_rows(
    sheet: Sheet,
    entity: Entity,
    election: Election,
    ballot_areas: Mapping[str, str | None],
    parties: Mapping[tuple[str | None, int], str | None],
    want: StimmeFilter,
) -> Iterator[Row]:
    """One row per vote column of each result row of ``sheet`` (a Wahlergebnisse file).

    ``ballot_areas`` maps bezirk-nr to the district's stimmzettel-gebiet-nr (from the
    Wahlgebietseinteilungen file), ``parties`` (ballot area, position) to the party's join text
    (from the Stimmzettel file), so each count joins the ballot position and candidate it counts.
    """
    # Field names of the sources a vote row sets, in this order (None: the entity lacks it).
    names = tuple(
        None if entity.by_source.get(source) is None else entity.by_source[source].name
        for source in _STIMME_SOURCES
    )
    every = None not in names
    full = tuple(n for n in names if n is not None)  # ``names`` when the entity has them all
    wahl = election.wahl
    file = sheet.file
    chosen = want.columns(sheet.letters)
    # The join keys of a column depend on the district's ballot area only: work them out once
    # per area, dropping the columns the filter excludes.
    plans: dict[str | None, list[tuple[int, LetterColumn, str | None, str | None]]] = {}
    for line, joins, counts in zip(sheet.lines, sheet.joins, sheet.votes, strict=True):
        district = joins["bezirk-nr"]
        bezirk_id = _key(wahl, district)
        if not want.district(bezirk_id, district):
            continue
        area = ballot_areas.get(district or "", "")
        plan = plans.get(area)
        if plan is None:
            plan = plans[area] = _plan(wahl, area, sheet.letters, chosen, parties, want)
        head = (wahl, file, line, district, bezirk_id)
        ballot_area = area or None
        for index, letter, ballot, candidate in plan:
            values = (
                *head,
                letter.column,
                letter.kennung,
                letter.position,
                letter.kandidatnummer,
                counts[index],
                ballot_area,
                ballot,
                candidate,
            )
            if every:
                yield dict(zip(full, values, strict=True))
            else:
                yield {n: v for n, v in zip(names, values, strict=True) if n is not None}


def _plan(
    wahl: str,
    area: str | None,
    letters: tuple[LetterColumn, ...],
    chosen: list[int],
    parties: Mapping[tuple[str | None, int], str | None],
    want: StimmeFilter,
) -> list[tuple[int, LetterColumn, str | None, str | None]]:
    plan = []
    for index in chosen:
        letter = letters[index]
        ballot = None if area is None else election_key(wahl, area, letter.position)
        candidate = _candidate(wahl, area, letter, parties)
        if want.keys(ballot, candidate):
            plan.append((index, letter, ballot, candidate))
    return plan


def _candidate(
    wahl: str,
    area: str | None,
    letter: LetterColumn,
    parties: Mapping[tuple[str | None, int], str | None],
) -> str | None:
    if letter.kandidatnummer is None:
        return None
    party = parties.get((area, letter.position))
    return None if party is None else election_key(wahl, party, letter.kandidatnummer)
