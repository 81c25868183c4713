"""The ``Source.json`` options of a ``valg-sftp`` register, typed and checked.

Besides ``kind``, ``datamodel`` and the options every kind has (``staleIfError``, … in
``gateway/dls/annex_schemas/Source.schema.json``):

``host``, ``port``, ``username``, ``password``  the SFTP server (``data.valg.dk``, 22, the
                      public ``Valg``/``Valg`` login)
``knownHosts``        the pinned host key: known_hosts lines, or the path of such a file
                      (required to connect; empty refuses every connection)
``root``              the folder holding one folder per election (``/data``)
``archive``           the folder the election roots of discarded elections are moved to
                      (``/arkiv``; empty: none), served like live ones with ``Arkiveret``
``joinScope``         fields scoping every join inside the register (``["Valgmappe"]``: a
                      result links to the geography of its own election only)
``ttl``               seconds a folder listing is kept (15)
``connectTimeout``    seconds to open the SFTP session (15)
``readTimeout``       seconds one listing or download may take (60)
``contentCacheBytes`` bytes of verified file content kept in memory (128 MiB); the rows
                      built from it are kept too, about as many bytes again (a row for
                      every KiB)
``maxFileBytes``      the largest file downloaded (64 MiB)
``encryptionAlgs``    SSH ciphers, in order of preference (AES-GCM first)

Until these options were spelled in camelCase like every other kind's, they were snake_case
(``known_hosts``, ``read_timeout``, …): that spelling is still accepted, and ``gateway
validate`` warns about it. How many listings and downloads run at once is the ``concurrency``
every kind has (default 4), enforced once by the register's guard; the former
``maxParallelDownloads`` (``max_parallel_downloads``), a second limit beside it, is read as
``concurrency`` when that is absent, with a warning.

The datamodel block (``datamodel.documents``) is read by the datamodel loader
(:mod:`gateway.dls.jsonschema`) to build the entities; :func:`entity_paths` and
:func:`inherit_spec` read the same block for the adapter: where an entity's rows live in a
document and what each level of a document hands down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.dls.jsonschema import renamed_paths, split_path
from gateway.sources.options import Option, OptionSet

__all__ = [
    "OPTIONS",
    "ValgOptions",
    "check",
    "entity_paths",
    "guarded",
    "inherit_spec",
    "parse",
    "warnings",
]

# AES-GCM first: asyncssh's ChaCha20 costs far more CPU per packet.
ENCRYPTION = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "chacha20-poly1305@openssh.com",
)


def _port_problem(value: Any) -> str | None:
    return None if 0 < value < 65536 else f"must be a TCP port (1–65535), not {value}"


OPTIONS = OptionSet(
    "valg-sftp",
    [
        Option("host", "string", "data.valg.dk"),
        Option("port", "integer", 22, check=_port_problem),
        Option("username", "string", "Valg"),
        Option("password", "string", "Valg"),
        Option("knownHosts", "string", "", aliases=("known_hosts",)),
        Option("root", "string", "/data"),
        Option("archive", "string", "/arkiv"),
        Option("joinScope", "array", None, items="string"),
        Option("ttl", "number", 15.0, minimum=0),
        Option("connectTimeout", "number", 15.0, positive=True, aliases=("connect_timeout",)),
        Option("readTimeout", "number", 60.0, positive=True, aliases=("read_timeout",)),
        Option(
            "contentCacheBytes",
            "integer",
            128 * 2**20,
            minimum=0,
            aliases=("content_cache_bytes",),
        ),
        Option("maxFileBytes", "integer", 64 * 2**20, positive=True, aliases=("max_file_bytes",)),
        Option("encryptionAlgs", "array", None, items="string", aliases=("encryption_algs",)),
    ],
)


@dataclass(frozen=True, slots=True)
class ValgOptions:
    """A VALG register's options (see the module docstring)."""

    host: str = "data.valg.dk"
    port: int = 22
    username: str = "Valg"
    password: str = "Valg"
    known_hosts: str = ""
    root: str = "/data"
    archive: str = "/arkiv"
    ttl: float = 15.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    content_cache_bytes: int = 128 * 2**20
    max_file_bytes: int = 64 * 2**20
    encryption_algs: tuple[str, ...] = ENCRYPTION


def parse(options: Mapping[str, Any]) -> ValgOptions:
    """The options of ``options`` (either spelling; of both, the later one)."""
    v = OPTIONS.values(options)
    return ValgOptions(
        host=str(v["host"]),
        port=int(v["port"]),
        username=str(v["username"]),
        password=str(v["password"]),
        known_hosts=str(v["knownHosts"] or ""),
        root=str(v["root"]),
        archive=str(v["archive"] or ""),
        ttl=float(v["ttl"]),
        connect_timeout=float(v["connectTimeout"]),
        read_timeout=float(v["readTimeout"]),
        content_cache_bytes=int(v["contentCacheBytes"]),
        max_file_bytes=int(v["maxFileBytes"]),
        encryption_algs=tuple(str(a) for a in v["encryptionAlgs"] or ENCRYPTION),
    )


def check(options: Mapping[str, Any]) -> list[str]:
    """The problems of the options, one line each naming the option."""
    problems = OPTIONS.problems(options)
    model = options.get("datamodel")
    documents = model.get("documents") if isinstance(model, Mapping) else None
    if not isinstance(documents, list):
        return [*problems, "option 'datamodel.documents' must list the datasets"]
    for index, spec in enumerate(documents):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            problems.append(f"option 'datamodel.documents[{index}]' needs a 'name'")
        elif not isinstance(spec.get("folder"), str):
            name = spec["name"]
            problems.append(f"option 'datamodel.documents[{index}]' ({name}) needs a 'folder'")
    return problems


# The former second concurrency limit of downloads: now the guard's ``concurrency``.
_FORMER_LIMIT = ("maxParallelDownloads", "max_parallel_downloads")


def warnings(options: Mapping[str, Any]) -> list[str]:
    """Old spellings in use, one line each with the name to write."""
    return [
        *OPTIONS.deprecated(options),
        *(
            f"option {name!r} is an old spelling: write 'concurrency' (listings and "
            "downloads at once, one limit)"
            for name in _FORMER_LIMIT
            if name in options
        ),
    ]


def guarded(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the former download limit read as ``concurrency`` when that is absent:
    what the register's guard is built from."""
    out = {k: v for k, v in options.items() if k not in _FORMER_LIMIT}
    former = [options[name] for name in _FORMER_LIMIT if name in options]
    if "concurrency" not in out and former:
        out["concurrency"] = former[-1]
    return out


# -- where the datamodel's entities live in the documents --------------------------------------

_SEPARATOR = "_"  # the loader names an array's entity {Parent}_{Property}


def _documents(datamodel: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    documents = datamodel.get("documents")
    return [d for d in documents if isinstance(d, Mapping)] if isinstance(documents, list) else []


def entity_paths(
    datamodel: Mapping[str, Any], name: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Where the rows of entity ``name`` live: ``(document entity, array path)`` pairs.

    ``datamodel`` is the ``Source.json`` datamodel block. The path is empty for a document
    entity itself. Raises KeyError for a name the configuration does not produce.
    """
    documents = {str(spec["name"]) for spec in _documents(datamodel)}
    if name in documents:
        return ((name, ()),)
    renamed = renamed_paths(datamodel)
    if name in renamed:
        return tuple(renamed[name])
    for prefix in sorted(documents | set(renamed), key=len, reverse=True):
        if name.startswith(prefix + _SEPARATOR):
            rest = tuple(name[len(prefix) + 1 :].split(_SEPARATOR))
            return tuple((doc, path + rest) for doc, path in entity_paths(datamodel, prefix))
    raise KeyError(name)


def inherit_spec(
    datamodel: Mapping[str, Any], document: str
) -> dict[tuple[str, ...], frozenset[str]]:
    """The fields each level of ``document`` hands down: array path -> source field names."""
    for spec in _documents(datamodel):
        if spec["name"] == document:
            inherit: Mapping[str, Sequence[str]] = spec.get("inherit", {})
            return {split_path(key): frozenset(names) for key, names in inherit.items()}
    raise KeyError(document)
