"""Loading an archive of an upstream into the history store (``gateway history import``):
the files of a folder or tar archive, and recording versions a batch at a time."""

from __future__ import annotations

import datetime as dt
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.history.store import HistoryStore
from gateway.model.errors import DescriptorError

__all__ = ["Archived", "mirror_files", "record_all"]

_FLUSH_EVERY = 1000  # versions queued before they are written (bounded memory)


@dataclass(frozen=True, slots=True)
class Archived:
    """One version to keep: where the history keeps it, its bytes, its signature (if the
    register signs its files), when it became the register's answer and when it was seen."""

    path: str
    data: bytes
    signature: bytes | None
    registered_from: dt.datetime
    seen: dt.datetime


def mirror_files(path: Path) -> Iterator[tuple[str, bytes, dt.datetime]]:
    """Every file of a folder or tar archive: (path inside it, bytes, modification time)."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stamp = dt.datetime.fromtimestamp(file.stat().st_mtime, dt.UTC)
            yield file.relative_to(path).as_posix(), file.read_bytes(), stamp
        return
    try:
        archive = tarfile.open(path)  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise DescriptorError(f"{path}: not a folder or a tar archive ({exc})") from exc
    with archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            with handle:
                name = member.name.removeprefix("./")
                yield name, handle.read(), dt.datetime.fromtimestamp(member.mtime, dt.UTC)


async def record_all(
    history: HistoryStore,
    register: str,
    versions: Iterable[Archived],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Record every version (repeats change nothing); how many were given."""
    count = 0
    for version in versions:
        history.record(
            register,
            version.path,
            version.data,
            version.signature,
            version.registered_from,
            version.seen,
        )
        count += 1
        if count % _FLUSH_EVERY == 0:
            await history.flush()
            if progress is not None:
                progress(count)
    await history.flush()
    if progress is not None:
        progress(count)
    return count
