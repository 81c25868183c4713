"""Where Offene Wahldaten files come from: a folder on a web server, or a local directory.

A web folder is read through its listing, a JSON document (``{"files": [{"name", "etag",
"size", "modified"}]}``) or the HTML index a web server generates; the listing is fetched with
``If-None-Match``/``If-Modified-Since`` so an unchanged folder costs a ``304``. Names from a
listing are untrusted: an entry that is not a plain ``.csv`` file name directly in the folder is
ignored and reported. HTTP goes through :class:`resolvers.transport.Transport` (its one error
translation, metrics, ``X-Request-ID``; a body cut off in flight is invalid data here); the OS
errors of a local directory are translated here (:func:`upstream_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urljoin, urlsplit

from gateway.model.errors import UpstreamInvalidError, UpstreamUnavailableError
from resolvers.transport import Reply, Transport
from resolvers.wahldaten_csv.parse import DataWarning

__all__ = [
    "DirectoryUpstream",
    "Fetched",
    "HttpUpstream",
    "Listing",
    "RemoteFile",
    "Upstream",
    "parse_html_listing",
    "parse_json_listing",
    "upstream_errors",
]


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file of a listing. ``version`` changes whenever the content may have changed."""

    name: str
    location: str  # URL or filesystem path
    version: str
    size: int | None = None
    modified: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A file read: its bytes (None: unchanged since the validator sent) and its ETag."""

    data: bytes | None
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """The files of one folder, and what was wrong with the entries that were left out."""

    files: tuple[RemoteFile, ...]
    warnings: tuple[DataWarning, ...] = ()


class Upstream(Protocol):
    """A folder of files."""

    @property
    def label(self) -> str:
        """The folder's URL or path, for messages and cache keys."""

    async def listing(self) -> Listing:
        """The folder's files."""

    async def read(self, file: RemoteFile, etag: str | None = None) -> Fetched:
        """The bytes of one file; None if they are those of ``etag`` (a validator of the
        previous read).
        """


@contextlib.contextmanager
def upstream_errors(what: str) -> Iterator[None]:
    """Translate OS errors met while reading ``what`` from a directory into upstream errors."""
    try:
        yield
    except OSError as exc:
        raise UpstreamUnavailableError(f"{what}: {exc.strerror or exc}") from exc


def _plain_name(name: str) -> bool:
    """Whether ``name`` is a CSV file name that stays inside its folder."""
    return (
        bool(name)
        and name.lower().endswith(".csv")
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and all(ord(char) >= 32 for char in name)
    )


def _rejected(base: str, entry: str) -> DataWarning:
    return DataWarning(
        "LISTING_ENTRY_IGNORED",
        f"listing entry {entry!r} is not a .csv file directly in the folder; it was ignored",
        base,
    )


def parse_json_listing(data: Any, base: str) -> Listing:
    """Files of a JSON listing: ``{"files": [...]}`` or a bare list, of names or objects."""
    entries = data.get("files") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise UpstreamInvalidError(f"{base}: the listing has no list of files")
    files: list[RemoteFile] = []
    warnings: list[DataWarning] = []
    for entry in entries:
        item = {"name": entry} if isinstance(entry, str) else entry
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _plain_name(name):
            if not (isinstance(name, str) and name.endswith("/")):
                warnings.append(_rejected(base, str(name if name is not None else entry)))
            continue
        size = item.get("size")
        modified = item.get("modified") or item.get("lastModified")
        etag = item.get("etag")
        files.append(
            RemoteFile(
                name=name,
                location=urljoin(base, quote(name, safe="")),
                version=str(etag or f"{size}:{modified}"),
                size=size if isinstance(size, int) else None,
                modified=str(modified) if modified else None,
            )
        )
    return Listing(tuple(files), tuple(warnings))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def parse_html_listing(text: str, base: str) -> Listing:
    """Files of an HTML index (a web server's directory page): the links to ``.csv`` files
    directly in the folder. Links elsewhere (parent folder, sort links, other hosts) are skipped.
    """
    parser = _Links()
    parser.feed(text)
    parser.close()
    folder = urlsplit(base)
    files: list[RemoteFile] = []
    warnings: list[DataWarning] = []
    for href in parser.hrefs:
        target = urlsplit(urljoin(base, href))
        if target.query or not target.path.lower().endswith(".csv"):
            continue  # navigation, sorting, sub-folders
        parent, _, last = target.path.rpartition("/")
        name = unquote(last)
        if (target.scheme, target.netloc, parent + "/") != (
            folder.scheme,
            folder.netloc,
            folder.path,
        ) or not _plain_name(name):
            warnings.append(_rejected(base, href))
            continue
        location = f"{folder.scheme}://{folder.netloc}{target.path}"
        files.append(RemoteFile(name=name, location=location, version=""))
    return Listing(tuple(files), tuple(warnings))


class HttpUpstream:
    """A folder on a web server, read through its listing."""

    def __init__(self, base: str, transport: Transport) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.transport = transport
        self._validators: dict[str, str] = {}
        self._last: Listing | None = None

    @property
    def label(self) -> str:
        return self.base

    async def listing(self) -> Listing:
        """The folder's files, revalidated with the validators of the previous answer."""
        headers = {"Accept": "application/json, text/html;q=0.9"}
        if self._last is not None:
            headers.update(self._validators)
        passing = (304,) if self._last is not None else ()
        # One attempt: the caller runs it under the register's guard.
        response = await self.transport.attempt(self.base, headers=headers, passing=passing)
        if response.status == 304 and self._last is not None:
            return self._last
        listing = self._parse(response)
        self._validators = {}
        if etag := response.headers.get("etag"):
            self._validators["If-None-Match"] = etag
        if modified := response.headers.get("last-modified"):
            self._validators["If-Modified-Since"] = modified
        self._last = listing
        return listing

    def _parse(self, response: Reply) -> Listing:
        kind = response.headers.get("content-type", "")
        body = response.content
        if "json" in kind or body.lstrip()[:1] in (b"{", b"["):
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise UpstreamInvalidError(f"{self.base}: the listing is not valid JSON") from exc
            return parse_json_listing(data, self.base)
        return parse_html_listing(response.text, self.base)

    async def read(self, file: RemoteFile, etag: str | None = None) -> Fetched:
        """The file's bytes, or None on ``304`` to ``etag`` (an HTTP error or a cut-off body
        raises an upstream error).
        """
        headers = {"Accept": "text/csv, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        response = await self.transport.attempt(
            file.location, headers=headers, passing=(304,) if etag else ()
        )
        if response.status == 304 and etag:
            return Fetched(None, etag)
        return Fetched(response.content, response.headers.get("etag"))


class DirectoryUpstream:
    """A local directory (and its sub-directories) of files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def label(self) -> str:
        return str(self.root)

    async def listing(self) -> Listing:
        """The ``.csv`` files below the directory; the first of two equal names is used."""
        with upstream_errors(f"directory {self.root}"):
            return await asyncio.to_thread(self._scan)

    def _scan(self) -> Listing:
        if not self.root.is_dir():
            raise FileNotFoundError(2, "no such directory", str(self.root))
        root = self.root.resolve()
        files: dict[str, RemoteFile] = {}
        warnings: list[DataWarning] = []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(names):
                path = Path(folder) / name
                if not _plain_name(name) or not path.resolve().is_relative_to(root):
                    continue
                if name in files:
                    warnings.append(_rejected(str(path), name))
                    continue
                stat = path.stat()
                files[name] = RemoteFile(
                    name=name,
                    location=str(path),
                    version=f"{stat.st_mtime_ns}:{stat.st_size}",
                    size=stat.st_size,
                )
        return Listing(tuple(files.values()), tuple(warnings))

    async def read(self, file: RemoteFile, etag: str | None = None) -> Fetched:
        """The file's bytes (the listing's version already tells a change, so always read)."""
        with upstream_errors(file.name):
            return Fetched(await asyncio.to_thread(Path(file.location).read_bytes))
