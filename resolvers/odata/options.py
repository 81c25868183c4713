"""The ``Source.json`` options of an ``odata`` register, typed and checked.

Besides ``kind``, ``datamodel`` and the options every kind has (``timeout``, ``rate``,
``staleIfError``, … in ``gateway/dls/annex_schemas/Source.schema.json``):

``url``              the service root (required)
``ttl``              seconds a response is cached (300)
``pageSize``         rows the service returns per page at most (100)
``filterFunctions``  the OData filter functions the service evaluates
                     (``["substringof", "startswith"]``); others are evaluated in the gateway
``maxFilterLength``  the longest ``$filter`` sent (1800 characters)
``maxUrlLength``     the longest request URL, percent-encoded (4000 bytes)
``reserveRows``      rows a query is assumed to read when the service does not count (1000)
``changeField``      the field whose newer values mark an updated row: every entity with it
                     has change events (subscriptions). Absent (the default): no change events.
``deletionSweep``    seconds between two sweeps of an entity's ids while its changes are
                     watched (3600; 0: never): ids gone upstream are deletions (``d``
                     events; the rows leave every current answer)
``timeZone``         the IANA time zone of the service's ``DateTime`` values, which carry no
                     offset: a caller's value with an offset is converted to that wall clock
                     before it is compared upstream. Default ``UTC``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.sources.options import Option, OptionSet

__all__ = ["OPTIONS", "ODataOptions", "check", "parse", "warnings"]


def _zone_problem(value: Any) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return f"names no known time zone ({value!r}; e.g. 'Europe/Copenhagen')"
    return None


def _functions_problem(value: Any) -> str | None:
    unknown = sorted(set(value) - {"substringof", "startswith", "endswith"})
    return f"lists unknown functions {unknown}" if unknown else None


OPTIONS = OptionSet(
    "odata",
    [
        Option("url", "string", required=True),
        Option("ttl", "number", 300.0, minimum=0),
        Option("pageSize", "integer", 100, positive=True),
        Option(
            "filterFunctions",
            "array",
            ["substringof", "startswith"],
            items="string",
            check=_functions_problem,
        ),
        Option("maxFilterLength", "integer", 1800, positive=True),
        Option("maxUrlLength", "integer", 4000, positive=True),
        Option("reserveRows", "integer", 1000, minimum=0),
        Option("changeField", "string", None),
        Option("deletionSweep", "number", 3600.0, minimum=0),
        Option("timeZone", "string", "UTC", check=_zone_problem),
    ],
)


@dataclass(frozen=True, slots=True)
class ODataOptions:
    """An OData register's options (see the module docstring)."""

    url: str
    ttl: float = 300.0
    page_size: int = 100
    filter_functions: frozenset[str] = frozenset({"substringof", "startswith"})
    max_filter_length: int = 1800
    max_url_length: int = 4000
    reserve_rows: int = 1000
    change_field: str | None = None
    deletion_sweep: float = 3600.0
    time_zone: dt.tzinfo = dt.UTC

    @property
    def root(self) -> str:
        """The service root, ending in ``/``."""
        return self.url if self.url.endswith("/") else self.url + "/"


def parse(options: Mapping[str, Any]) -> ODataOptions:
    """The options of ``options`` (a register's ``Source.json`` merged with overrides)."""
    v = OPTIONS.values(options)
    field = v["changeField"]
    return ODataOptions(
        url=str(v["url"] or ""),
        ttl=float(v["ttl"]),
        page_size=int(v["pageSize"]),
        filter_functions=frozenset(str(f) for f in v["filterFunctions"]),
        max_filter_length=int(v["maxFilterLength"]),
        max_url_length=int(v["maxUrlLength"]),
        reserve_rows=int(v["reserveRows"]),
        change_field=None if field is None or field == "" else str(field),
        deletion_sweep=float(v["deletionSweep"]),
        time_zone=ZoneInfo(str(v["timeZone"])),
    )


def check(options: Mapping[str, Any]) -> list[str]:
    """The problems of the options, one line each naming the option."""
    return OPTIONS.problems(options)


def warnings(options: Mapping[str, Any]) -> list[str]:
    """Old spellings in use (none yet for this kind)."""
    return OPTIONS.deprecated(options)
