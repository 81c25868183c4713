"""The ``Source.json`` options of a ``wahldaten-csv`` register, typed and checked.

Besides ``kind``, ``datamodel`` and the options every kind has (``timeout``, ``rate``,
``staleIfError``, … in ``gateway/dls/annex_schemas/Source.schema.json``):

``url``        the base URL of the published files: one, or a list (read in turn)
``directory``  a local folder of the files instead (relative to the working directory); one of
               ``url`` and ``directory`` is required
``ttl``        seconds a listing of the files is kept (10)
``fileTtl``    seconds a file is kept before its version is asked again (3600; ``null``: kept
               until the listing shows a new version)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.sources.options import Option, OptionSet

__all__ = ["OPTIONS", "WahldatenOptions", "check", "parse", "warnings"]

OPTIONS = OptionSet(
    "wahldaten-csv",
    [
        Option("url", ("string", "array"), None, items="string"),
        Option("directory", "string", None),
        Option("ttl", "number", 10.0, minimum=0),
        Option("fileTtl", "number", 3600.0, minimum=0, nullable=True),
    ],
)


@dataclass(frozen=True, slots=True)
class WahldatenOptions:
    """A DE-style register's options (see the module docstring)."""

    urls: tuple[str, ...] = ()
    directory: str | None = None
    ttl: float = 10.0
    file_ttl: float | None = 3600.0


def parse(options: Mapping[str, Any]) -> WahldatenOptions:
    """The options of ``options`` (a register's ``Source.json`` merged with overrides)."""
    v = OPTIONS.values(options)
    url = v["url"]
    urls = () if not url else (str(url),) if isinstance(url, str) else tuple(str(u) for u in url)
    file_ttl = v["fileTtl"]
    return WahldatenOptions(
        urls=urls,
        directory=str(v["directory"]) if v["directory"] else None,
        ttl=float(v["ttl"]),
        file_ttl=None if file_ttl is None else float(file_ttl),
    )


def check(options: Mapping[str, Any]) -> list[str]:
    """The problems of the options, one line each naming the option."""
    problems = OPTIONS.problems(options)
    if not problems:
        parsed = parse(options)
        if not parsed.urls and parsed.directory is None:
            problems.append("options 'url' and 'directory' are both missing: give one")
    return problems


def warnings(options: Mapping[str, Any]) -> list[str]:
    """Old spellings in use (none yet for this kind)."""
    return OPTIONS.deprecated(options)
