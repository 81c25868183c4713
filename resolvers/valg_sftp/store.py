"""Choosing and fetching the version of each VALG file to serve.

For one dataset folder of one election root, :meth:`ValgStore.select` lists the folder
(cached for a short TTL), orders each series of versions by its name stamp, downloads the
newest, verifies its detached signature against the root's ``public-key.pem`` and parses it.
Its identity (e.g. ``AfstemningsområdeDagiId``) and ``FrigivelsesTidspunktUTC`` come from the
content; when two series turn out to hold the same entity, the latest release wins.

A newest version that is empty, unsigned, fails its signature or cannot be parsed is not
served: the previous good version is (from the listing, or the last one served from this
series), with a ``VALG_FALLBACK`` notice, a log line and a counter. What a file turned out to
be is remembered by (name, size, signature size): a named file never changes, and a file
still being written changes size.

The election roots are the folders of the live folder (``root``, ``/data``) and those only in
the archive folder (``archive``, ``/arkiv``: "Når valg kasseres, vil valg rodmapperne blive
overført til en arkiv folder"); :meth:`ValgStore.path` puts a root's files below the folder
it was listed in.

The choice of every file of a folder (a query not narrowed to some entities) is kept with
the listing it was made from, notices included: while the folder lists the same entries (the
same listing, or one listed again alike), :meth:`ValgStore.select` answers it without
choosing again and repeats its notices; a listing that changes (a new version released, a
file gone) is chosen from afresh. The grouping of a listing into series is kept the same way.

Content is kept in a least-recently-used cache bounded by the files' byte size, so paging
through a whole country holds a bounded amount; evicted content is downloaded (and verified)
again when needed.

Verifying and parsing a file of at least :data:`OFFLOAD_BYTES`, and grouping a listing of at
least :data:`OFFLOAD_ENTRIES` entries into series, run in a worker thread so the event loop
keeps serving other requests. The worker only computes and returns; the store's caches and
memos are written on the loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.model.errors import UpstreamInvalidError
from gateway.sources import upstream_budget
from gateway.sources.cache import Cache
from resolvers.valg_sftp.client import RemoteEntry, SftpClient
from resolvers.valg_sftp.codec import (
    FileProblem,
    identity_of,
    load_public_key,
    parse_document,
    released_at,
    series_and_stamp,
    verify_signature,
    withdrawn,
)

__all__ = ["OFFLOAD_BYTES", "OFFLOAD_ENTRIES", "DocSpec", "FileMeta", "Hinter", "ValgStore"]

# A file at least this large is verified and parsed in a worker thread; smaller ones inline
# (a thread hop costs more than the work).
OFFLOAD_BYTES = 64 * 1024
# A listing of at least this many entries is grouped into series in a worker thread.
OFFLOAD_ENTRIES = 2_000

logger = logging.getLogger("resolvers.valg_sftp.adapter")

# Versions whose name stamps lie this close are compared by their release time: stamps are
# truncated to the minute and were seen to differ from the content by up to a minute.
_TIE = dt.timedelta(minutes=2)

# (missing identities, unidentified series) -> candidate series per identity, or None
Hinter = Callable[[set[str], list[str]], Awaitable[dict[str, set[str]] | None]]


@dataclass(frozen=True, slots=True)
class DocSpec:
    """A dataset as Source.json describes it (``datamodel.documents[]``)."""

    name: str
    folder: str
    file: str | None
    identity: list[str]
    hint: str | None
    absent: str | None = None
    """What to tell when no root asked publishes the dataset (e.g. a referendum's question)."""

    @classmethod
    def from_options(cls, spec: dict[str, Any]) -> DocSpec:
        """Read one ``documents`` entry."""
        return cls(
            name=str(spec["name"]),
            folder=str(spec["folder"]),
            file=spec.get("file"),
            identity=[str(f) for f in spec.get("identity", ())],
            hint=spec.get("hint"),
            absent=spec.get("absent"),
        )


@dataclass(frozen=True, slots=True)
class FileMeta:
    """A verified file: where it is, what it holds, when it was released."""

    root: str
    area: str
    name: str
    size: int
    identity: str
    released: dt.datetime | None

    @property
    def path(self) -> str:
        """Relative to the server's data folder."""
        return f"{self.root}/{self.area}/{self.name}"


# A folder's data files by series, each newest stamp first: (stamp, name).
_Series = dict[str, list[tuple[dt.datetime | None, str]]]


@dataclass(frozen=True, slots=True)
class _Kept:
    """The files chosen from one listing of a folder, and the notices choosing them gave."""

    entries: dict[str, RemoteEntry]
    served: list[FileMeta]
    notices: list[dict[str, Any]]


def _same(kept: dict[str, RemoteEntry], entries: dict[str, RemoteEntry]) -> bool:
    """Whether a listing is the one a result was kept for (the same, or listed again alike)."""
    return kept is entries or kept == entries


@dataclass(frozen=True, slots=True)
class _Choice:
    """The version chosen in one series, and why its newest was not (if it was not)."""

    series: str
    meta: FileMeta | None
    problem: tuple[str, str] | None


class _Contents:
    """Parsed documents by path, least recently used first out, bounded by source bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def get(self, path: str) -> Any | None:
        """The parsed document, or None when it is not (or no longer) held."""
        item = self._items.get(path)
        if item is None:
            return None
        self._items.move_to_end(path)
        return item[0]

    def forget(self, path: str) -> None:
        """Hold the document of ``path`` no longer."""
        item = self._items.pop(path, None)
        if item is not None:
            self.bytes -= item[1]

    def put(self, path: str, doc: Any, cost: int) -> None:
        """Hold a document; evict the least recently used beyond the byte bound."""
        if cost > self.max_bytes or path in self._items:
            return
        self._items[path] = (doc, cost)
        self.bytes += cost
        while self.bytes > self.max_bytes:
            _, (_, old) = self._items.popitem(last=False)
            self.bytes -= old


class ValgStore:
    """Listings, verification, version choice and content for one VALG server."""

    def __init__(
        self,
        sftp: SftpClient,
        cache: Cache,
        *,
        base: str = "/data",
        archive: str = "",
        listing_ttl: float = 15.0,
        content_bytes: int = 128 * 2**20,
        max_file_bytes: int = 64 * 2**20,
        namespace: str = "",
        counted: bool = True,
    ) -> None:
        self.sftp = sftp
        # Whether downloads are upstream requests of the request's budget (not when the
        # client is the history store: reading it asks nothing of the upstream).
        self.counted = counted
        # Told of every file version read and verified, and of each root's key.
        self.on_version: Callable[[str, bytes, bytes | None, Any], None] | None = None
        # Told of the data files (paths below the base) a listing no longer shows, and of
        # those among them withdrawn: no version of their series is listed any more.
        self.on_gone: Callable[[list[str], list[str]], None] | None = None
        self._names: dict[str, frozenset[str]] = {}
        self.namespace = namespace
        self.cache = cache
        self.base = base.rstrip("/")
        self.archive = archive.rstrip("/")
        # The roots last seen only in the archive folder (not also live).
        self._archived: frozenset[str] = frozenset()
        self.listing_ttl = listing_ttl
        self.contents = _Contents(content_bytes)
        self.max_file_bytes = max_file_bytes
        self.fallbacks: Counter[str] = Counter()
        # The register's stale windows for listings (stale-if-error, stale-while-revalidate).
        self.cache_windows: dict[str, float] = {}
        # Told of every file that is not served, with the reason (for metrics).
        self.on_fallback: Callable[[str], None] | None = None
        self._generation: Counter[str] = Counter()
        self._known: dict[tuple[str, int, int], FileMeta | FileProblem] = {}
        self._inflight: dict[tuple[str, int, int], asyncio.Future[FileMeta]] = {}
        self._series_identity: dict[tuple[str, str], str] = {}
        self._last_good: dict[tuple[str, str], FileMeta] = {}
        self._keys: dict[tuple[str, int], rsa.RSAPublicKey] = {}
        self._logged: set[str] = set()
        # Per folder: the listing a kept result was computed from, and the result.
        self._grouped: dict[tuple[str, str | None], tuple[dict[str, RemoteEntry], _Series]] = {}
        self._kept: dict[tuple[str, str], _Kept] = {}

    # -- listings ----------------------------------------------------------------------

    def path(self, relative: str) -> str:
        """The server path of ``relative`` (``root/…``, "" for the live folder): below the
        archive folder for a root that was moved there."""
        root = relative.split("/", 1)[0]
        folder = self.archive if root and root in self._archived else self.base
        return f"{folder}/{relative}" if relative else folder

    def archived(self, root: str) -> bool:
        """Whether ``root`` is served from the archive folder (its election was discarded)."""
        return root in self._archived

    async def listing(self, directory: str, *, archive: bool = False) -> dict[str, RemoteEntry]:
        """The entries of ``base/directory`` (cached for the listing TTL); ``archive``: of the
        archive folder itself."""
        where = self.archive if archive else self.path(directory)
        key = f"valg:ls:{self.namespace}{self._generation[directory]}:{where}"

        async def fetch() -> dict[str, RemoteEntry] | None:
            try:
                entries = await self.sftp.listdir(where)
            except FileProblem as exc:
                if exc.reason != "gone":
                    raise
                # A folder that does not exist (yet) is an answer too: cache it like a listing.
                return None
            # A listed name is joined to its folder's path: it must not leave the folder.
            listed = {e.name: e for e in entries if _safe_name(e.name)}
            self._seen(directory, archive, listed)
            return listed

        result: dict[str, RemoteEntry] | None = await self.cache.get_or_fetch(
            key, fetch, self.listing_ttl, **self.cache_windows
        )
        if result is None:
            raise FileProblem("gone", where)
        return result

    def _seen(self, directory: str, archive: bool, listed: dict[str, RemoteEntry]) -> None:
        """Tell ``on_gone`` of the data files the previous listing of a folder showed and
        this one does not."""
        if self.on_gone is None or archive or not directory:
            return
        names = frozenset(n for n, e in listed.items() if not e.is_dir and n.endswith(".json"))
        before = self._names.get(directory)
        self._names[directory] = names
        if before is not None and before - names:
            gone = sorted(before - names)
            paths = [f"{directory}/{n}" for n in gone]
            # Read again if listed again (a withdrawn file re-released): it is recorded anew.
            for key in [k for k in self._known if k[0] in paths]:
                del self._known[key]
            for path in paths:
                self.contents.forget(path)
            self.on_gone(paths, [f"{directory}/{n}" for n in withdrawn(gone, names)])

    def invalidate(self, directory: str) -> None:
        """Forget a cached listing (it was seen to be stale)."""
        self._generation[directory] += 1

    async def roots(self) -> list[str]:
        """The election root folders: the live ones, then those only in the archive folder
        ("Når valg kasseres, vil valg rodmapperne blive overført til en arkiv folder"). A root
        listed in both, while it is being moved, is served from the live folder."""
        live = {e.name for e in (await self.listing("")).values() if e.is_dir}
        archived: set[str] = set()
        if self.archive and self.archive != self.base:
            try:
                entries = await self.listing("", archive=True)
            except FileProblem as exc:
                if exc.reason != "gone":
                    raise
                entries = {}  # no archive folder (yet)
            archived = {e.name for e in entries.values() if e.is_dir} - live
        self._archived = frozenset(archived)
        return sorted(live | archived)

    async def public_key(self, root: str) -> rsa.RSAPublicKey:
        """The root's ``public-key.pem`` (downloaded again only when its size changes)."""
        entry = (await self.listing(root)).get("public-key.pem")
        if entry is None:
            raise UpstreamInvalidError(f"VALG: {root} publishes no public-key.pem")
        cached = self._keys.get((root, entry.size))
        if cached is None:
            try:
                pem = await self.sftp.read(self.path(f"{root}/public-key.pem"))
            except FileProblem as exc:
                self.invalidate(root)
                raise UpstreamInvalidError(f"VALG: {root}/public-key.pem vanished") from exc
            cached = load_public_key(pem)
            self._keys[(root, entry.size)] = cached
            if self.on_version is not None:
                self.on_version(f"{root}/public-key.pem", pem, None, None)
        return cached

    # -- selection ---------------------------------------------------------------------

    async def select(
        self,
        root: str,
        area: str,
        spec: DocSpec,
        wanted: set[str] | None,
        hinter: Hinter | None,
        notices: list[dict[str, Any]],
    ) -> list[FileMeta]:
        """The file to serve for each entity of ``root/area`` (only ``wanted`` identities)."""
        for attempt in (1, 2):
            try:
                return await self._select(root, area, spec, wanted, hinter, notices)
            except FileProblem as problem:
                if problem.reason != "gone" or attempt == 2:
                    raise UpstreamInvalidError(f"VALG: {root}/{area} keeps changing") from problem
                # A file vanished between listing and download: the listing is stale.
                self.invalidate(f"{root}/{area}")
        raise AssertionError("unreachable")

    async def _select(
        self,
        root: str,
        area: str,
        spec: DocSpec,
        wanted: set[str] | None,
        hinter: Hinter | None,
        notices: list[dict[str, Any]],
    ) -> list[FileMeta]:
        directory = f"{root}/{area}"
        try:
            entries = await self.listing(directory)
        except FileProblem:
            return []  # the dataset has not been published in this root (yet)
        if spec.file is not None:
            wanted = None  # a geografi file holds every element; rows are filtered later
        kept = self._kept.get((directory, spec.name)) if wanted is None else None
        if kept is not None and _same(kept.entries, entries):
            # The folder lists what it listed when every file was chosen: so is the choice.
            if kept.entries is not entries:
                self._kept[(directory, spec.name)] = _Kept(entries, kept.served, kept.notices)
            for notice in kept.notices:
                if notice not in notices:
                    notices.append(notice)
            return kept.served
        series = await self._grouped_series(directory, entries, spec.file)
        if wanted is None:
            mine: list[dict[str, Any]] = []
            served = await self._choose_every(root, area, spec, entries, series, mine)
            self._kept[(directory, spec.name)] = _Kept(entries, served, mine)
            for notice in mine:
                if notice not in notices:
                    notices.append(notice)
            return served
        chosen, absent, claims = await self._candidates(directory, series, wanted, hinter)
        choices = await self._choose_all(root, area, spec, entries, series, chosen)
        if wanted is not None:
            # A candidate with no verifiable version at all still answers for its identity:
            # reading every other series would not make it verifiable.
            failed = {claims.get(c.series) for c in choices if c.meta is None and c.problem}
            found = {c.meta.identity for c in choices if c.meta is not None}
            missing = wanted - absent - found - failed
            taken = set(chosen)
            rest = [
                s for s in series if s not in taken and (directory, s) not in self._series_identity
            ]
            if missing and rest:
                # The name hints did not find everything: read the unidentified rest once.
                choices += await self._choose_all(root, area, spec, entries, series, rest)
        served = _newest_per_identity([c.meta for c in choices if c.meta is not None], wanted)
        self._report_choices(directory, choices, served, wanted, set(chosen), notices)
        return served

    async def _choose_every(
        self,
        root: str,
        area: str,
        spec: DocSpec,
        entries: dict[str, RemoteEntry],
        series: _Series,
        notices: list[dict[str, Any]],
    ) -> list[FileMeta]:
        """The file to serve for every entity of ``root/area``."""
        directory = f"{root}/{area}"
        choices = await self._choose_all(root, area, spec, entries, series, series)
        served = _newest_per_identity([c.meta for c in choices if c.meta is not None], None)
        self._report_choices(directory, choices, served, None, set(series), notices)
        return served

    async def _grouped_series(
        self, directory: str, entries: dict[str, RemoteEntry], file: str | None
    ) -> _Series:
        """The listing's data files grouped into series (kept while the listing is)."""
        kept = self._grouped.get((directory, file))
        if kept is not None and _same(kept[0], entries):
            self._grouped[(directory, file)] = (entries, kept[1])
            return kept[1]
        if len(entries) >= OFFLOAD_ENTRIES:
            series = await asyncio.to_thread(_series, entries, file)
        else:
            series = _series(entries, file)
        self._grouped[(directory, file)] = (entries, series)
        return series

    def _report_choices(
        self,
        directory: str,
        choices: list[_Choice],
        served: list[FileMeta],
        wanted: set[str] | None,
        first: set[str],
        notices: list[dict[str, Any]],
    ) -> None:
        for choice in choices:
            if wanted is None:
                relevant = True
            elif choice.meta is not None:
                relevant = choice.meta in served
            else:
                # Nothing verifiable to tell its identity: report it if it was a candidate.
                relevant = choice.series in first
            if choice.problem is not None and relevant:
                self._report(directory, choice.problem, choice.meta, notices)

    async def _candidates(
        self,
        directory: str,
        series: dict[str, list[tuple[dt.datetime | None, str]]],
        wanted: set[str] | None,
        hinter: Hinter | None,
    ) -> tuple[list[str], set[str], dict[str, str]]:
        """Series to read for ``wanted``, identities known not to exist here, and which
        identity each series is expected to hold (learned or hinted)."""
        if wanted is None:
            return list(series), set(), {}
        known = {s: self._series_identity.get((directory, s)) for s in series}
        claims = {s: identity for s, identity in known.items() if identity in wanted}
        missing = wanted - set(claims.values())
        unknown = [s for s, identity in known.items() if identity is None]
        absent: set[str] = set()
        chosen = set(claims)
        if missing and unknown:
            hinted = await hinter(missing, unknown) if hinter is not None else None
            if hinted is None:
                chosen.update(unknown)
            else:
                for identity in missing:
                    candidates = hinted.get(identity)
                    if candidates is not None and not candidates:
                        absent.add(identity)
                    for candidate in candidates or ():
                        claims[candidate] = identity
                        chosen.add(candidate)
        return sorted(chosen), absent, claims

    async def _choose_all(
        self,
        root: str,
        area: str,
        spec: DocSpec,
        entries: dict[str, RemoteEntry],
        series: dict[str, list[tuple[dt.datetime | None, str]]],
        chosen: Iterable[str],
    ) -> list[_Choice]:
        tasks = [self._choose(root, area, spec, entries, name, series[name]) for name in chosen]
        return list(await asyncio.gather(*tasks))

    async def _choose(
        self,
        root: str,
        area: str,
        spec: DocSpec,
        entries: dict[str, RemoteEntry],
        series: str,
        versions: list[tuple[dt.datetime | None, str]],
    ) -> _Choice:
        directory = f"{root}/{area}"
        problems: list[tuple[str, str]] = []
        chosen: FileMeta | None = None
        chosen_at = 0
        for index, (_, name) in enumerate(versions):
            try:
                chosen = await self._meta(root, area, spec, entries, name)
            except FileProblem as problem:
                if problem.reason == "gone":
                    raise
                problems.append((name, problem.reason))
                continue
            chosen_at = index
            break
        if chosen is not None:
            chosen = await self._break_ties(root, area, spec, entries, versions, chosen_at, chosen)
            self._series_identity[(directory, series)] = chosen.identity
            self._last_good[(directory, series)] = chosen
        else:
            chosen = self._last_good.get((directory, series))
        newest_failed = problems[0] if problems and problems[0][0] == versions[0][1] else None
        return _Choice(series, chosen, newest_failed)

    async def _break_ties(
        self,
        root: str,
        area: str,
        spec: DocSpec,
        entries: dict[str, RemoteEntry],
        versions: list[tuple[dt.datetime | None, str]],
        index: int,
        chosen: FileMeta,
    ) -> FileMeta:
        stamp = versions[index][0]
        if stamp is None:
            return chosen
        for other_stamp, name in versions[index + 1 :]:
            if other_stamp is None or stamp - other_stamp > _TIE:
                break
            try:
                other = await self._meta(root, area, spec, entries, name)
            except FileProblem:
                continue
            if (other.released or dt.datetime.min.replace(tzinfo=dt.UTC)) > (
                chosen.released or dt.datetime.min.replace(tzinfo=dt.UTC)
            ):
                chosen = other
        return chosen

    def _report(
        self,
        directory: str,
        problem: tuple[str, str],
        served: FileMeta | None,
        notices: list[dict[str, Any]],
    ) -> None:
        name, reason = problem
        file = f"{directory}/{name}"
        notice = {
            "code": "VALG_FALLBACK",
            "file": file,
            "reason": reason,
            "served": served.path if served is not None else None,
        }
        if notice in notices:
            return
        notices.append(notice)
        if file in self._logged:
            return
        # Log and count each failing file once, however often it is asked for.
        self._logged.add(file)
        self.fallbacks[reason] += 1
        if self.on_fallback is not None:
            self.on_fallback(reason)
        logger.warning(
            "VALG: not serving %s/%s (%s); serving %s instead",
            directory,
            name,
            reason,
            notice["served"] or "nothing",
        )

    # -- files -------------------------------------------------------------------------

    async def _meta(
        self, root: str, area: str, spec: DocSpec, entries: dict[str, RemoteEntry], name: str
    ) -> FileMeta:
        entry = entries[name]
        if entry.size > self.max_file_bytes:
            raise FileProblem("oversized", f"{name}: {entry.size} bytes")
        signature = entries.get(f"{name}.hash")
        key = (f"{root}/{area}/{name}", entry.size, signature.size if signature else -1)
        known = self._known.get(key)
        if isinstance(known, FileMeta):
            return known
        if isinstance(known, FileProblem):
            raise FileProblem(known.reason, str(known))
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[FileMeta] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            meta = await self._fetch_meta(root, area, spec, name, entry.size, signature is not None)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if isinstance(exc, FileProblem) and exc.reason != "gone":
                self._known[key] = exc
            future.set_exception(exc)
            # Mark the exception retrieved when nobody else was waiting.
            future.exception()
            raise
        finally:
            del self._inflight[key]
        self._known[key] = meta
        future.set_result(meta)
        return meta

    async def _fetch_meta(
        self, root: str, area: str, spec: DocSpec, name: str, size: int, signed: bool
    ) -> FileMeta:
        path = f"{root}/{area}/{name}"
        doc, data = await self._download(root, path, signed)
        if spec.file is not None or not isinstance(doc, dict):
            identity = spec.name
        else:
            identity = identity_of(doc, spec.identity) or f"~{series_and_stamp(name)[0]}"
        meta = FileMeta(root, area, name, size, identity, released_at(doc))
        self.contents.put(path, doc, len(data))
        return meta

    async def _signature(self, path: str) -> bytes:
        with upstream_budget.uncounted():
            return await self.sftp.read(self.path(f"{path}.hash"))

    async def _download(self, root: str, path: str, signed: bool) -> tuple[Any, bytes]:
        if not signed:
            raise FileProblem("unsigned", f"{path} has no .json.hash")
        key = await self.public_key(root)
        # A file and its detached signature are one download of the budget.
        if self.counted:
            upstream_budget.spend(1, f"VALG {path}")
        data, signature = await asyncio.gather(
            self.sftp.read(self.path(path)), self._signature(path)
        )
        if len(data) >= OFFLOAD_BYTES:
            doc = await asyncio.to_thread(_verified, key, path, data, signature)
        else:
            doc = _verified(key, path, data, signature)
        if self.on_version is not None:
            self.on_version(path, data, signature, doc)
        return doc, data

    async def content(self, meta: FileMeta) -> Any:
        """The parsed, verified content of a selected file (downloaded again if evicted)."""
        doc = self.contents.get(meta.path)
        if doc is None:
            doc, data = await self._download(meta.root, meta.path, True)
            self.contents.put(meta.path, doc, len(data))
        return doc


def _verified(key: rsa.RSAPublicKey, path: str, data: bytes, signature: bytes) -> Any:
    """The parsed content of ``data`` once ``signature`` verifies; raises FileProblem."""
    if not data:
        raise FileProblem("empty", path)
    if not verify_signature(key, data, signature):
        raise FileProblem("signature", path)
    return parse_document(data)


def _safe_name(name: str) -> bool:
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\x00")


def _series(entries: dict[str, RemoteEntry], file: str | None) -> _Series:
    """Data files grouped into series, each newest stamp first."""
    out: _Series = {}
    for name, entry in entries.items():
        if entry.is_dir or not name.endswith(".json"):
            continue
        if file is not None and not (name.startswith(f"{file}-") or name == f"{file}.json"):
            continue
        label, stamp = series_and_stamp(name)
        out.setdefault(label, []).append((stamp, name))
    for versions in out.values():
        versions.sort(key=lambda v: (v[0] or dt.datetime.min, v[1]), reverse=True)
    return out


def _newest_per_identity(found: list[FileMeta], wanted: set[str] | None) -> list[FileMeta]:
    best: dict[str, FileMeta] = {}
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    for meta in found:
        if wanted is not None and meta.identity not in wanted:
            continue
        old = best.get(meta.identity)
        if old is None or (meta.released or floor, meta.name) > (old.released or floor, old.name):
            best[meta.identity] = meta
    return [best[k] for k in sorted(best)]
