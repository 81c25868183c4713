"""The registry of source kinds: one entry per kind, from which everything of it is found.

A *kind* is one way of reaching an upstream (OData, signed JSON over SFTP, XML batches over
HTTP, CSV files over HTTP). A *register* is one folder under ``registers/`` whose
``Source.json`` names its kind. The service side never imports a kind: each kind package
declares one :class:`Kind` and the project's ``pyproject.toml`` names it under the entry-point
group ``dls_gateway.kinds``::

    [project.entry-points."dls_gateway.kinds"]
    odata = "resolvers.odata.kind:KIND"

From that one line the gateway finds the kind's adapter (:class:`Source`), its change
detector, the checks of the typed options its ``Source.json`` may carry (a kind declares them
in its ``options`` module, with :mod:`gateway.sources.options`; ``gateway validate`` reports
their problems as errors and old spellings as warnings), the replica ``gateway demo``
starts for its registers, and, for a kind that reaches its upstream over SSH, how an operator
pins the server's host key (``gateway pin-host-key``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from gateway.history.store import HistoryStore
from gateway.model.datamodel import Register
from gateway.sources.changes import Detector
from gateway.sources.port import Source

__all__ = [
    "DEMO_REPLAY_ENV",
    "ENTRY_POINTS",
    "DemoHandle",
    "DemoReplica",
    "HostKey",
    "HostKeys",
    "Kind",
    "detector",
    "event_entities",
    "kind",
    "kinds",
]

ENTRY_POINTS = "dls_gateway.kinds"

# Where ``gateway demo --replay SPEC`` puts SPEC for the replicas it starts.
DEMO_REPLAY_ENV = "DLS_DEMO_REPLAY"


class DemoHandle(Protocol):
    """A running replica, as the demo command sees it."""

    @property
    def address(self) -> str:
        """Where it listens, for people (``http://127.0.0.1:8123/api/``, ``sftp://…``)."""

    @property
    def overrides(self) -> Mapping[str, Mapping[str, Any]]:
        """Per register name, the ``Source.json`` options that point the gateway at it."""

    async def stop(self) -> None:
        """Stop serving and release the port."""


# Called with {register name: its Source.json}; serves those registers, each with its complete
# recording, unless DEMO_REPLAY_ENV holds a replay (``gateway demo --replay``): then a replica
# that records an election night replays it (see resolvers/replica_kit/clock.py, Replay).
DemoReplica = Callable[[Mapping[str, Mapping[str, Any]]], Awaitable[DemoHandle]]
# Checks a register's Source.json options: the problems found, each one line naming the
# option (errors: the register is not loaded), or the warnings (e.g. an option's old spelling).
OptionsCheck = Callable[[Mapping[str, Any]], list[str]]


def _no_problems(options: Mapping[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class HostKey:
    """An upstream server's SSH host key, as an operator checks it before pinning it."""

    host: str
    """Where it was fetched (``host`` or ``[host]:port``)."""
    algorithm: str
    """The key type, e.g. ``ssh-ed25519``."""
    fingerprint: str
    """As OpenSSH shows it: ``SHA256:`` and the unpadded base64 of the key's SHA-256."""
    line: str
    """The known_hosts line that pins it."""


class HostKeys(Protocol):
    """A kind's host-key hook: fetch the key its upstream presents, and pin an accepted one."""

    async def fetch(self, options: Mapping[str, Any]) -> HostKey:
        """Connect to the server ``options`` (a ``Source.json``) names; its host key."""

    def pin(self, rc_folder: Path, key: HostKey) -> Path:
        """Write ``key`` where the register's ``Source.json`` says; the file written."""


# Loads an archive of a register's upstream (a folder or file at the path) into the history
# store; tells the count of versions read so far; the count read.
HistoryImport = Callable[[HistoryStore, Register, Path, Callable[[int], None]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Kind:
    """Everything the gateway knows of one source kind."""

    name: str
    source: type[Source]
    detector: type[Detector] | None = None
    replica: DemoReplica | None = None
    check_options: OptionsCheck = _no_problems
    warn_options: OptionsCheck = _no_problems
    description: str = ""
    host_keys: HostKeys | None = None
    history_import: HistoryImport | None = None


@functools.cache
def kinds() -> Mapping[str, Kind]:
    """Every installed kind, by its ``Source.json`` name."""
    found: dict[str, Kind] = {}
    for point in entry_points(group=ENTRY_POINTS):
        declared = point.load()
        if not isinstance(declared, Kind):
            raise TypeError(f"entry point {point.name} = {point.value} is not a Kind")
        if declared.name != point.name:
            raise TypeError(f"entry point {point.name} declares kind {declared.name!r}")
        if not issubclass(declared.source, Source):
            raise TypeError(f"kind {point.name}: {declared.source!r} is not a Source")
        found[point.name] = declared
    return found


def kind(name: str) -> Kind:
    """The kind a ``Source.json`` names (KeyError for an unknown one)."""
    return kinds()[name]


def detector(name: str) -> type[Detector] | None:
    """The change detector of a kind (None for an unknown kind or one without)."""
    found = kinds().get(name)
    return None if found is None else found.detector


def event_entities(register: Register) -> list[str]:
    """The entities of ``register`` that have change events (none for an unknown kind)."""
    cls = detector(str(register.source.get("kind", "")))
    if cls is None:
        return []
    return [e for e in cls.entities(register) if e in register.datamodel.entities]
