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
import contextlib
import datetime as dt
import functools
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
from urllib.parse import urlsplit, urlunsplit

from gateway.history.objects import Describer, apply_version, withdraw
from gateway.model.errors import DescriptorError

__all__ = [
    "ALWAYS",
    "MIGRATIONS",
    "PG_MIGRATIONS",
    "EventRecord",
    "FileVersion",
    "HistoryStore",
    "RowPeriod",
    "RowVersion",
    "iso",
    "parse_iso",
]

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
    # Row versions (registers whose upstream answers rows: FT) and the events between them.
    """
    CREATE TABLE row_versions (
        register TEXT NOT NULL,
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        registered_from TEXT NOT NULL,
        registered_to TEXT,
        valid_from TEXT,
        valid_to TEXT,
        sha256 TEXT NOT NULL,
        content TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (register, entity, key, registered_from)
    );
    CREATE INDEX row_versions_open ON row_versions (register, entity, registered_to);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        register TEXT NOT NULL,
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('i', 'u', 'd')),
        registered_from TEXT NOT NULL,
        registered_to TEXT,
        valid_from TEXT,
        valid_to TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX events_by_time ON events (register, updated_at);
    """,
    # The objects file versions hold (gateway/history/objects.py), as last described.
    """
    CREATE TABLE objects (
        register TEXT NOT NULL,
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        series TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        registered_from TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (register, entity, key)
    );
    CREATE INDEX objects_by_series ON objects (register, series);
    ALTER TABLE files ADD COLUMN described INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX files_undescribed ON files (register, described, registered_from);
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
class RowVersion:
    """One version of a row as read (``key``: the row's identity as text, ``content``: the
    row as JSON). ``registered_from`` is when the register says it was registered (FT's
    ``opdateringsdato``); None: the time the gateway saw it. ``valid_from``/``valid_to`` are
    its validity in the world, where the datamodel declares one."""

    key: str
    content: str
    registered_from: dt.datetime | None = None
    valid_from: dt.datetime | None = None
    valid_to: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RowPeriod:
    """A row version's registration interval and validity (None: open, or not declared)."""

    registered_from: dt.datetime
    registered_to: dt.datetime | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a register: a row version inserted (``i``), updated (``u``) or deleted
    (``d``), with the version's registration and validity and when the gateway wrote it."""

    id: int
    entity: str
    key: str
    action: str
    registered_from: dt.datetime
    registered_to: dt.datetime | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _PendingRow:
    register: str
    entity: str
    version: RowVersion
    sha256: str
    seen_at: str


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

    def __init__(
        self,
        path: Path | str | None,
        *,
        retention_days: float | None = None,
        url: str | None = None,
    ) -> None:
        # None: a temporary file of this process, removed when the store closes.
        self.path = Path(path) if path is not None else None
        # A PostgreSQL URL (several processes sharing one history): used instead of the file.
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise DescriptorError(
                f"history.url: {url!r} is not a PostgreSQL URL (postgresql://user@host/db)"
            )
        self.url = url
        if retention_days is not None and retention_days <= 0:
            raise DescriptorError("history.retention_days must be positive")
        self.retention_days = retention_days
        self._temporary: Path | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="history")
        self._db: _Db | None = None
        self._pending: list[_Pending] = []
        self._pending_rows: list[_PendingRow] = []
        self._flusher: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self.written = 0  # versions written (new ones; repeats are not counted)
        # The registers whose file versions become events (gateway/history/objects.py).
        self._describers: dict[str, Describer] = {}
        self._describing: asyncio.Task[None] | None = None
        self._describe_again = False
        self.events_written = 0  # events of file versions written

    # -- opening and closing -----------------------------------------------------------

    async def start(self) -> None:
        """Open (and create or migrate) the database."""
        await self._run(self._open)
        if self._describers:
            self._describe_soon()

    def _open(self) -> None:
        if self.url is not None:
            self._db = _Postgres.connect(self.url)
            return
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
        self._db = _Sqlite(db)

    @property
    def where(self) -> str:
        """Where the history is kept (for logs; a URL without its password)."""
        if self.url is not None:
            return _without_password(self.url)
        return str(self.path)

    async def aclose(self) -> None:
        """Write what is queued, then close."""
        if self._db is None:
            self._executor.shutdown(wait=True)
            return
        await self.flush()
        if self._describing is not None:
            self._describing.cancel()  # described on the next start
            with contextlib.suppress(asyncio.CancelledError):
                await self._describing
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

    def _connection(self) -> _Db:
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
        self._queued(len(self._pending))

    def record_rows(
        self,
        register: str,
        entity: str,
        versions: Sequence[RowVersion],
        seen_at: dt.datetime | None = None,
    ) -> None:
        """Queue row versions as read (a version already known is ignored when written)."""
        if not versions:
            return
        seen = iso(seen_at or dt.datetime.now(dt.UTC))
        self._pending_rows.extend(
            _PendingRow(
                register, entity, v, hashlib.sha256(v.content.encode("utf-8")).hexdigest(), seen
            )
            for v in versions
        )
        self._queued(len(self._pending_rows))

    def _queued(self, waiting: int) -> None:
        """Write a full batch at once; else soon, with what else arrives meanwhile."""
        if waiting >= _BATCH:
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
        while self._pending or self._pending_rows:
            batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
            rows, self._pending_rows = self._pending_rows[:_BATCH], self._pending_rows[_BATCH:]

            def work(b: Sequence[_Pending] = batch, r: Sequence[_PendingRow] = rows) -> int:
                return (self._insert(b) if b else 0) + (self._insert_rows(r) if r else 0)

            try:
                self.written += await self._run(work)
            except _DB_ERRORS:
                log.exception("history: %d versions could not be written", len(batch) + len(rows))
            if batch and any(p.register in self._describers for p in batch):
                self._describe_soon()

    # -- events of file versions (gateway/history/objects.py) ---------------------------

    def describe(self, register: str, describer: Describer) -> None:
        """Turn ``register``'s file versions into events with ``describer``: those kept so
        far (imported, or written before) and every one written from now on."""
        self._describers[register] = describer
        if self._db is not None:
            self._describe_soon()

    async def describe_kept(self) -> None:
        """Describe the file versions kept but not yet described (e.g. written by an import
        through another store): at once, rather than when events are next asked for."""
        if self._describers:
            self._describe_soon()
        await self.described()

    def _describe_soon(self) -> None:
        self._describe_again = True  # a pass under way looks once more when it ends
        if self._describing is None or self._describing.done():
            self._describing = asyncio.get_running_loop().create_task(self._describe_all())

    async def _describe_all(self) -> None:
        """Describe what is not yet described, a batch per turn of the worker thread (so
        that reads waiting on the thread are served between batches)."""
        while self._describe_again:
            self._describe_again = False
            for register, describer in list(self._describers.items()):
                work = functools.partial(self._describe_batch, register, describer)
                while True:
                    try:
                        done = await self._run(work)
                    except _DB_ERRORS:
                        log.exception("history: %s: versions could not be described", register)
                        break
                    if done < _BATCH:
                        break

    def _describe_batch(self, register: str, describer: Describer) -> int:
        db = self._connection()
        with _transaction(db):  # chosen under the writers' lock: each is described once
            found = db.execute(
                "SELECT path, content, registered_from, seen_at FROM files WHERE register = ?"
                " AND described = 0 ORDER BY registered_from, path LIMIT ?",
                (register, _BATCH),
            ).fetchall()
            for path, content, registered_from, seen_at in found:
                path = str(path)
                self.events_written += _apply(
                    db,
                    register,
                    describer,
                    path,
                    bytes(content),
                    str(registered_from),
                    str(seen_at),
                )
                db.execute(
                    "UPDATE files SET described = 1 WHERE register = ? AND path = ?",
                    (register, path),
                )
        return len(found)

    async def described(self) -> None:
        """Wait until every file version written so far is described."""
        await self.flush()
        while self._describing is not None and not self._describing.done():
            await asyncio.shield(self._describing)

    def _insert_rows(self, batch: Sequence[_PendingRow]) -> int:
        """Row versions: a new key is inserted (``i``), a changed row closes its open version
        and opens the new one (``u``); a content already recorded for its key (a cached read
        of an older version) changes nothing."""
        db = self._connection()
        written = 0
        with _transaction(db):
            for p in batch:
                where = (p.register, p.entity, p.version.key)
                if db.execute(
                    "SELECT 1 FROM row_versions WHERE register = ? AND entity = ? AND key = ?"
                    " AND sha256 = ? LIMIT 1",
                    (*where, p.sha256),
                ).fetchone():
                    continue
                current = db.execute(
                    "SELECT registered_from FROM row_versions WHERE register = ? AND entity = ?"
                    " AND key = ? AND registered_to IS NULL",
                    where,
                ).fetchone()
                start = _registration(p, None if current is None else str(current[0]))
                if start is None:
                    continue  # older than the version recorded: a stale read
                v = p.version
                valid = (_opt_iso(v.valid_from), _opt_iso(v.valid_to))
                if current is not None:
                    db.execute(
                        "UPDATE row_versions SET registered_to = ? WHERE register = ?"
                        " AND entity = ? AND key = ? AND registered_to IS NULL",
                        (start, *where),
                    )
                db.execute(
                    "INSERT INTO row_versions (register, entity, key, registered_from,"
                    " registered_to, valid_from, valid_to, sha256, content, seen_at)"
                    " VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                    (*where, start, *valid, p.sha256, v.content, p.seen_at),
                )
                db.execute(
                    "INSERT INTO events (register, entity, key, action, registered_from,"
                    " registered_to, valid_from, valid_to, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                    (*where, "i" if current is None else "u", start, *valid, p.seen_at),
                )
                written += 1
        return written

    def _insert(self, batch: Sequence[_Pending]) -> int:
        db = self._connection()
        before = db.changes
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
            # A version seen again after it was seen deleted is back (from when it was seen
            # again: its objects are its again).
            for p, digest in zip(batch, digests, strict=True):
                marked = db.changes
                db.execute(
                    "UPDATE files SET deleted_at = NULL WHERE register = ? AND path = ?"
                    " AND deleted_at IS NOT NULL AND sha256 = ?",
                    (p.register, p.path, digest),
                )
                describer = self._describers.get(p.register)
                if db.changes > marked and describer is not None:
                    self.events_written += _apply(
                        db, p.register, describer, p.path, p.content, p.seen_at, p.seen_at
                    )
        return db.changes - before

    async def flush(self) -> None:
        """Write everything queued so far."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._writing is not None:
            await self._writing
        await self._write_pending()

    async def deleted(
        self,
        register: str,
        paths: Iterable[str],
        at: dt.datetime,
        withdrawn: Iterable[str] = (),
    ) -> int:
        """Mark versions as deleted upstream at ``at``; how many were still live. The
        ``withdrawn`` among them left no newer version behind: the objects of their series
        are deleted too (``d`` events, for a register with a describer)."""
        await self.described()
        stamp = iso(at)
        paths = list(paths)
        withdrawn = list(withdrawn)
        rows = [(stamp, register, p) for p in paths]
        describer = self._describers.get(register)
        series = sorted(
            {s for p in withdrawn if describer is not None and (s := describer.series(p))}
        )
        seen = iso(dt.datetime.now(dt.UTC))

        def work() -> int:
            db = self._connection()
            before = db.changes
            with _transaction(db):
                db.executemany(
                    "UPDATE files SET deleted_at = ? WHERE register = ? AND path = ?"
                    " AND deleted_at IS NULL",
                    rows,
                )
                marked = db.changes - before
                for one in series:
                    self.events_written += withdraw(db, register, one, stamp, seen)
                if describer is not None:
                    for path in set(paths) - set(withdrawn):
                        self.events_written += self._fall_back(
                            db, register, describer, path, stamp, seen
                        )
            return marked

        return await self._run(work)

    def _fall_back(
        self, db: _Db, register: str, describer: Describer, path: str, stamp: str, seen: str
    ) -> int:
        """A version deleted while its objects came from it, and an older version of its
        series still listed: that version is the answer again from ``stamp`` (its events)."""
        if not db.execute(
            "SELECT 1 FROM objects WHERE register = ? AND path = ? AND deleted = 0 LIMIT 1",
            (register, path),
        ).fetchone():
            return 0  # a version replaced: its objects already come from a newer one
        series = describer.series(path)
        if series is None:
            return 0
        for other, content in db.execute(
            "SELECT path, content FROM files WHERE register = ? AND directory = ?"
            " AND deleted_at IS NULL AND registered_from <= ? ORDER BY registered_from DESC",
            (register, posixpath.dirname(path), stamp),
        ).fetchall():
            if describer.series(str(other)) == series:
                return _apply(db, register, describer, str(other), bytes(content), stamp, seen)
        return 0

    async def rows_deleted(
        self, register: str, entity: str, keys: Iterable[str], at: dt.datetime
    ) -> list[tuple[str, str]]:
        """Close the open versions of ``keys`` (deleted upstream at ``at``) with a ``d``
        event each; the (key, last content) of those that were open."""
        await self.flush()
        stamp = iso(at)
        wanted = list(keys)

        def work() -> list[tuple[str, str]]:
            db = self._connection()
            closed: list[tuple[str, str]] = []
            with _transaction(db):
                for key in wanted:
                    where = (register, entity, key)
                    row = db.execute(
                        "SELECT registered_from, valid_from, valid_to, content FROM row_versions"
                        " WHERE register = ? AND entity = ? AND key = ? AND registered_to IS NULL",
                        where,
                    ).fetchone()
                    if row is None:
                        continue
                    end = max(stamp, str(row[0]))
                    db.execute(
                        "UPDATE row_versions SET registered_to = ? WHERE register = ?"
                        " AND entity = ? AND key = ? AND registered_to IS NULL",
                        (end, *where),
                    )
                    db.execute(
                        "INSERT INTO events (register, entity, key, action, registered_from,"
                        " registered_to, valid_from, valid_to, updated_at)"
                        " VALUES (?, ?, ?, 'd', ?, ?, ?, ?, ?)",
                        (*where, row[0], end, row[1], row[2], iso(dt.datetime.now(dt.UTC))),
                    )
                    closed.append((key, str(row[3])))
            return closed

        return await self._run(work)

    # -- reading -----------------------------------------------------------------------

    async def rows_at(self, register: str, entity: str, instant: dt.datetime) -> list[str]:
        """The contents (JSON) of ``entity``'s rows registered at ``instant``."""
        return [content for content, _ in await self.rows_at_periods(register, entity, instant)]

    async def rows_at_periods(
        self, register: str, entity: str, instant: dt.datetime
    ) -> list[tuple[str, RowPeriod]]:
        """The contents (JSON) of ``entity``'s rows registered at ``instant``, by key, with
        each version's periods."""
        await self.flush()
        stamp = iso(instant)

        def work() -> list[tuple[str, RowPeriod]]:
            return _with_periods(
                self._connection().execute(
                    "SELECT content, registered_from, registered_to, valid_from, valid_to"
                    " FROM row_versions WHERE register = ? AND entity = ?"
                    " AND registered_from <= ? AND (registered_to IS NULL OR registered_to > ?)"
                    " ORDER BY key",
                    (register, entity, stamp, stamp),
                )
            )

        return await self._run(work)

    async def row_changes(
        self, register: str, entity: str, since: dt.datetime, until: dt.datetime
    ) -> list[tuple[str, str, RowPeriod]]:
        """The rows of ``entity`` inserted, updated or deleted in [since, until), each once as
        it stood at ``until``: (content, action ``i``/``u``/``d``, its version's period); by key."""
        await self.flush()
        start, end = iso(since), iso(until)

        def work() -> list[tuple[str, str, RowPeriod]]:
            last: dict[str, tuple[str, str, RowPeriod]] = {}
            for key, action, frm, to, valid_from, valid_to, content in self._connection().execute(
                "SELECT e.key, e.action, e.registered_from, e.registered_to, e.valid_from,"
                " e.valid_to, v.content FROM events e JOIN row_versions v ON v.register ="
                " e.register AND v.entity = e.entity AND v.key = e.key AND v.registered_from ="
                " e.registered_from WHERE e.register = ? AND e.entity = ? AND ((e.action <> 'd'"
                " AND e.registered_from >= ? AND e.registered_from < ?) OR (e.action = 'd'"
                " AND e.registered_to >= ? AND e.registered_to < ?)) ORDER BY e.id",
                (register, entity, start, end, start, end),
            ):
                period = RowPeriod(
                    parse_iso(frm), _opt_parse(to), _opt_parse(valid_from), _opt_parse(valid_to)
                )
                previous = last.get(str(key))
                # Inserted and then changed in the period is still an insert.
                if previous is not None and previous[1] == "i" and action == "u":
                    action = "i"
                last[str(key)] = (str(content), str(action), period)
            return [last[k] for k in sorted(last)]

        return await self._run(work)

    async def row_versions(self, register: str, entity: str) -> list[tuple[str, RowPeriod]]:
        """Every version of ``entity``'s rows kept, with its periods; by key, then time."""
        await self.flush()

        def work() -> list[tuple[str, RowPeriod]]:
            return _with_periods(
                self._connection().execute(
                    "SELECT content, registered_from, registered_to, valid_from, valid_to"
                    " FROM row_versions WHERE register = ? AND entity = ?"
                    " ORDER BY key, registered_from",
                    (register, entity),
                )
            )

        return await self._run(work)

    async def open_keys(self, register: str, entity: str) -> set[str]:
        """The keys of ``entity``'s rows registered now (not deleted)."""
        await self.flush()

        def work() -> set[str]:
            return {
                str(key)
                for (key,) in self._connection().execute(
                    "SELECT key FROM row_versions WHERE register = ? AND entity = ?"
                    " AND registered_to IS NULL",
                    (register, entity),
                )
            }

        return await self._run(work)

    async def deleted_keys(self, register: str) -> dict[str, set[str]]:
        """Per entity, the keys whose last event is a deletion."""
        await self.flush()

        def work() -> dict[str, set[str]]:
            found: dict[str, set[str]] = {}
            for entity, key in self._connection().execute(
                "SELECT entity, key FROM events WHERE id IN (SELECT max(id) FROM events"
                " WHERE register = ? GROUP BY entity, key) AND action = 'd'",
                (register,),
            ):
                found.setdefault(str(entity), set()).add(str(key))
            return found

        return await self._run(work)

    async def rows_known_from(self, register: str, entity: str) -> dt.datetime | None:
        """From when ``entity``'s rows are kept: the first time the gateway saw one (a row's
        own registration may be older, but what the register said before the gateway read
        it is not known). None: none kept."""
        row = await self._one(
            "SELECT min(seen_at) FROM row_versions WHERE register = ? AND entity = ?",
            (register, entity),
        )
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def rows_newest(self, register: str, entity: str) -> dt.datetime | None:
        """The latest registration of ``entity``'s rows kept (None: none kept)."""
        row = await self._one(
            "SELECT max(registered_from) FROM row_versions WHERE register = ? AND entity = ?",
            (register, entity),
        )
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def events(
        self, register: str, entities: Iterable[str] | None = None, after: int = 0
    ) -> list[EventRecord]:
        """The events of ``register`` (of ``entities`` only, if named) after event ``after``,
        oldest first. Versions not yet described (written by another process, or by an
        import) are described first."""
        if register in self._describers:
            self._describe_soon()
        await self.described()
        names = None if entities is None else sorted(set(entities))

        def work() -> list[EventRecord]:
            sql = (
                "SELECT id, entity, key, action, registered_from, registered_to, valid_from,"
                " valid_to, updated_at FROM events WHERE register = ? AND id > ?"
            )
            parameters: list[Any] = [register, after]
            if names is not None:
                sql += f" AND entity IN ({', '.join('?' for _ in names)})"
                parameters.extend(names)
            return [
                EventRecord(
                    int(r[0]),
                    str(r[1]),
                    str(r[2]),
                    str(r[3]),
                    parse_iso(r[4]),
                    _opt_parse(r[5]),
                    _opt_parse(r[6]),
                    _opt_parse(r[7]),
                    parse_iso(r[8]),
                )
                for r in self._connection().execute(sql + " ORDER BY id", parameters)
            ]

        return await self._run(work)

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
            before = db.changes
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
                db.execute(
                    "DELETE FROM row_versions WHERE registered_to IS NOT NULL"
                    " AND registered_to < ?",
                    (cutoff,),
                )
                db.execute("DELETE FROM events WHERE updated_at < ?", (cutoff,))
            return db.changes - before

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
    """BEGIN … COMMIT (ROLLBACK on error) on a connection in autocommit mode; a writing
    transaction on PostgreSQL first takes the history's lock (one writer at a time across
    processes, so that the open version of a row is closed once)."""

    def __init__(self, db: _Db) -> None:
        self.db = db

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
            self.db.lock()

    def __exit__(self, kind: object, *rest: object) -> None:
        if not self.db.in_transaction:
            return
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


class _Db:
    """One connection: SQL with ``?`` placeholders, as SQLite writes it."""

    @property
    def changes(self) -> int:
        """Rows inserted, updated or deleted through it so far."""
        raise NotImplementedError

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.execute(sql, row)

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def lock(self) -> None:
        """Take the writers' lock for the current transaction (none needed in SQLite)."""

    def close(self) -> None:
        raise NotImplementedError


class _Sqlite(_Db):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @property
    def changes(self) -> int:
        return self.db.total_changes

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        return self.db.execute(sql, parameters)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def close(self) -> None:
        self.db.close()


# The PostgreSQL schema: the SQLite one with PostgreSQL's types (text compared byte by byte,
# as SQLite compares it, so that paths and instants sort alike in both).
PG_MIGRATIONS: tuple[str, ...] = tuple(
    m.replace("TEXT", 'TEXT COLLATE "C"')
    .replace("BLOB", "BYTEA")
    .replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id BIGSERIAL PRIMARY KEY")
    for m in MIGRATIONS
)
# The advisory lock every writing transaction takes (any constant shared by the gateways).
_PG_LOCK = 0x646C7368  # "dlsh"


class _Postgres(_Db):
    """A PostgreSQL connection in autocommit mode (psycopg), speaking the SQLite dialect
    the store writes: ``?`` placeholders, ``INSERT OR IGNORE``."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._changes = 0
        self._sql: dict[str, str] = {}

    @property
    def changes(self) -> int:
        return self._changes

    @classmethod
    def connect(cls, url: str) -> _Postgres:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise DescriptorError("history.url needs psycopg (pip install psycopg)") from exc
        try:
            db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise DescriptorError(
                f"history.url: cannot connect to {_without_password(url)}: {exc}"
            ) from exc
        backend = cls(db)
        try:
            backend.migrate()
        except BaseException:
            db.close()
            raise
        return backend

    def _translate(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            text = sql.replace("?", "%s")
            if text.startswith("INSERT OR IGNORE INTO"):
                text = text.replace("INSERT OR IGNORE INTO", "INSERT INTO", 1)
                text += " ON CONFLICT DO NOTHING"
            found = self._sql[sql] = text
        return found

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        cursor = self.db.execute(self._translate(sql), tuple(parameters) or None)
        if cursor.rowcount > 0 and cursor.description is None:
            self._changes += cursor.rowcount
        return cursor

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.db.info.transaction_status != TransactionStatus.IDLE)

    def lock(self) -> None:
        self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> int:
        """Bring the schema to the newest version (one process at a time); the version it had."""
        with _transaction(self):
            self.db.execute("CREATE TABLE IF NOT EXISTS dls_history_schema (version INTEGER)")
            row = self.db.execute("SELECT max(version) FROM dls_history_schema").fetchone()
            had = int(row[0] or 0)
            if had > len(PG_MIGRATIONS):
                raise DescriptorError(
                    f"the history database is at schema version {had}; this gateway knows up "
                    f"to {len(PG_MIGRATIONS)} (a newer gateway wrote it)"
                )
            for version in range(had, len(PG_MIGRATIONS)):
                self.db.execute(PG_MIGRATIONS[version])
                self.db.execute("INSERT INTO dls_history_schema VALUES (%s)", (version + 1,))
                log.info("history: schema migrated to version %d", version + 1)
        return had


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _db_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


_DB_ERRORS = _db_errors()


def _apply(
    db: _Db,
    register: str,
    describer: Describer,
    path: str,
    content: bytes,
    registered_from: str,
    seen_at: str,
) -> int:
    """The events of one file version, as ``describer`` reads it, registered from
    ``registered_from``; how many were written (a version that cannot be read holds none)."""
    try:
        series = describer.series(path)
        objects = [] if series is None else list(describer.objects(path, content))
    except Exception as exc:
        log.warning("history: %s: %s holds no objects: %s", register, path, exc)
        return 0
    if series is None:
        return 0
    return apply_version(db, register, series, path, objects, registered_from, seen_at)


def _with_periods(rows: Iterable[Any]) -> list[tuple[str, RowPeriod]]:
    """(content, registered_from, registered_to, valid_from, valid_to) rows as contents with
    their periods."""
    return [
        (
            str(content),
            RowPeriod(parse_iso(frm), _opt_parse(to), _opt_parse(valid_from), _opt_parse(valid_to)),
        )
        for content, frm, to, valid_from, valid_to in rows
    ]


def _opt_iso(instant: dt.datetime | None) -> str | None:
    return None if instant is None else iso(instant)


def _opt_parse(text: Any) -> dt.datetime | None:
    return None if text is None else parse_iso(str(text))


def _registration(pending: _PendingRow, current: str | None) -> str | None:
    """When a new row version was registered: the register's own time if it is after the
    open version's, else the time the gateway saw it (and never before the open version);
    None when the register's time says it is older than the open version."""
    given = _opt_iso(pending.version.registered_from)
    if current is None:
        return given or pending.seen_at
    if given is not None:
        if given > current:
            return given
        if given < current:
            return None
    if pending.seen_at > current:
        return pending.seen_at
    return iso(parse_iso(current) + dt.timedelta(microseconds=1))


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
