"""Scheduled downloads: the annex's downloads written on their ``Frequency`` as files.

For each register named in ``[exports] scheduled``, every entry of its
``Automated_Predefined_Filedownloads.json`` is written, per entity it offers, once per period
of ``Frequency`` days (1: each UTC day, 7: each week from Monday 00:00 UTC), as a CSV file
in the exports folder (``scheduled/level-{L}/{REG}/``), and served as a static file from
``/{REG}/v{N}/files/{name}`` (``Content-Length``, ``ETag``, ``Range``, ``If-None-Match``):

- ``FileDownloadType`` 1, ``TypeOfData`` 1: a total of the current rows when the file is
  written (``{Entity}.total.{until}.csv``);
- ``FileDownloadType`` 2: the changes of the period just ended, from the history
  (``{Entity}.delta.{from}-{until}.csv``; the same rows as ``?since=…&until=…``);
- ``TypeOfData`` 2 or 3: every version kept by the period's end
  (``{Entity}.versions.{until}.csv``).

A file is built at the annex entry's ``SecurityLevel`` (columns above it are absent) and
served only to callers of that level or higher. The newest file of each download is written
at start if it is missing, then each period as it ends; ``/catalog.json`` lists the files a
caller may read, with their periods. Files already written are kept (the folder's size limit
applies to on-demand exports only); a failure is logged and tried again next period.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.exports.catalog import Downloads, export_name
from gateway.history.periods import Asked
from gateway.model.datamodel import Entity, Register

__all__ = ["Planned", "Scheduler", "due", "period_of"]

log = logging.getLogger("gateway.exports.scheduled")

_NAME = re.compile(r"^[A-Za-z0-9_]+\.(total|delta|versions)\.[0-9T-]+\.csv$")


def period_of(frequency: int, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The last complete period of ``frequency`` days before ``now`` (UTC days; weeks from
    Monday)."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if frequency == 7:
        day -= dt.timedelta(days=day.weekday())
    return day - dt.timedelta(days=frequency), day


@dataclass(frozen=True, slots=True)
class Planned:
    """One scheduled file."""

    register: Register
    entity: Entity
    kind: str  # total, delta or versions
    frequency: int
    level: int
    start: dt.datetime
    end: dt.datetime

    @property
    def name(self) -> str:
        stem = export_name(self.register, self.entity)
        until = f"{self.end:%Y%m%d}"
        if self.kind == "delta":
            return f"{stem}.delta.{self.start:%Y%m%d}-{until}.csv"
        return f"{stem}.{self.kind}.{until}.csv"

    @property
    def asked(self) -> Asked | None:
        if self.kind == "delta":
            return Asked(self.start, self.end)
        return Asked() if self.kind == "versions" else None

    def path(self, folder: Path) -> Path:
        return folder / f"level-{self.level}" / self.register.name / self.name


def _kind(entry: Mapping[str, Any]) -> str:
    if int(entry.get("FileDownloadType", 1)) == 2:
        return "delta"
    return "versions" if int(entry.get("TypeOfData", 1)) in (2, 3) else "total"


def due(
    registers: Iterable[Register], downloads: Mapping[str, Downloads], now: dt.datetime
) -> list[Planned]:
    """Every file the annexes of ``registers`` schedule for the periods ended by ``now``."""
    out: list[Planned] = []
    for register in registers:
        offered = downloads[register.name].offered
        for entry in downloads[register.name].entries:
            kind = _kind(entry)
            if kind != "total" and register.events is None:
                continue  # no row versions recorded: only totals
            frequency = int(entry.get("Frequency", 1))
            level = int(entry.get("SecurityLevel", 0))
            start, end = period_of(frequency, now)
            named = str(entry.get("EntityName", ""))
            for entity in register.datamodel.entities.values():
                if entity.name not in offered or named not in ("All", entity.name):
                    continue
                if register.entity_level(entity.name) > level:
                    continue  # not readable at the file's level
                out.append(Planned(register, entity, kind, frequency, level, start, end))
    return out


# Writes one planned file (the route handlers know how): the path it is written to.
Writer = Callable[[Planned, Path], Awaitable[None]]


class Scheduler:
    """Writes the scheduled files of some registers, and finds them again."""

    def __init__(
        self,
        registers: Iterable[Register],
        downloads: Mapping[str, Downloads],
        folder: Callable[[], Path],
        write: Writer,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.registers = list(registers)
        self.downloads = downloads
        self._folder = folder
        self.write = write
        self.clock = clock
        self.written = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None
        self._round: asyncio.Event = asyncio.Event()

    @property
    def folder(self) -> Path:
        return self._folder() / "scheduled"

    async def once(self) -> int:
        """Write the files due now that are missing; how many were written."""
        count = 0
        for planned in due(self.registers, self.downloads, self.clock()):
            path = planned.path(self.folder)
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                await self.write(planned, path)
            except Exception as exc:  # an upstream or history failure: next period
                self.failed += 1
                log.warning("scheduled %s/%s failed: %s", planned.register.name, path.name, exc)
                continue
            count += 1
            self.written += 1
            log.info("scheduled %s/%s written", planned.register.name, path.name)
        return count

    def start(self) -> None:
        if self.registers and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.once()
            self._round.set()
            now = self.clock()
            tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(1)
            # Wake just after midnight UTC (a new daily period, and Mondays a weekly one).
            await asyncio.sleep(max(1.0, (tomorrow - now).total_seconds() + 5))

    async def settled(self) -> None:
        """Wait for the first round (for tests and the demo)."""
        if self._task is not None:
            await self._round.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def files(self, register: Register, level: int) -> list[dict[str, Any]]:
        """The files written for ``register`` that a caller of ``level`` may read (newest
        period first): export name, kind, period (``from`` only for a delta), name, bytes."""
        if register not in self.registers:
            return []
        out: list[dict[str, Any]] = []
        for path in self.folder.glob(f"level-*/{register.name}/*.csv"):
            file_level = int(path.parent.parent.name.removeprefix("level-"))
            if file_level > level or not _NAME.match(path.name):
                continue
            stem, kind, dates = path.name.removesuffix(".csv").split(".")
            first, _, last = dates.partition("-")
            item: dict[str, Any] = {
                "exportName": stem,
                "kind": kind,
                "until": _day(last or first),
                "name": path.name,
                "level": file_level,
                "bytes": path.stat().st_size,
            }
            if last:
                item["from"] = _day(first)
            out.append(item)
        return sorted(out, key=lambda f: (f["until"], f["name"]), reverse=True)

    def find(self, register: Register, name: str, level: int) -> Path | None:
        """A written file by name, if a caller of ``level`` may read it."""
        if not _NAME.match(name) or register not in self.registers:
            return None
        for file_level in range(level, -1, -1):
            path = self.folder / f"level-{file_level}" / register.name / name
            if path.is_file():
                return path
        return None


def _day(text: str) -> str:
    """``20261203`` → ``2026-12-03T00:00:00Z``."""
    return dt.datetime.strptime(text, "%Y%m%d").strftime("%Y-%m-%dT00:00:00Z")
