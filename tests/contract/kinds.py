"""The kind descriptors of the contract: per source kind, one register's entity and its rows.

Each :class:`ContractKind` names a register, one entity of it (its GraphQL root field), the
filter that bounds the rows the contract looks at (``scope``) and those rows, computed from the
raw recorded files in ``data/`` by the independent readers of ``tests/resolvers/*``. Nothing
here asks the code under test: an expected value is what the recording holds.

A kind that cannot do something the contract asks says so in ``lacks`` (capability → reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from resolvers.replica_kit.faults import Fault
from tests.resolvers.odata import raw as ft_raw
from tests.resolvers.valg_sftp.rawdata import FV, geografi, read_raw
from tests.resolvers.volby_xml.raw import batch_files, newest_precincts
from tests.resolvers.wahldaten_csv.raw import elections

Row = dict[str, Any]

# Capabilities a kind may lack (with a reason in ``ContractKind.lacks``).
RELATION = "relation"
FAULTS = "faults"


@dataclass(frozen=True)
class Relation:
    """One navigation: the selection under a node, and what it must hold per row."""

    selection: str
    expected: Callable[[Row], Any]
    """What the relation holds for a recorded row (from the raw files)."""
    answered: Callable[[dict[str, Any]], Any]
    """The same, read from a node of the answer."""


@dataclass(frozen=True)
class ContractKind:
    """What the contract needs to know about one source kind."""

    kind: str
    """The fixture kind (``tests.fixtures.KINDS``) whose replica serves the register."""
    register: str
    entity: str
    """The GraphQL root field, ``{REG}_{Entity}``."""
    key: str
    """A field unique within the scope: the rows' identity, ordered and paged on."""
    fields: tuple[str, ...]
    """Fields compared with the recording."""
    scope: Mapping[str, Any]
    """The ``where`` (as data) bounding the rows the contract looks at."""
    rows: Callable[[], list[Row]]
    """Every row within ``scope``, from the raw recorded files, with GraphQL field names."""
    eq_field: str
    """A field the equality filter is tried on (not in ``scope``)."""
    text_field: str
    """A text field: a filter on it holding a lone surrogate is malformed."""
    text_type: str = "String"
    """Its GraphQL input type."""
    relation: Relation | None = None
    extra_registers: tuple[str, ...] = ()
    """Registers loaded beside ``register`` (never contacted by the contract)."""
    unused: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Options of ``extra_registers``: upstreams nothing listens on."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Source options of ``register`` beyond the replica's address."""
    lacks: Mapping[str, str] = field(default_factory=dict)

    def project(self, row: Row) -> Row:
        return {name: row[name] for name in self.fields}


# -- FT: FT_Stemme, the North Atlantic members' votes on the first 20 ballots ---------------

FT_BALLOTS = tuple(range(1, 21))


@cache
def _ft_rows() -> list[Row]:
    wanted = set(FT_BALLOTS)
    return [dict(r) for r in ft_raw.stemme() if r["afstemningid"] in wanted]


def _ft_member(row: Row) -> Any:
    return ft_raw.aktoer()[row["aktoerid"]]["navn"]


FT = ContractKind(
    kind="odata",
    register="FT",
    entity="FT_Stemme",
    key="id",
    fields=("id", "typeid", "afstemningid", "aktoerid"),
    scope={"afstemningid": {"in": list(FT_BALLOTS)}},
    rows=_ft_rows,
    eq_field="aktoerid",
    text_field="opdateringsdato",
    text_type="DateTime",
    relation=Relation(
        "Aktoer { navn }",
        expected=_ft_member,
        answered=lambda node: (node["Aktoer"] or {}).get("navn"),
    ),
)

# -- VALG: VALG_Kommune of the 2026 Folketing election, each in its Region ------------------


@cache
def _valg_geografi() -> tuple[list[Row], dict[int, Row]]:
    raw = read_raw()
    regions = {int(r["Kode"]): r for r in geografi(raw, "Region")}
    return geografi(raw, "Kommune"), regions


def _valg_rows() -> list[Row]:
    kommuner, _ = _valg_geografi()
    return [
        {
            "Kode": int(k["Kode"]),
            "Navn": k["Navn"],
            "Regionskode": int(k["Regionskode"]),
            "Dagi_id": str(k["Dagi_id"]),
        }
        for k in kommuner
    ]


def _valg_region(row: Row) -> Any:
    _, regions = _valg_geografi()
    return regions[row["Regionskode"]]["Navn"]


VALG = ContractKind(
    kind="valg",
    register="VALG",
    entity="VALG_Kommune",
    key="Kode",
    fields=("Kode", "Navn", "Regionskode", "Dagi_id"),
    scope={"Valgmappe": {"eq": FV}},
    rows=_valg_rows,
    eq_field="Regionskode",
    text_field="Navn",
    relation=Relation(
        "Region { Navn }",
        expected=_valg_region,
        answered=lambda node: (node["Region"] or {}).get("Navn"),
    ),
    # VALG's relations into FT need FT loaded, not reachable.
    extra_registers=("FT",),
    unused={"FT": {"url": "http://127.0.0.1:9/api/"}},
    options={"readTimeout": 1.0, "connectTimeout": 2.0},
)

# -- CZPREZ: CZPREZ_OKRSEK, the precincts of round 1 (newest version), with their votes ---------


@cache
def _cz_rows() -> list[Row]:
    out = []
    for (kolo, obec, okrsek), found in newest_precincts(batch_files(1)).items():
        out.append(
            {
                "OKRSEK_ID": f"{kolo}|{obec}|{okrsek}",
                "KOLO": kolo,
                "CIS_OBEC": obec,
                "CIS_OKRSEK": okrsek,
                "PORADI_ZPRAC": found["PORADI_ZPRAC"],
                "PLATNE_HLASY": found["PLATNE_HLASY"],
                "votes": dict(found["votes"]),
            }
        )
    return out


CZPREZ = ContractKind(
    kind="volby",
    register="CZPREZ",
    entity="CZPREZ_OKRSEK",
    key="OKRSEK_ID",
    fields=("OKRSEK_ID", "KOLO", "CIS_OBEC", "CIS_OKRSEK", "PORADI_ZPRAC", "PLATNE_HLASY"),
    scope={"KOLO": {"eq": 1}},
    rows=_cz_rows,
    eq_field="CIS_OBEC",
    text_field="CIS_OKRSEK",
    relation=Relation(
        "HLASY_OKRSEK(first: 1000) { nodes { PORADOVE_CISLO HLASY } }",
        expected=lambda row: row["votes"],
        answered=lambda node: {
            n["PORADOVE_CISLO"]: n["HLASY"] for n in node["HLASY_OKRSEK"]["nodes"]
        },
    ),
)

# -- DE: DE_Wahlparameter, the eight recorded elections, each with its districts ---------------


@cache
def _de_rows() -> list[Row]:
    out = []
    for election in elections():
        (row,) = election.rows("Wahlparameter")
        day, month, year = row["wahl-datum"].split(".")
        out.append(
            {
                "wahl": election.wahl,
                "wahl_behoerde_gs": row["wahl-behoerde-gs"],
                "wahl_behoerde_name": row["wahl-behoerde-name"],
                "wahl_datum": f"{year}-{month}-{day}",
                "districts": len(election.rows("Wahlgebietseinteilungen")),
            }
        )
    return out


DE = ContractKind(
    kind="wahldaten",
    register="DE",
    entity="DE_Wahlparameter",
    key="wahl",
    fields=("wahl", "wahl_behoerde_gs", "wahl_behoerde_name", "wahl_datum"),
    scope={},
    rows=_de_rows,
    eq_field="wahl_behoerde_gs",
    text_field="wahl_behoerde_name",
    relation=Relation(
        "Wahlgebiete { totalCount }",
        expected=lambda row: row["districts"],
        answered=lambda node: node["Wahlgebiete"]["totalCount"],
    ),
)

CONTRACT_KINDS: tuple[ContractKind, ...] = (FT, VALG, CZPREZ, DE)


# -- breaking an upstream ------------------------------------------------------------------


def faults_of(handle: Any) -> Any:
    """The fault set of a running replica (the DE demo handle holds its replica)."""
    return getattr(handle, "replica", handle).faults


def break_upstream(handle: Any) -> None:
    """Make every request to the replica fail: the replica kit's ``status`` fault, on every
    request until mended (HTTP: 503; SFTP: a failure status)."""
    faults_of(handle).inject(Fault("status", status=503, times=None))


def mend_upstream(handle: Any) -> None:
    faults_of(handle).clear()
