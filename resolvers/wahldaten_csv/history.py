"""German files as they were: the history store seen as an Offene Wahldaten folder.

:class:`HistoryUpstream` lists, at one instant, every file version the gateway kept that was
published by then (a file's ``Zeitstempel``, local German time, else when the gateway read
it) and not deleted by then; the adapter then chooses as it chooses live — the newest version
of each dataset of each publication — so an answer at an instant is the one of the files out
by then. :func:`published_at` is that instant for a file read now; :func:`import_files` loads
an archive of the files (``gateway history import``).
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.history.archive import Archived, mirror_files, record_all
from gateway.history.store import HistoryStore
from gateway.model.datamodel import Register
from resolvers.wahldaten_csv.names import parse_file_name
from resolvers.wahldaten_csv.upstream import Fetched, Listing, RemoteFile

__all__ = ["FOLDER", "HistoryUpstream", "archive_files", "import_files", "published_at"]

FOLDER = "files"
BERLIN = ZoneInfo("Europe/Berlin")


def published_at(name: str, seen: dt.datetime, zone: dt.tzinfo = BERLIN) -> dt.datetime:
    """When a file became the answer: its name's ``Zeitstempel`` (in ``zone``), else ``seen``."""
    parsed = parse_file_name(name)
    stamp = parsed.stamp if parsed is not None else None
    if stamp is None:
        return seen
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=zone)
    return stamp.astimezone(dt.UTC)


class HistoryUpstream:
    """The kept files of ``register`` listed as they stood at ``instant`` (an Upstream)."""

    def __init__(self, history: HistoryStore, register: str, instant: dt.datetime) -> None:
        self.history = history
        self.register = register
        self.instant = instant

    @property
    def label(self) -> str:
        return f"history:{self.register}@{self.instant.isoformat()}"

    async def listing(self) -> Listing:
        versions, _ = await self.history.listing(self.register, FOLDER, self.instant)
        files = tuple(
            RemoteFile(name=v.name, location=v.path, version=v.sha256, size=v.size)
            for v in versions
        )
        return Listing(files)

    async def read(self, file: RemoteFile, etag: str | None = None) -> Fetched:
        found = await self.history.read(self.register, file.location)
        return Fetched(found[0] if found is not None else b"")


def archive_files(register: Register, path: Path) -> Iterator[Archived]:
    """The Offene Wahldaten files of a folder or tar archive (in any sub-folder), each as
    published at its name's ``Zeitstempel`` (the register's ``timeZone``), else at its file
    time; files whose names name none of the five datasets are left out."""
    zone = register.source.get("timeZone")
    local = ZoneInfo(str(zone)) if zone else BERLIN
    for inside, data, mtime in mirror_files(path):
        name = posixpath.basename(inside)
        if not name.endswith(".csv") or parse_file_name(name) is None:
            continue
        yield Archived(f"{FOLDER}/{name}", data, None, published_at(name, mtime, local), mtime)


async def import_files(
    history: HistoryStore, register: Register, path: Path, progress: Callable[[int], None]
) -> int:
    """Load an archive of German files; how many were read."""
    return await record_all(history, register.name, archive_files(register, path), progress)
