"""The history store: every version of a register's source files the gateway has read, with
when it was the register's answer.

A *file version* is one file as an upstream published it (a VALG ``…-DDMMYYYYHHmm.json`` with
its ``.json.hash`` signature, an election root's ``public-key.pem``), kept byte for byte so
that an archive stays verifiable. Its ``registered_from`` is when it became the register's
answer (the release time the register gives it, else the time the gateway first saw it);
a version stops being the answer when a later version of its series is registered or when it
was seen deleted (``deleted_at``). Which version answers at an instant is the register's own
rule, applied by its adapter to the versions listed at that instant
(:meth:`HistoryStore.listing`).

Embedded in SQLite (the gateway's data folder, no set-up): one connection, used by one
worker thread, so the event loop never waits on the disk. Writes are queued and written in
batches off the request path (:meth:`HistoryStore.record` returns at once); reads see what
is queued (:meth:`flush` first). The schema is versioned (``PRAGMA user_version``) and
migrated forward on open; a database newer than this gateway is refused rather than guessed
at. Retention (``retention_days``) drops versions whose successor was registered longer ago
than that; the version answering now is never dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import logging
import posixpath
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.model.errors import DescriptorError

__all__ = ["ALWAYS", "MIGRATIONS", "FileVersion", "HistoryStore", "iso", "parse_iso"]

log = logging.getLogger("gateway.history")

T = TypeVar("T")

# Each entry migrates from version i to i + 1 (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE files (
        register TEXT NOT NULL,
        path TEXT NOT NULL,
        directory TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        content BLOB NOT NULL,
        signature BLOB,
        registered_from TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        deleted_at TEXT,
        PRIMARY KEY (register, path)
    );
    CREATE INDEX files_by_directory ON files (register, directory, registered_from);
    """,
)

# The registration time of what answers for every instant (an election root's key).
ALWAYS = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_STAMP = re.compile(r"-\d{12}(?=\.json$)")
_BATCH = 200  # versions written per transaction at most
_DELAY = 0.2  # seconds a queued version waits for others to share its transaction


def iso(instant: dt.datetime) -> str:
    """An instant as stored: UTC, ISO 8601 with microseconds (sorts as text)."""
    if instant.tzinfo is not None:
        instant = instant.astimezone(dt.UTC).replace(tzinfo=None)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    """A stored instant, timezone-aware (UTC)."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One recorded version of a file (``path`` relative to the register's root folder)."""

    path: str
    size: int
    sha256: str
    signature_size: int | None
    registered_from: dt.datetime
    seen_at: dt.datetime
    deleted_at: dt.datetime | None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


@dataclass(frozen=True, slots=True)
class _Pending:
    register: str
    path: str
    content: bytes
    signature: bytes | None
    registered_from: str
    seen_at: str


class HistoryStore:
    """File versions per register in SQLite (see the module)."""

    def __init__(self, path: Path | str | None, *, retention_days: float | None = None) -> None:
        # None: a temporary file of this process, removed when the store closes.
        self.path = Path(path) if path is not None else None
        if retention_days is not None and retention_days <= 0:
            raise DescriptorError("history.retention_days must be positive")
        self.retention_days = retention_days
        self._temporary: Path | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="history")
        self._db: sqlite3.Connection | None = None
        self._pending: list[_Pending] = []
        self._flusher: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self.written = 0  # versions written (new ones; repeats are not counted)

    # -- opening and closing -----------------------------------------------------------

    async def start(self) -> None:
        """Open (and create or migrate) the database."""
        await self._run(self._open)

    def _open(self) -> None:
        if self.path is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="dls-history-"))
            self.path = self._temporary / "history.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Several processes may share the file (WAL: readers never wait on the writer;
            # a writer waits its turn rather than failing).
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def aclose(self) -> None:
        """Write what is queued, then close."""
        if self._db is None:
            self._executor.shutdown(wait=True)
            return
        await self.flush()
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
            self.path = None

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the history store is not open")
        return self._db

    # -- writing -----------------------------------------------------------------------

    def record(
        self,
        register: str,
        path: str,
        content: bytes,
        signature: bytes | None,
        registered_from: dt.datetime,
        seen_at: dt.datetime | None = None,
    ) -> None:
        """Queue one version (a repeat of a known version is ignored when written)."""
        seen = seen_at or dt.datetime.now(dt.UTC)
        item = _Pending(register, path, content, signature, iso(registered_from), iso(seen))
        self._pending.append(item)
        if len(self._pending) >= _BATCH:
            self._write_soon(0.0)
        elif self._flusher is None:
            self._write_soon(_DELAY)

    def _write_soon(self, delay: float) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        loop = asyncio.get_running_loop()
        self._flusher = loop.call_later(delay, self._start_write)

    def _start_write(self) -> None:
        self._flusher = None
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write_pending())

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
            try:
                self.written += await self._run(lambda b=batch: self._insert(b))  # type: ignore[misc]
            except sqlite3.Error:
                log.exception("history: %d versions could not be written", len(batch))

    def _insert(self, batch: Sequence[_Pending]) -> int:
        db = self._connection()
        before = db.total_changes
        digests = [hashlib.sha256(p.content).hexdigest() for p in batch]
        with _transaction(db):
            db.executemany(
                "INSERT OR IGNORE INTO files (register, path, directory, size, sha256, content,"
                " signature, registered_from, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.register,
                        p.path,
                        posixpath.dirname(p.path),
                        len(p.content),
                        digest,
                        p.content,
                        p.signature,
                        p.registered_from,
                        p.seen_at,
                    )
                    for p, digest in zip(batch, digests, strict=True)
                ],
            )
            # A version seen again after it was seen deleted is back.
            db.executemany(
                "UPDATE files SET deleted_at = NULL WHERE register = ? AND path = ?"
                " AND deleted_at IS NOT NULL AND sha256 = ?",
                [(p.register, p.path, d) for p, d in zip(batch, digests, strict=True)],
            )
        return db.total_changes - before

    async def flush(self) -> None:
        """Write everything queued so far."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._writing is not None:
            await self._writing
        await self._write_pending()

    async def deleted(self, register: str, paths: Iterable[str], at: dt.datetime) -> int:
        """Mark versions as deleted upstream at ``at``; how many were still live."""
        await self.flush()
        stamp = iso(at)
        rows = [(stamp, register, p) for p in paths]

        def work() -> int:
            db = self._connection()
            before = db.total_changes
            with _transaction(db):
                db.executemany(
                    "UPDATE files SET deleted_at = ? WHERE register = ? AND path = ?"
                    " AND deleted_at IS NULL",
                    rows,
                )
            return db.total_changes - before

        return await self._run(work)

    # -- reading -----------------------------------------------------------------------

    async def listing(
        self, register: str, directory: str, instant: dt.datetime
    ) -> tuple[list[FileVersion], set[str]]:
        """The versions in ``directory`` registered by ``instant`` and not deleted by then,
        and the names of the sub-folders holding such versions."""
        await self.flush()
        stamp = iso(instant)
        prefix = f"{directory}/" if directory else ""

        def work() -> tuple[list[FileVersion], set[str]]:
            db = self._connection()
            files = [
                _version(row)
                for row in db.execute(
                    "SELECT path, size, sha256, length(signature), registered_from, seen_at,"
                    " deleted_at FROM files WHERE register = ? AND directory = ?"
                    " AND registered_from <= ? AND (deleted_at IS NULL OR deleted_at > ?)"
                    " ORDER BY registered_from, path",
                    (register, directory, stamp, stamp),
                )
            ]
            folders: set[str] = set()
            for (below,) in db.execute(
                "SELECT DISTINCT directory FROM files WHERE register = ?"
                " AND directory > ? AND directory < ? AND registered_from <= ?"
                " AND (deleted_at IS NULL OR deleted_at > ?)",
                (register, prefix, prefix + "\U0010ffff", stamp, stamp),
            ):
                rest = below[len(prefix) :]
                if rest:
                    folders.add(rest.split("/", 1)[0])
            return files, folders

        return await self._run(work)

    async def _one(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        """The first row of a query (None: no row), after what is queued is written."""
        await self.flush()
        return await self._run(lambda: self._connection().execute(sql, parameters).fetchone())

    async def read(self, register: str, path: str) -> tuple[bytes, bytes | None] | None:
        """A version's bytes and signature (None: not recorded)."""
        row = await self._one(
            "SELECT content, signature FROM files WHERE register = ? AND path = ?",
            (register, path),
        )
        if row is None:
            return None
        return bytes(row[0]), None if row[1] is None else bytes(row[1])

    async def known_from(self, register: str) -> dt.datetime | None:
        """The earliest instant the history of ``register`` answers for: its first data
        (what answers for every instant, a root's key, does not count). None: nothing kept."""
        row = await self._one(
            "SELECT min(registered_from) FROM files WHERE register = ? AND registered_from > ?",
            (register, iso(ALWAYS)),
        )
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def count(self, register: str) -> int:
        """How many versions of ``register`` are kept."""
        row = await self._one("SELECT count(*) FROM files WHERE register = ?", (register,))
        return int(row[0])

    # -- retention ---------------------------------------------------------------------

    async def prune(self, now: dt.datetime | None = None) -> int:
        """Drop versions superseded (or deleted) more than ``retention_days`` ago."""
        if self.retention_days is None:
            return 0
        await self.flush()
        cutoff = iso((now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.retention_days))

        def work() -> int:
            db = self._connection()
            before = db.total_changes
            with _transaction(db):
                db.execute(
                    "DELETE FROM files WHERE deleted_at IS NOT NULL AND deleted_at < ?", (cutoff,)
                )
                # Superseded: a later version of the same series was registered before the
                # cutoff (the series is the name without its trailing stamp).
                rows = db.execute(
                    "SELECT register, directory, path, registered_from FROM files"
                    " ORDER BY register, directory, registered_from"
                ).fetchall()
                drop = _superseded(rows, cutoff)
                db.executemany("DELETE FROM files WHERE register = ? AND path = ?", drop)
            return db.total_changes - before

        return await self._run(work)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; the version it had."""
    (had,) = db.execute("PRAGMA user_version").fetchone()
    if had > len(MIGRATIONS):
        raise DescriptorError(
            f"the history database is at schema version {had}; this gateway knows up to "
            f"{len(MIGRATIONS)} (a newer gateway wrote it)"
        )
    for version in range(had, len(MIGRATIONS)):
        # One transaction per step: a step that fails leaves the version before it.
        try:
            db.executescript(
                f"BEGIN; {MIGRATIONS[version]}; PRAGMA user_version = {version + 1}; COMMIT;"
            )
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        log.info("history: schema migrated to version %d", version + 1)
    return int(had)


class _transaction:
    """BEGIN … COMMIT (ROLLBACK on error) on a connection in autocommit mode."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def __exit__(self, kind: object, *rest: object) -> None:
        if not self.db.in_transaction:
            return
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _version(row: Any) -> FileVersion:
    path, size, sha256, signature_size, registered_from, seen_at, deleted_at = row
    return FileVersion(
        path,
        int(size),
        sha256,
        None if signature_size is None else int(signature_size),
        parse_iso(registered_from),
        parse_iso(seen_at),
        None if deleted_at is None else parse_iso(deleted_at),
    )


def _series(path: str) -> str:
    """A file's series: its name without a trailing ``-DDMMYYYYHHmm`` stamp."""
    return _STAMP.sub("", posixpath.basename(path))


def _superseded(rows: Sequence[Any], cutoff: str) -> list[tuple[str, str]]:
    newest: dict[tuple[str, str, str], tuple[str, str]] = {}
    drop: list[tuple[str, str]] = []
    for register, directory, path, registered_from in rows:
        series = (register, directory, _series(path))
        previous = newest.get(series)
        if previous is not None and registered_from < cutoff:
            drop.append((register, previous[0]))
        newest[series] = (path, registered_from)
    return drop
