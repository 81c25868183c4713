"""VALG as it was: the history store seen through the SFTP client's interface.

:class:`HistoryClient` answers ``listdir`` and ``read`` as the server would have at one
instant, from the file versions the history store kept (:mod:`gateway.history.store`):
a folder lists every version registered by then and not deleted by then, each signed one
with its ``.json.hash``. A :class:`~resolvers.valg_sftp.store.ValgStore` over it chooses
exactly as it chooses live — the newest complete, verified version of each series — so an
answer at an instant is the one the gateway would have given then, signatures checked
again.

:func:`registered_from` is when a VALG file version became the register's answer: the
``-DDMMYYYYHHmm`` stamp the server names it with (the instant from which the server lists
it), else its ``FrigivelsesTidspunktUTC``, else when the gateway saw it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.history.archive import Archived, mirror_files, record_all
from gateway.history.store import ALWAYS, HistoryStore
from resolvers.valg_sftp.client import RemoteEntry, SftpStats
from resolvers.valg_sftp.codec import FileProblem, series_and_stamp

__all__ = [
    "HistoryClient",
    "Version",
    "archive_versions",
    "import_versions",
    "registered_from",
    "version_registered_from",
]


def registered_from(
    path: str, seen: dt.datetime, released: Callable[[], dt.datetime | None] = lambda: None
) -> dt.datetime:
    """When the version at ``path`` became the answer (UTC): a root's key answers for every
    instant; a data file from its name's stamp, else from ``released()`` (its
    ``FrigivelsesTidspunktUTC``, asked only then), else from when it was ``seen``."""
    if posixpath.basename(path) == "public-key.pem":
        return ALWAYS
    _, stamp = series_and_stamp(posixpath.basename(path))
    if stamp is None:
        stamp = released()
    if stamp is None:
        return seen
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp


class HistoryClient:
    """The SFTP client's ``listdir``/``read`` answered from the history at ``instant``."""

    def __init__(
        self,
        history: HistoryStore,
        register: str,
        instant: dt.datetime,
        folders: tuple[str, ...] = ("/data",),
    ) -> None:
        self.history = history
        self.register = register
        self.instant = instant
        self.folders = tuple(f.rstrip("/") for f in folders if f)
        self.stats = SftpStats()

    def _relative(self, path: str) -> str:
        for folder in self.folders:
            if path == folder:
                return ""
            if path.startswith(folder + "/"):
                return path[len(folder) + 1 :]
        raise FileProblem("gone", path)

    async def listdir(self, path: str) -> list[RemoteEntry]:
        directory = self._relative(path)
        versions, folders = await self.history.listing(self.register, directory, self.instant)
        self.stats.listings += 1
        if not versions and not folders and directory:
            raise FileProblem("gone", path)
        entries = [RemoteEntry(name, 0, True) for name in sorted(folders)]
        for version in versions:
            entries.append(RemoteEntry(version.name, version.size, False))
            if version.signature_size is not None:
                entries.append(RemoteEntry(f"{version.name}.hash", version.signature_size, False))
        return entries

    async def read(self, path: str) -> bytes:
        relative = self._relative(path)
        signature = relative.endswith(".json.hash")
        found = await self.history.read(
            self.register, relative.removesuffix(".hash") if signature else relative
        )
        if found is None:
            raise FileProblem("gone", path)
        data = found[1] if signature else found[0]
        if data is None:
            raise FileProblem("gone", path)
        self.stats.downloads += 1
        self.stats.bytes += len(data)
        return data

    async def aclose(self) -> None:
        """Nothing to close: the store belongs to the gateway."""


# -- importing an archive of the server ------------------------------------------------

_SCHEMAS = "/Snitfladebeskrivelser/"
_RELEASED = re.compile(
    rb'"FrigivelsesTidspunktUTC"\s*:\s*"(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})"'
)


@dataclass(frozen=True, slots=True)
class Version:
    """One file version of an archive: its path below ``/data``, bytes and signature."""

    path: str
    data: bytes
    signature: bytes | None
    seen: dt.datetime


def archive_versions(path: Path) -> Iterator[Version]:
    """The data files (``.json`` with their ``.json.hash``) and keys (``public-key.pem``) of
    a mirror of the server: a folder laid out like ``/data``, or a tar archive of one
    (``.tar``, ``.tar.gz``, ``.tar.xz``). The schemas (``Snitfladebeskrivelser/``) are left
    out: they are no register data. A file's time is its modification time."""
    members: dict[str, tuple[bytes, dt.datetime]] = {}
    for name, data, mtime in mirror_files(path):
        if _SCHEMAS in f"/{name}":
            continue
        if name.endswith((".json", ".json.hash")) or posixpath.basename(name) == "public-key.pem":
            members[name] = (data, mtime)
    for name in sorted(members):
        if name.endswith(".json.hash"):
            continue
        data, mtime = members[name]
        signature = members.get(f"{name}.hash")
        yield Version(name, data, signature[0] if signature else None, mtime)


def version_registered_from(version: Version) -> dt.datetime:
    """When an archived version became the answer (:func:`registered_from`; its release time
    read from its bytes without parsing them, its file time as when it was seen)."""

    def released() -> dt.datetime | None:
        match = _RELEASED.search(version.data)
        if match is not None:
            day, month, year, hour, minute, second = (int(g) for g in match.groups())
            with contextlib.suppress(ValueError):
                return dt.datetime(year, month, day, hour, minute, second)
        return None

    return registered_from(version.path, version.seen, released)


async def import_versions(
    history: HistoryStore,
    register: str,
    versions: Iterable[Version],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Record every version (repeats change nothing); how many were given."""
    archived = (
        Archived(v.path, v.data, v.signature, version_registered_from(v), v.seen) for v in versions
    )
    return await record_all(history, register, archived, progress)
