"""Council-level party totals: a council's party results summed over its electoral districts.

A council elected in several districts (``POCET_OBVODU`` > 1: Praha hl.m. and several Prague
boroughs) has no parties of its own in ČSÚ's council block: its ``VYSLEDEK`` holds only the
turnout and the parties hang off each ``OBVOD``. The totals entity (``documents.councils.totals``
in ``Source.json``, ``VOLEBNI_STRANA_OBEC`` in CZ) gives every council one row per party
(``VSTRANA``, the nation-wide code ČSÚ's national summary sums by): votes, seats, candidates
and lists summed over the districts, and the percentages recomputed for the whole council
(votes of the council's valid votes, seats of its members, rounded half up to two decimals;
ČSÚ's own figures of the recorded single-district councils agree). A council with one district
gets its own parties, grouped the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gateway.model.datamodel import Datamodel, Entity
from gateway.model.errors import DescriptorError
from gateway.model.query import Row
from resolvers.volby_xml.rows import MappedDocument

__all__ = ["CouncilTotals", "percent"]

_HUNDREDTH = Decimal("0.01")
_NAME_SEPARATOR = "; "
# The entities the totals are derived from: the council, its party lists, its turnout.
_FROM = ("OBEC", "VOLEBNI_STRANA", "UCAST")


def percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in per cent, rounded half up to two decimals (0 of nothing)."""
    if whole <= 0:
        return 0.0
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(_HUNDREDTH, ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class CouncilTotals:
    """Derives the totals rows of a council document (district or single council)."""

    totals: Entity
    council: Entity
    party: Entity
    turnout: Entity

    @classmethod
    def of(cls, datamodel: Datamodel, councils: Mapping[str, Any] | None) -> CouncilTotals | None:
        """The deriver the ``councils`` options name (None when none is configured).

        A named totals entity the datamodel lacks, or a datamodel without the council blocks
        it is derived from, is a DescriptorError.
        """
        name = (councils or {}).get("totals")
        if name is None:
            return None
        entities = datamodel.entities
        wanted = (str(name), *_FROM)
        missing = [n for n in wanted if n not in entities]
        if missing:
            raise DescriptorError(
                f"documents.councils.totals {name!r}: the datamodel has no {', '.join(missing)}"
            )
        return cls(*(entities[n] for n in wanted))

    def add(self, document: MappedDocument) -> MappedDocument:
        """``document`` with the totals rows of every council it holds."""
        councils = document.of(self.council.name)
        if document.error is not None or not councils:
            return document
        parties: dict[Any, list[Row]] = {}
        for row in document.of(self.party.name):
            parties.setdefault(self._get(row, self.party, "KODZASTUP"), []).append(row)
        valid: dict[Any, int] = {}
        for row in document.of(self.turnout.name):
            if self._get(row, self.turnout, "CIS_OBVODU") is None:
                code = self._get(row, self.turnout, "KODZASTUP")
                valid[code] = _int(self._get(row, self.turnout, "PLATNE_HLASY"))
        out: list[Row] = []
        for council in councils:
            code = self._get(council, self.council, "KODZASTUP")
            lists = parties.get(code, [])
            out.extend(self._council(council, lists, valid.get(code)))
        return dataclasses.replace(document, rows={**document.rows, self.totals.name: tuple(out)})

    def _council(self, council: Row, lists: list[Row], valid: int | None) -> list[Row]:
        by_party: dict[str, list[Row]] = {}
        for row in lists:
            by_party.setdefault(str(self._get(row, self.party, "VSTRANA")), []).append(row)
        if valid is None:
            valid = sum(_int(self._get(r, self.party, "HLASY")) for r in lists)
        members = _int(self._get(council, self.council, "VOLENO_ZASTUP"))
        # volby, NUTS, KODZASTUP, OZNAC_TYPU and the council's key OBEC_ID.
        context = {
            f.source: council.get(f.name)
            for f in self.council.fields
            if f.source in self.totals.by_source
        }
        out = []
        for vstrana, rows in by_party.items():
            votes = sum(_int(self._get(r, self.party, "HLASY")) for r in rows)
            seats = sum(_int(self._get(r, self.party, "ZASTUPITELE_POCET")) for r in rows)
            names = list(dict.fromkeys(str(self._get(r, self.party, "NAZEV_STRANY")) for r in rows))
            values: dict[str, Any] = {
                **context,
                "VSTRANA": vstrana,
                "NAZEV_STRANY": _NAME_SEPARATOR.join(names),
                "HLASY": votes,
                "HLASY_PROC": percent(votes, valid),
                "ZASTUPITELE_POCET": seats,
                "ZASTUPITELE_PROC": percent(seats, members),
                "KANDIDATU_POCET": sum(
                    _int(self._get(r, self.party, "KANDIDATU_POCET")) for r in rows
                ),
                "LISTIN_POCET": len(rows),
                "OBVODU_POCET": len({self._get(r, self.party, "CIS_OBVODU") for r in rows}),
                "PLATNE_HLASY": valid,
            }
            out.append({f.name: values.get(f.source) for f in self.totals.fields})
        return out

    @staticmethod
    def _get(row: Row, entity: Entity, source: str) -> Any:
        field = entity.by_source.get(source)
        return None if field is None else row.get(field.name)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
