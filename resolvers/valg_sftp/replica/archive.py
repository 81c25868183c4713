"""The recorded VALG archives, indexed as the SFTP server's file tree across time.

Two recordings ship in ``data/valg/``:

- ``fv2026-folketingsvalg-135.tar.xz``: every version of every file of the 2026 general
  election as the server named it (``…-DDMMYYYYHHmm.json``), JSON only except for 16 real
  signatures;
- ``kvrv2025-valg-134.tar.xz``: the newest version of each KV/RV 2025 file with its real
  ``.json.hash``, but with the time stamp stripped from most names by the recorder.

:func:`load_archive` reads both (once per process) into :class:`ValgArchive`: data files
with the instant they were released and the *series* (one entity's successive versions) they
belong to, their recorded signatures, static files (schemas, keys) and the recovered public
keys. Names stripped by the recorder get their stamp back from ``FrigivelsesTidspunktUTC``
truncated to the minute, as the real server names them.
"""

from __future__ import annotations

import datetime as dt
import functools
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.history.archive import mirror_files

__all__ = [
    "DATA_DIR",
    "FV_ROOT",
    "DataFile",
    "ValgArchive",
    "load_archive",
    "split_stamp",
]

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "valg"
FV_ARCHIVE = "fv2026-folketingsvalg-135.tar.xz"
KVRV_ARCHIVE = "kvrv2025-valg-134.tar.xz"
FV_ROOT = "folketingsvalg-135-24-03-2026"
RECOVERED_KEY = "public-key.recovered.pem"
SCHEMAS = "Snitfladebeskrivelser"

_STAMP = re.compile(r"-(\d{12})\.json$")
_RELEASED = re.compile(rb'"FrigivelsesTidspunktUTC"\s*:\s*"(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2})')


@dataclass(frozen=True, slots=True)
class DataFile:
    """One version of one data file, as the server publishes it.

    ``path`` is relative to ``/data``; ``release`` is the UTC instant (naive) from which the
    server lists it (None: always); ``series`` groups the versions of one entity.
    """

    path: str
    data: bytes
    release: dt.datetime | None
    series: str
    signature: bytes | None = None


@dataclass
class ValgArchive:
    """The recorded tree: data files by directory, static files, keys and real signatures."""

    data: dict[str, DataFile] = field(default_factory=dict)
    static: dict[str, bytes] = field(default_factory=dict)
    recovered_keys: dict[str, bytes] = field(default_factory=dict)
    real_signatures: dict[str, bytes] = field(default_factory=dict)
    # directory -> series -> versions sorted by release
    series: dict[str, dict[str, list[DataFile]]] = field(default_factory=dict)

    @property
    def roots(self) -> list[str]:
        """The election root folders."""
        return sorted(self.recovered_keys)

    @property
    def start(self) -> dt.datetime:
        """The first release instant in the recording."""
        return min(f.release for f in self.data.values() if f.release is not None)

    @property
    def end(self) -> dt.datetime:
        """The last release instant in the recording (the default replay instant)."""
        return max(f.release for f in self.data.values() if f.release is not None)

    def add(self, item: DataFile) -> None:
        """Index one data file."""
        self.data[item.path] = item
        directory = posixpath.dirname(item.path)
        versions = self.series.setdefault(directory, {}).setdefault(item.series, [])
        versions.append(item)
        versions.sort(key=lambda f: (f.release or dt.datetime.min, f.path))

    def directories(self) -> set[str]:
        """Every directory that holds something (relative to ``/data``, "" for ``/data``)."""
        out = {""}
        for path in (*self.data, *self.static):
            parent = posixpath.dirname(path)
            while parent and parent not in out:
                out.add(parent)
                parent = posixpath.dirname(parent)
        return out


def split_stamp(name: str) -> tuple[str, dt.datetime | None]:
    """``(series name, stamp)`` of a data file name ``<series>-DDMMYYYYHHmm.json``."""
    match = _STAMP.search(name)
    if match is None:
        return name.removesuffix(".json"), None
    digits = match.group(1)
    try:
        stamp = dt.datetime.strptime(digits, "%d%m%Y%H%M")
    except ValueError:
        return name.removesuffix(".json"), None
    return name[: match.start()], stamp


def _released(data: bytes) -> dt.datetime | None:
    match = _RELEASED.search(data)
    if match is None:
        return None
    day, month, year, hour, minute = (int(g) for g in match.groups())
    return dt.datetime(year, month, day, hour, minute)


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    for name, data, _ in mirror_files(path):
        yield name, data


@functools.cache
def load_archive(data_dir: Path = DATA_DIR) -> ValgArchive:
    """Read both recordings (about a second; cached for the life of the process)."""
    archive = ValgArchive()
    _load_fv(archive, data_dir / FV_ARCHIVE)
    _load_kvrv(archive, data_dir / KVRV_ARCHIVE)
    return archive


def _load_fv(archive: ValgArchive, path: Path) -> None:
    for name, data in _members(path):
        if name.endswith(RECOVERED_KEY):
            archive.recovered_keys[posixpath.dirname(name)] = data
        elif name.endswith(".json.hash"):
            # The replica signs this root with its own key; the 16 real signatures are
            # kept for checking against the recovered key.
            archive.real_signatures[name.removesuffix(".hash")] = data
        elif f"/{SCHEMAS}/" in name:
            archive.static[name] = data
        elif name.endswith(".json"):
            series, stamp = split_stamp(name)
            archive.add(DataFile(name, data, stamp, series))
        else:
            archive.static[name] = data


def _load_kvrv(archive: ValgArchive, path: Path) -> None:
    jsons: dict[str, bytes] = {}
    hashes: dict[str, bytes] = {}
    for name, data in _members(path):
        if name.endswith(RECOVERED_KEY):
            archive.recovered_keys[posixpath.dirname(name)] = data
        elif name.endswith(".json.hash"):
            hashes[name.removesuffix(".hash")] = data
        elif name.endswith(".json"):
            jsons[name] = data
        else:
            archive.static[name] = data
    for name, data in jsons.items():
        series, stamp = split_stamp(name)
        released = _released(data)
        if stamp is None and released is not None:
            # Restore the name the server gave it: the release time to the minute.
            stamp = released
            served = f"{series}-{released:%d%m%Y%H%M}.json"
        else:
            served = name
        archive.add(DataFile(served, data, stamp, series, hashes.pop(name, None)))
    for name, signature in hashes.items():
        # A signature whose file was not recorded: served as it was recorded.
        archive.static[f"{name}.hash"] = signature
    prefix = f"{FV_ROOT}/{SCHEMAS}/"
    schemas = {name: data for name, data in archive.static.items() if name.startswith(prefix)}
    for root in archive.recovered_keys:
        if root == FV_ROOT:
            continue
        for name, data in schemas.items():
            archive.static[root + name[len(FV_ROOT) :]] = data
