"""Incremental precinct batches: reading them in order and merging re-sent precincts.

ČSÚ publishes precinct results in numbered batches (``davka``) about every five minutes; the
request with an empty ``davka`` answers the newest one. A precinct may be sent again in a later
batch with a higher ``PORADI_ZPRAC`` (and ``OPAKOVANE=1``); the highest ``PORADI_ZPRAC`` wins,
whatever order the batches are read in. Batches are append-only, so what was read is kept for
good and only new numbers are asked for afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model.datamodel import Datamodel, Entity
from gateway.model.errors import UpstreamInvalidError
from gateway.model.keys import reference_source
from gateway.model.query import Row
from resolvers.volby_xml.parse import Chyba
from resolvers.volby_xml.rows import MappedDocument

__all__ = ["BatchNames", "BatchStream"]

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[MappedDocument]]
FetchNumber = Callable[[int], Awaitable[MappedDocument]]


@dataclass(frozen=True, slots=True)
class BatchNames:
    """Which entities and attributes play which part in a batch document."""

    batch: str = "DAVKA"
    precinct: str = "OKRSEK"
    votes: str = "HLASY_OKRSEK"
    progress: str = "PRUBEH"
    number: str = "PORADI_DAVKY"
    sequence: str = "PORADI_ZPRAC"


@dataclass(slots=True)
class _Precinct:
    sequence: int
    row: Row
    votes: tuple[Row, ...]


class BatchStream:
    """The batches of one election (or round): what was read and the merged precincts."""

    def __init__(
        self, context: Mapping[str, Any], datamodel: Datamodel, names: BatchNames | None = None
    ) -> None:
        self.context = dict(context)
        self.names = names or BatchNames()
        entities = datamodel.entities
        self._batch = entities.get(self.names.batch)
        self._precinct = entities[self.names.precinct]
        self._votes = entities.get(self.names.votes)
        self._progress = entities.get(self.names.progress)
        self.lock = asyncio.Lock()
        self.next_number = 1
        self.newest: int | None = None
        self.batches: dict[int, Row] = {}
        self.missing: set[int] = set()
        self.checked_at: str | None = None
        self.waiting: Chyba | None = None
        """The "not yet" error (10, 20, 30) the newest batch answered at the last check."""
        self._precincts: dict[tuple[Any, ...], _Precinct] = {}

    # ----------------------------------------------------------------- merging

    def merge(self, number: int, document: MappedDocument) -> None:
        """Add one batch; a precinct already known is replaced only by a higher sequence."""
        for batch_row in document.of(self.names.batch)[:1]:
            self.batches[number] = batch_row
        self.missing.discard(number)
        votes = self._votes_by_precinct(document)
        sequence = self._precinct.by_source[self.names.sequence].name
        link = self._link_field()
        for row in document.of(self.names.precinct):
            key = tuple(row.get(k) for k in self._precinct.key)
            seq = row.get(sequence)
            rank = seq if isinstance(seq, int) else -1
            known = self._precincts.get(key)
            if known is None or rank > known.sequence:
                self._precincts[key] = _Precinct(rank, row, votes.get(row.get(link), ()))

    def _link_field(self) -> str:
        field = self._precinct.by_source.get(reference_source(self._precinct.name))
        return field.name if field is not None else self._precinct.key[0]

    def _votes_by_precinct(self, document: MappedDocument) -> dict[Any, tuple[Row, ...]]:
        if self._votes is None:
            return {}
        link = self._link_field()
        grouped: dict[Any, list[Row]] = {}
        for row in document.of(self.names.votes):
            grouped.setdefault(row.get(link), []).append(row)
        return {k: tuple(v) for k, v in grouped.items()}

    # ----------------------------------------------------------------- reading

    async def refresh(
        self,
        newest: Fetch,
        numbered: FetchNumber,
        *,
        concurrency: int = 4,
        now: Callable[[], str] | None = None,
    ) -> None:
        """Read every batch up to the newest one, from where the last refresh stopped.

        Errors 10, 20 and 30 for the newest mean "no batch yet" (remembered in
        :attr:`waiting`); error 10 for a number below the newest means
        the batch will never come (a gap), which is logged and remembered, not retried. Any
        other failure stops the reading at that number, to be resumed next time.
        """
        async with self.lock:
            document = await newest()
            self.checked_at = (now or _now)()
            self.waiting = None
            if document.error is not None:
                if document.error.not_yet_available:
                    self.waiting = document.error
                    return
                raise UpstreamInvalidError(f"newest batch: {document.error.describe()}")
            number = self._number_of(document)
            self.newest = max(self.newest or 0, number)
            if number not in self.batches:
                self.merge(number, document)
            before = set(self.missing)
            try:
                await self._read_up_to(number, numbered, max(1, concurrency))
            finally:
                if self.missing - before:
                    log.warning(
                        "volby.cz batches %s of %s are missing upstream (error 10)",
                        _ranges(self.missing - before),
                        self.context,
                    )

    async def _read_up_to(self, newest: int, numbered: FetchNumber, concurrency: int) -> None:
        while self.next_number <= newest:
            window = range(self.next_number, min(newest, self.next_number + concurrency - 1) + 1)
            wanted = [n for n in window if n not in self.batches]
            results = await asyncio.gather(*(numbered(n) for n in wanted), return_exceptions=True)
            outcome = dict(zip(wanted, results, strict=True))
            for n in window:
                result = outcome.get(n)
                if isinstance(result, BaseException):
                    self.next_number = n
                    raise result
                if result is not None:
                    self._accept(n, result)
                self.next_number = n + 1

    def _accept(self, number: int, document: MappedDocument) -> None:
        if document.error is None:
            self.merge(number, document)
        elif document.error.not_yet_available:
            self.missing.add(number)
        else:
            raise UpstreamInvalidError(f"batch {number}: {document.error.describe()}")

    def _number_of(self, document: MappedDocument) -> int:
        if self._batch is not None:
            field = self._batch.by_source.get(self.names.number)
            for row in document.of(self.names.batch)[:1]:
                value = row.get(field.name) if field is not None else None
                if isinstance(value, int):
                    return value
        raise UpstreamInvalidError("the newest batch does not say its number")

    # ----------------------------------------------------------------- answering

    def rows(self, entity: Entity) -> list[Row]:
        """The current rows of one of the batch entities."""
        name = entity.name
        if name == self.names.precinct:
            return [p.row for p in self._precincts.values()]
        if name == self.names.votes:
            return [row for p in self._precincts.values() for row in p.votes]
        if name == self.names.batch:
            return [self.batches[n] for n in sorted(self.batches)]
        if name == self.names.progress:
            return [self.progress()]
        return []

    def progress(self) -> Row:
        """How far the reading got (a row of the progress entity)."""
        newest_read = self.batches[max(self.batches)] if self.batches else {}
        values: dict[str, Any] = {
            **self.context,
            "POSLEDNI_DAVKA": self.newest,
            "DAVKY_NACTENE": len(self.batches),
            "DAVKY_CHYBEJICI": " ".join(str(n) for n in sorted(self.missing)) or None,
            "OKRSKY_SECTENE": len(self._precincts),
            "OKRSKY_ZPRAC": self._batch_value(newest_read, "OKRSKY_ZPRAC"),
            "OKRSKY_CELKEM": self._batch_value(newest_read, "OKRSKY_CELKEM"),
            "DATUM_CAS_GENEROVANI": self._batch_value(newest_read, "DATUM_CAS_GENEROVANI"),
            "DATUM_CAS_KONTROLY": self.checked_at,
        }
        if self._progress is None:
            return values
        return {f.name: values.get(f.source) for f in self._progress.fields}

    def _batch_value(self, row: Row, source: str) -> Any:
        field = self._batch.by_source.get(source) if self._batch is not None else None
        return row.get(field.name) if field is not None else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _ranges(numbers: set[int]) -> str:
    """``{2, 3, 4, 7}`` as ``2-4, 7``."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and n - 1 in numbers:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)
