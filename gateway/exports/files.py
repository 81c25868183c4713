"""Finished export files: built once into the exports folder, then served as static files.

Dataframe libraries read a URL the way they read a file: polars asks for ``HEAD`` and byte
ranges (the Parquet footer first: ``Range: bytes=-262144``), pandas and pyarrow read the
whole body. A streamed export has no length and cannot be sought in, so a Parquet export, and
a CSV or NDJSON export asked for as a file (``HEAD``, a ``Range`` header or ``?finished=1``),
is written to a file first and served from it with ``Content-Length``, ``ETag``,
``Accept-Ranges: bytes``, one ``Range`` per request (``206``, ``416`` outside the file) and
``If-None-Match`` (``304``).

A file is named by everything that determines its bytes (:func:`file_key`): register,
external version, entity, format, the canonical ``where``/``order``, the options and the
caller's level. A caller is only ever served a file built for its own level, so nothing
above a level can reach a lower one through the folder.

Two requests for the same file in one process build it once (the second waits for the
first); across processes sharing a folder each builds into its own temporary file and the
last atomic rename wins (the contents are the same). A file is rebuilt once it is older than
``max_age`` seconds: the upstreams do not announce data versions, so age is what the gateway
can know. The folder holds at most ``max_bytes``: the oldest files are removed to make room,
and an export larger than the limit fails with ``413 EXPORT_TOO_LARGE`` (the streamed CSV and
NDJSON have no such limit).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.model.errors import GatewayError

__all__ = [
    "ExportFileSettings",
    "ExportTooLargeError",
    "FileStore",
    "Finished",
    "file_key",
    "finished_at",
    "serve_file",
]

log = logging.getLogger("gateway.exports.files")

_CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class ExportTooLargeError(GatewayError):
    """A finished export would not fit the exports folder's limit."""

    code = "EXPORT_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class ExportFileSettings:
    """Where finished exports are kept, for how long, and how much of them.

    ``folder`` None: a temporary folder of this process, removed when it stops. A folder
    given is kept across restarts and may be shared by the processes of one gateway.
    """

    folder: Path | None = None
    max_bytes: int = 2 * 1024**3
    max_age: float = 300.0
    # Registers whose annex downloads are written on their Frequency (exports/scheduled.py).
    scheduled: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, values: Mapping[str, Any], base: Path) -> ExportFileSettings:
        """Read the ``[exports]`` table (``folder``, ``max_bytes``, ``max_age``,
        ``scheduled``)."""
        folder = values.get("folder")
        scheduled = values.get("scheduled", ())
        if isinstance(scheduled, str):
            scheduled = [r.strip() for r in scheduled.split(",") if r.strip()]
        if not isinstance(scheduled, list | tuple) or not all(
            isinstance(r, str) for r in scheduled
        ):
            raise ValueError("scheduled is a list of register names")
        max_bytes = int(values.get("max_bytes", 2 * 1024**3))
        max_age = float(values.get("max_age", 300.0))
        if max_bytes <= 0 or max_age < 0:
            raise ValueError("max_bytes must be positive and max_age not negative")
        return cls(
            folder=(base / str(folder)).resolve() if folder else None,
            max_bytes=max_bytes,
            max_age=max_age,
            scheduled=tuple(scheduled),
        )


def file_key(parts: Mapping[str, Any]) -> str:
    """A name for the file whose bytes ``parts`` determine (a SHA-256 of their JSON)."""
    text = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished export on disk."""

    path: Path
    size: int
    etag: str
    built: float
    rows: int | None = None  # the rows written, when known


@dataclass
class FileStore:
    """The exports folder: builds each file once, evicts the oldest beyond ``max_bytes``."""

    settings: ExportFileSettings = field(default_factory=ExportFileSettings)
    _folder: Path | None = field(default=None, init=False)
    _owned: bool = field(default=False, init=False)
    _building: dict[str, asyncio.Future[Finished]] = field(default_factory=dict, init=False)
    _serving: dict[Path, int] = field(default_factory=dict, init=False)

    @property
    def folder(self) -> Path:
        if self._folder is None:
            if self.settings.folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="dls-gateway-exports-"))
                self._owned = True
                atexit.register(self.close)
            else:
                self._folder = self.settings.folder
                self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder

    def close(self) -> None:
        """Remove the folder if it is this process's temporary one."""
        if self._owned and self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
            self._owned = False

    def _path(self, key: str, suffix: str, level: int) -> Path:
        # One sub-folder per level: what a level may read is never next to another's.
        return self.folder / f"level-{level}" / f"{key}.{suffix}"

    def _fresh(self, path: Path) -> Finished | None:
        found = _finished(path)
        if found is None or time.time() - found.built > self.settings.max_age:
            return None
        return found

    async def get(
        self,
        key: str,
        suffix: str,
        level: int,
        build: AsyncIterator[bytes],
        rows: Callable[[], int | None] = lambda: None,
    ) -> Finished:
        """The fresh file ``key``, built from ``build`` (once) when there is none.

        ``build`` is closed unread when the file is already there; ``rows()`` is asked once
        it is exhausted.
        """
        path = self._path(key, suffix, level)
        found = self._fresh(path)
        if found is not None:
            await _close(build)
            return found
        pending = self._building.get(key)
        if pending is not None:
            await _close(build)
            return await asyncio.shield(pending)
        future: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            finished = await self._build(path, build, rows)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        else:
            future.set_result(finished)
            return finished
        finally:
            del self._building[key]

    async def _build(
        self, path: Path, build: AsyncIterator[bytes], rows: Callable[[], int | None]
    ) -> Finished:
        path.parent.mkdir(parents=True, exist_ok=True)
        limit = self.settings.max_bytes
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".building-", suffix=".part")
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in build:
                    size += len(chunk)
                    if size > limit:
                        raise ExportTooLargeError(
                            f"this export is larger than the exports folder's limit of "
                            f"{limit} bytes; ask for CSV or NDJSON (streamed, no limit) or "
                            "narrow it with where",
                            limit=limit,
                        )
                    await asyncio.to_thread(handle.write, chunk)
            self._make_room(size, keep=path)
            written = rows()
            if written is not None:
                _rows_path(path).write_text(str(written), encoding="ascii")
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        finally:
            await _close(build)
        found = _finished(path)
        if found is None:  # removed by another process in between
            raise FileNotFoundError(f"{path.name} was removed as it was built")
        log.info("built %s (%d bytes)", path.name, size)
        return found

    async def write(
        self, path: Path, build: AsyncIterator[bytes], rows: Callable[[], int | None]
    ) -> Finished:
        """Build a file at ``path`` (a scheduled file: not evicted, kept until removed)."""
        return await self._build(path, build, rows)

    def _make_room(self, size: int, keep: Path) -> None:
        """Remove the oldest files (none being served) until ``size`` more bytes fit."""
        files = []
        for entry in self.folder.glob("level-*/*"):
            if entry.name.startswith(".building-") or entry.suffix == ".rows":
                continue
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat()
                files.append((stat.st_mtime, stat.st_size, entry))
        total = sum(s for _, s, _ in files)
        for _, entry_size, entry in sorted(files):
            if total + size <= self.settings.max_bytes:
                break
            if entry == keep or self._serving.get(entry):
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                total -= entry_size
            with contextlib.suppress(FileNotFoundError):
                _rows_path(entry).unlink()

    @contextlib.contextmanager
    def serving(self, path: Path) -> Iterator[None]:
        """Keep ``path`` from eviction while it is sent."""
        self._serving[path] = self._serving.get(path, 0) + 1
        try:
            yield
        finally:
            self._serving[path] -= 1
            if not self._serving[path]:
                del self._serving[path]


def finished_at(path: Path) -> Finished | None:
    """The file at ``path`` as served, or None if there is none."""
    return _finished(path)


def _finished(path: Path) -> Finished | None:
    """The file at ``path`` as served, or None if there is none."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    etag = f'"{path.stem[:20]}-{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'
    try:
        rows: int | None = int(_rows_path(path).read_text(encoding="ascii"))
    except (OSError, ValueError):
        rows = None
    return Finished(path, stat.st_size, etag, stat.st_mtime, rows)


def _rows_path(path: Path) -> Path:
    return path.with_name(path.name + ".rows")


async def _close(stream: AsyncIterator[bytes]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags


def _byte_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """``(first, last)`` of one ``Range``; None to ignore it; False if it is unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges, or another unit: the whole file (RFC 9110 §14.2)
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return False
    return start, end


class _FileResponse(Response):
    """Bytes ``first``..``last`` of a file, read in chunks while it is kept from eviction."""

    def __init__(
        self,
        store: FileStore,
        finished: Finished,
        span: tuple[int, int] | None,
        status_code: int,
        headers: Mapping[str, str],
        media_type: str,
        head: bool,
    ) -> None:
        super().__init__(None, status_code=status_code, headers=headers, media_type=media_type)
        self.store = store
        self.finished = finished
        self.span = span
        self.head = head
        first, last = span if span is not None else (0, finished.size - 1)
        self.headers["content-length"] = str(max(0, last - first + 1))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self.head or self.finished.size == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        first, last = self.span if self.span is not None else (0, self.finished.size - 1)
        with self.store.serving(self.finished.path), self.finished.path.open("rb") as handle:
            handle.seek(first)
            remaining = last - first + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(_CHUNK, remaining))
                if not chunk:
                    break  # the file was cut short under us: end without the final chunk
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if remaining:
                return
        await send({"type": "http.response.body", "body": b""})


def serve_file(
    request: Request,
    store: FileStore,
    finished: Finished,
    media_type: str,
    headers: Mapping[str, str],
) -> Response:
    """``finished`` as a static file: 200, 206 (one range), 304 or 416."""
    out = {
        **headers,
        "etag": finished.etag,
        "accept-ranges": "bytes",
        "last-modified": _http_date(finished.built),
    }
    match = request.headers.get("if-none-match")
    if match is not None and _etag_matches(match, finished.etag):
        kept = {k: v for k, v in out.items() if k not in ("content-disposition",)}
        return Response(status_code=304, headers=kept)
    head = request.method == "HEAD"
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != finished.etag:
        wanted = None  # the client's copy is of another version: send the whole file
    if wanted is not None:
        span = _byte_range(wanted, finished.size)
        if span is False:
            return Response(
                status_code=416, headers={**out, "content-range": f"bytes */{finished.size}"}
            )
        if isinstance(span, tuple):
            first, last = span
            out["content-range"] = f"bytes {first}-{last}/{finished.size}"
            return _FileResponse(store, finished, span, 206, out, media_type, head)
    return _FileResponse(store, finished, None, 200, out, media_type, head)


def _http_date(seconds: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))
