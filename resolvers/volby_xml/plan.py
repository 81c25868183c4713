"""Which volby.cz documents a query needs (filter pushdown into endpoints and parameters).

volby.cz answers four kinds of documents per election: the national summary (``vysledky``),
a district with all its councils (``vysledky_obce_okres?nuts=``), one council
(``vysledky_obec?cislo_obce=``) and the precinct batches (``vysledky_okrsky?davka=``). A filter
on a council (``KODZASTUP``) or a district (``NUTS``), given directly or through a relation key
(``OBEC_ID``, ``OBVOD_ID``, …), selects the documents; without one the national document is read,
or every configured district with a concurrency limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.model.datamodel import Datamodel, Entity
from gateway.model.filters import equal_values
from gateway.model.keys import reference_source, split_key
from gateway.model.query import And, Condition, Filter, Or, Query
from resolvers.volby_xml.options import Election, Families, VolbyConfig

__all__ = ["DocRequest", "Election", "Families", "VolbyConfig", "plan_documents"]

_COUNCIL_CODE = re.compile(r"[0-9]{6}")
_DISTRICT_CODE = re.compile(r"CZ[0-9A-Z]{1,6}")


@dataclass(frozen=True, slots=True)
class DocRequest:
    """One document to read: where, with which parameters, and what its rows are told."""

    election: Election
    endpoint: str
    params: Mapping[str, str]
    context: Mapping[str, Any]
    from_filter: bool = False
    fanout: bool = False

    def url(self, base: str) -> str:
        return f"{base}/{self.election.path}/{self.endpoint}"

    @property
    def query_params(self) -> dict[str, str]:
        return {**self.election.params, **self.params}


# --------------------------------------------------------------------------- restrictions


class _Restrictions:
    """What a query's filter says about context values, councils and districts."""

    def __init__(self, query: Query, datamodel: Datamodel) -> None:
        self.query = query
        self.entity = query.entity
        self.refs = self._reference_values(datamodel)

    def direct(self, source: str) -> set[str] | None:
        """The values a field (by source name) is restricted to; None when free."""
        field = self.entity.by_source.get(source)
        if field is None:
            return None
        values = equal_values(self.query.where, field.name)
        if values is None or None in values:
            return None
        return {str(v) for v in values}

    def _reference_values(self, datamodel: Datamodel) -> list[list[dict[str, str]]]:
        # Each restricted relation key (OBEC_ID in [...]) as the key parts it stands for.
        out = []
        for parent in datamodel.entities.values():
            field = self.entity.by_source.get(reference_source(parent.name))
            if field is None:
                continue
            values = equal_values(self.query.where, field.name)
            if values is None or None in values:
                continue
            sources = [parent.field(k).source for k in parent.key]
            out.append([dict(zip(sources, split_key(str(v)), strict=False)) for v in values])
        return out

    def restricted(self, source: str) -> bool:
        """Whether a field is restricted to non-null values."""
        return self.direct(source) is not None

    def matches_election(self, election: Election) -> bool:
        for key, value in election.context.items():
            allowed = self.direct(key)
            if allowed is not None and str(value) not in allowed:
                return False
        return all(any(_agrees(p, election) for p in parts) for parts in self.refs)

    def values(self, source: str, election: Election) -> set[str] | None:
        """Values of ``source`` the rows of ``election`` may have (None: any)."""
        result = self.direct(source)
        for parts in self.refs:
            found = {p[source] for p in parts if _agrees(p, election) and p.get(source)}
            if any(source in p for p in parts):
                result = found if result is None else result & found
        return result


def _agrees(parts: Mapping[str, str], election: Election) -> bool:
    return all(str(v) == parts[k] for k, v in election.context.items() if k in parts)


def _mentioned_fields(where: Filter | None) -> set[str]:
    if where is None:
        return set()
    if isinstance(where, Condition):
        return {where.field}
    if isinstance(where, And | Or):
        return set().union(*(_mentioned_fields(i) for i in where.items))
    return set()


# --------------------------------------------------------------------------- planning


@dataclass(slots=True)
class Plan:
    """The documents a query needs, and whether that meant fanning out."""

    requests: list[DocRequest] = field(default_factory=list)
    fanout: bool = False


DistrictOf = Callable[[Election, str], "str | None"]


def plan_documents(
    query: Query,
    config: VolbyConfig,
    datamodel: Datamodel,
    district_of: DistrictOf | None = None,
) -> Plan:
    """The result documents (not batches) ``query`` needs.

    ``district_of`` tells the district a council was seen in, if known: several councils of
    one district are then read from the district document (one request, often cached)
    instead of one council document each.
    """
    entity = query.entity
    restrictions = _Restrictions(query, datamodel)
    families = _possible_families(entity, config.families, restrictions)
    plan = Plan()
    for election in config.elections:
        if not restrictions.matches_election(election):
            continue
        if "national" in families and config.families.national is not None:
            endpoint = str(config.families.national["endpoint"])
            plan.requests.append(DocRequest(election, endpoint, {}, election.context))
        if "councils" in families and config.families.councils is not None:
            spec = config.families.councils
            _plan_councils(plan, query, election, spec, restrictions, district_of)
    return plan


def _possible_families(
    entity: Entity, families: Families, restrictions: _Restrictions
) -> list[str]:
    names = [n for n in families.of(entity.name) if n != "batches"]
    if len(names) < 2:
        return names
    # Rows of a family leave some fields empty; a filter needing them excludes the family.
    specs = {"national": families.national, "councils": families.councils}
    kept = [
        n
        for n in names
        if not any(restrictions.restricted(f) for f in (specs[n] or {}).get("neverSet", ()))
    ]
    return kept


def _plan_councils(
    plan: Plan,
    query: Query,
    election: Election,
    spec: Mapping[str, Any],
    restrictions: _Restrictions,
    district_of: DistrictOf | None,
) -> None:
    council_field, district_field = str(spec["councilField"]), str(spec["districtField"])
    councils = restrictions.values(council_field, election)
    districts = restrictions.values(district_field, election)
    if councils is not None and not _needs(query, district_field):
        codes = sorted(c for c in councils if _COUNCIL_CODE.fullmatch(c))
        grouped = _by_district(codes, election, district_of)
        for district, members in grouped.items():
            if district is not None and len(members) > 1:
                _add_district(plan, election, spec, district, from_filter=True)
                continue
            for code in members:
                params = {str(spec["councilParameter"]): code}
                endpoint = str(spec["councilEndpoint"])
                plan.requests.append(DocRequest(election, endpoint, params, election.context, True))
        return
    if districts is not None:
        wanted: Iterable[str] = sorted(d for d in districts if _DISTRICT_CODE.fullmatch(d))
        from_filter = True
    else:
        wanted, from_filter = election.districts, False
        plan.fanout = plan.fanout or bool(election.districts)
    for code in wanted:
        _add_district(plan, election, spec, code, from_filter=from_filter)


def _add_district(
    plan: Plan, election: Election, spec: Mapping[str, Any], code: str, *, from_filter: bool
) -> None:
    context = {**election.context, str(spec["districtField"]): code}
    params = {str(spec["districtParameter"]): code}
    endpoint = str(spec["districtEndpoint"])
    request = DocRequest(election, endpoint, params, context, from_filter, fanout=not from_filter)
    if request not in plan.requests:
        plan.requests.append(request)


def _by_district(
    codes: Sequence[str], election: Election, district_of: DistrictOf | None
) -> dict[str | None, list[str]]:
    grouped: dict[str | None, list[str]] = {}
    for code in codes:
        district = district_of(election, code) if district_of is not None else None
        grouped.setdefault(district, []).append(code)
    return grouped


def _needs(query: Query, source: str) -> bool:
    """Whether the query reads, filters or orders on a field (council documents lack it)."""
    field = query.entity.by_source.get(source)
    if field is None:
        return False
    used = _mentioned_fields(query.where) | {k.field for k in query.order}
    return field.name in used or field.name in query.fields


def batch_request(election: Election, spec: Mapping[str, Any], number: int | None) -> DocRequest:
    """The request for batch ``number`` (None: the newest) of an election."""
    params = {str(spec["parameter"]): "" if number is None else str(number)}
    return DocRequest(election, str(spec["endpoint"]), params, election.context)


def elections_for(query: Query, config: VolbyConfig, datamodel: Datamodel) -> Sequence[Election]:
    """The elections a query's filter leaves possible."""
    restrictions = _Restrictions(query, datamodel)
    return [e for e in config.elections if restrictions.matches_election(e)]
