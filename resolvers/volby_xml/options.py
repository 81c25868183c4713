"""The ``Source.json`` options of a ``volby-xml`` register, typed and checked.

Besides ``kind``, ``datamodel`` and the options every kind has (``rate``, ``staleIfError``, …
in ``gateway/dls/annex_schemas/Source.schema.json``):

``url``          base URL (``https://www.volby.cz``; required)
``elections``    ``[{"context": {"volby": "kv2022"}, "path": "pls/kv2022", "params": {...}}]``:
                 the values every row of that election gets, its URL path and the parameters
                 every request carries (``datumvoleb``, ``kolo``); required, at least one
``districts``    NUTS codes read when a query names no council or district: a list for every
                 election, or lists keyed by the election's first context value
``documents``    which endpoints exist and which entities each serves (``national``,
                 ``councils``, ``batches``; defaults fit the municipal elections); keys in
                 camelCase (``districtEndpoint``, ``neverSet``, …; the former snake_case
                 is still read, with a warning); ``councils.totals`` names the entity of
                 the council-level party totals the gateway derives
                 (:mod:`resolvers.volby_xml.totals`; none by default)
``ttl``          seconds a document is cached (60: the upstream's own web-cache period)
``timeout``      seconds per request (30)
``concurrency``  parallel requests (4), limited by the register's guard
``maxBytes``     the largest document (64 MiB; ``max_bytes`` is its old spelling, still
                 accepted with a warning)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model.errors import DescriptorError
from gateway.sources.options import Option, OptionSet, old_spellings, respelled

__all__ = [
    "DOCUMENT_SPELLINGS",
    "OPTIONS",
    "Election",
    "Families",
    "VolbyConfig",
    "check",
    "parse",
    "warnings",
]


def _elections_problem(value: Any) -> str | None:
    if not value:
        return "must list at least one election"
    for index, spec in enumerate(value):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("context"), Mapping):
            return f"item {index} needs a 'context' object"
        if not isinstance(spec.get("path"), str):
            return f"item {index} needs a 'path'"
    return None


OPTIONS = OptionSet(
    "volby-xml",
    [
        Option("url", "string", required=True),
        Option("elections", "array", required=True, check=_elections_problem),
        Option("districts", ("array", "object"), []),
        Option("documents", "object", None),
        Option("ttl", "number", 60.0, minimum=0),
        Option("timeout", "number", 30.0, positive=True),
        Option("concurrency", "integer", 4, positive=True),
        Option("maxBytes", "integer", 64 * 1024 * 1024, positive=True, aliases=("max_bytes",)),
    ],
)

# Older spellings of the keys of a ``documents`` block, still read: old -> name.
DOCUMENT_SPELLINGS = {
    "never_set": "neverSet",
    "district_endpoint": "districtEndpoint",
    "district_parameter": "districtParameter",
    "district_field": "districtField",
    "council_endpoint": "councilEndpoint",
    "council_parameter": "councilParameter",
    "council_field": "councilField",
}
_FAMILIES = ("national", "councils", "batches")

_NATIONAL_DEFAULT: dict[str, Any] = {
    "endpoint": "vysledky",
    "entities": ["TYP_ZASTUP", "VOLEBNI_STRANA", "UCAST"],
    "neverSet": [
        "KODZASTUP", "NUTS", "CIS_OBVODU", "POR_STR_HLAS_LIST", "KANDIDATU_POCET", "OBEC_ID",
        "OBVOD_ID",
    ],
}  # fmt: skip
_COUNCILS_DEFAULT: dict[str, Any] = {
    "districtEndpoint": "vysledky_obce_okres",
    "districtParameter": "nuts",
    "districtField": "NUTS",
    "councilEndpoint": "vysledky_obec",
    "councilParameter": "cislo_obce",
    "councilField": "KODZASTUP",
    "entities": ["OBEC", "OBVOD", "VOLEBNI_STRANA", "ZASTUPITEL", "UCAST"],
    "neverSet": ["OZNAC_TYPU", "TYP_ZASTUP_ID"],
}
_BATCHES_DEFAULT: dict[str, Any] = {
    "endpoint": "vysledky_okrsky",
    "parameter": "davka",
    "entities": ["DAVKA", "OKRSEK", "HLASY_OKRSEK", "PRUBEH"],
}


@dataclass(frozen=True, slots=True)
class Election:
    """One election (or round) of the register: the values it gives its rows and its URLs."""

    context: Mapping[str, Any]
    path: str
    params: Mapping[str, str]
    districts: tuple[str, ...]

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.context.items())


@dataclass(frozen=True, slots=True)
class Families:
    """Which endpoints exist for the register and which entities each serves."""

    national: Mapping[str, Any] | None
    councils: Mapping[str, Any] | None
    batches: Mapping[str, Any] | None

    def of(self, entity: str) -> list[str]:
        """The document families an entity's rows come from."""
        return [
            name
            for name, spec in (
                ("national", self.national),
                ("councils", self.councils),
                ("batches", self.batches),
            )
            if spec is not None and entity in spec.get("entities", ())
        ]


@dataclass(frozen=True, slots=True)
class VolbyConfig:
    """The ``Source.json`` options of a volby.cz register, checked once (see the module)."""

    url: str
    elections: tuple[Election, ...]
    families: Families
    ttl: float
    timeout: float
    concurrency: int
    max_bytes: int

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> VolbyConfig:
        """Read and check the options (DescriptorError when they are unusable)."""
        try:
            return cls._of(options)
        except (KeyError, TypeError, ValueError) as exc:
            raise DescriptorError(f"invalid volby-xml source options: {exc!r}") from exc

    @classmethod
    def _of(cls, options: Mapping[str, Any]) -> VolbyConfig:
        documents = options.get("documents")
        if documents is None:
            families = Families(_NATIONAL_DEFAULT, _COUNCILS_DEFAULT, _BATCHES_DEFAULT)
        else:
            families = Families(
                _merged(_NATIONAL_DEFAULT, documents.get("national")),
                _merged(_COUNCILS_DEFAULT, documents.get("councils")),
                _merged(_BATCHES_DEFAULT, documents.get("batches")),
            )
        v = OPTIONS.values(options)
        districts = v["districts"]
        elections = tuple(_election(e, districts) for e in options["elections"])
        if not elections:
            raise ValueError("no election configured")
        return cls(
            url=str(options["url"]).rstrip("/"),
            elections=elections,
            families=families,
            ttl=float(v["ttl"]),
            timeout=float(v["timeout"]),
            concurrency=max(1, int(v["concurrency"])),
            max_bytes=int(v["maxBytes"]),
        )


def _merged(
    default: Mapping[str, Any], given: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    return None if given is None else {**default, **respelled(given, DOCUMENT_SPELLINGS)}


def _election(spec: Mapping[str, Any], districts: Any) -> Election:
    context = dict(spec["context"])
    if isinstance(districts, Mapping):
        # Per election, keyed by the first context value (e.g. {"kv2014": [...]}).
        own = districts.get(str(next(iter(context.values()), "")), [])
    else:
        own = districts
    return Election(
        context=context,
        path=str(spec["path"]).strip("/"),
        params={str(k): str(v) for k, v in dict(spec.get("params", {})).items()},
        districts=tuple(str(d) for d in spec.get("districts", own)),
    )


def parse(options: Mapping[str, Any]) -> VolbyConfig:
    """The options of ``options`` (DescriptorError when they are unusable)."""
    return VolbyConfig.of(options)


def check(options: Mapping[str, Any]) -> list[str]:
    """The problems of the options, one line each naming the option."""
    problems = OPTIONS.problems(options)
    if not problems:
        try:
            VolbyConfig.of(options)
        except DescriptorError as exc:
            problems.append(f"options 'elections'/'districts'/'documents': {exc.message}")
    return problems


def warnings(options: Mapping[str, Any]) -> list[str]:
    """Old spellings in use, one line each with the name to write."""
    out = OPTIONS.deprecated(options)
    documents = options.get("documents")
    if isinstance(documents, Mapping):
        for family in _FAMILIES:
            block = documents.get(family)
            if isinstance(block, Mapping):
                out += old_spellings(block, DOCUMENT_SPELLINGS, f"documents.{family}")
    return out
