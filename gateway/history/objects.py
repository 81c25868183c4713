"""Events of the registers whose history is files: the objects each file version holds.

FT's upstream answers rows, and its events come from the row versions
(:meth:`gateway.history.store.HistoryStore.record_rows`). VALG, ČSÚ and the German files are
kept as file versions; their events come from the *objects* those files hold, told by the
register's :class:`Describer`:

- ``series(path)`` names what a version replaces (a VALG file without its stamp, a German
  dataset without its ``Zeitstempel``; a ČSÚ batch is its own series: batches add, they do
  not replace);
- ``objects(path, content)`` lists ``(entity, key, digest)``: every object of an entity the
  version holds, its key as the gateway serves it, and a digest of its content.

File versions are described in the order they were registered (a version read out of order,
older than what an object already says, changes nothing). An object not seen before, or seen
deleted, is ``i``; one whose digest changed is ``u``; an object the series held and its new
version does not (a row gone from a newer German file) is ``d``, as are the objects of a
series withdrawn upstream (:func:`withdraw`: a VALG file that disappears without a newer
version). A version is described once (``files.described``), whether the gateway read it or
an archive was imported: a database written without a describer is described when a gateway
that has one opens it.

Everything here runs on the store's worker thread, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = ["Describer", "ObjectRef", "apply_version", "withdraw"]

# (entity, key as text, digest of its content)
ObjectRef = tuple[str, str, str]


class Describer(Protocol):
    """What a register's file versions hold (see the module). Called on a worker thread:
    it must only read what does not change."""

    def series(self, path: str) -> str | None:
        """What the version at ``path`` replaces (None: the file holds no objects)."""

    def objects(self, path: str, content: bytes) -> Iterable[ObjectRef]:
        """The objects the version holds."""


class _Executes(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any: ...


_EVENT = (
    "INSERT INTO events (register, entity, key, action, registered_from, registered_to,"
    " valid_from, valid_to, updated_at) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?)"
)


def apply_version(
    db: _Executes,
    register: str,
    series: str,
    path: str,
    objects: Iterable[ObjectRef],
    registered_from: str,
    seen_at: str,
) -> int:
    """The events of one file version (``registered_from``, ``seen_at``: stored instants);
    how many were written."""
    written = 0
    held: set[tuple[str, str]] = set()
    for entity, key, digest in objects:
        if (entity, key) in held:
            continue
        held.add((entity, key))
        where = (register, entity, key)
        current = db.execute(
            "SELECT sha256, registered_from, deleted FROM objects WHERE register = ?"
            " AND entity = ? AND key = ?",
            where,
        ).fetchone()
        if current is not None and str(current[1]) > registered_from:
            continue  # a version older than the one the object is known from
        if current is None or current[2]:
            action: str | None = "i"
        else:
            action = "u" if current[0] != digest else None
        db.execute(
            "INSERT INTO objects (register, entity, key, series, path, sha256, registered_from,"
            " deleted) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (register, entity, key)"
            " DO UPDATE SET series = excluded.series, path = excluded.path,"
            " sha256 = excluded.sha256, registered_from = excluded.registered_from, deleted = 0",
            (*where, series, path, digest, registered_from),
        )
        if action is not None:
            db.execute(_EVENT, (*where, action, registered_from, seen_at))
            written += 1
    # What the series held before this version and no longer holds.
    dropped = [k for k in _live(db, register, series, registered_from) if k not in held]
    return written + _delete(db, register, dropped, registered_from, seen_at)


def withdraw(db: _Executes, register: str, series: str, at: str, seen_at: str) -> int:
    """``d`` for every live object of ``series`` (withdrawn upstream at ``at``)."""
    return _delete(db, register, _live(db, register, series, at), at, seen_at)


def _live(db: _Executes, register: str, series: str, at: str) -> list[tuple[str, str]]:
    """The (entity, key) of the objects ``series`` holds at ``at``, not deleted."""
    return [
        (str(entity), str(key))
        for entity, key in db.execute(
            "SELECT entity, key FROM objects WHERE register = ? AND series = ? AND deleted = 0"
            " AND registered_from <= ?",
            (register, series, at),
        ).fetchall()
    ]


def _delete(
    db: _Executes, register: str, keys: Sequence[tuple[str, str]], at: str, seen_at: str
) -> int:
    for entity, key in keys:
        db.execute(
            "UPDATE objects SET deleted = 1, registered_from = ? WHERE register = ?"
            " AND entity = ? AND key = ?",
            (at, register, entity, key),
        )
        db.execute(_EVENT, (register, entity, key, "d", at, seen_at))
    return len(keys)
