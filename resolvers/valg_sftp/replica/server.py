"""A replica of data.valg.dk: an SFTP server serving the recorded VALG archives.

It speaks SFTP (asyncssh) on loopback with the real server's login (``Valg``/``Valg``) and a
host key of its own, and serves ``/data/<election roots>`` from ``data/valg/``:

- the FV2026 root with its full version history, signed by a key of the replica's own (only
  16 real FV2026 signatures were recorded) which it publishes as that root's
  ``public-key.pem``;
- the KV/RV2025 roots with their real signatures, the recovered real key as
  ``public-key.pem`` and the ``-DDMMYYYYHHmm`` suffix restored on every name;
- ``Snitfladebeskrivelser/`` in every root;
- the KV/RV2025 roots below ``/arkiv`` rather than ``/data``: the guide moves the roots of a
  discarded election to an archive folder on the same server (:attr:`ValgReplica.archived`;
  faults still name their files ``/data/<root>/…``).

**Replay clock** (the replica kit's :class:`ReplayClock`, used for its instant): the server
shows the tree as it stood at one instant
(only files released by then, and only the newest version of each entity, as the real server
keeps), or replays a window faster than real time. A newer version that is still incomplete
(zero bytes or half written) does not yet replace its predecessor, which stays listed, as a
server writing a new file before deleting the old one would. Default: the end of the recording;
``gateway demo --replay`` replays election night (see :func:`demo_replica`; the older
``VALG_REPLICA_REPLAY`` still works).

**Faults on demand** (the replica kit's :class:`Fault` vocabulary, matched against paths such
as ``/data/<root>/valgresultater/<file>``), as SFTP has them: ``truncate`` lists and serves the
newest version of matching files short (``keep=0``: zero bytes), as while it is being written;
``malformed`` gives it a signature that does not verify; ``slow`` delays the answer and every
read of an opened file; ``cut`` breaks the connection part-way through a file or a listing;
``drop`` aborts the connection; ``status`` answers an SFTP failure; ``timeout`` holds the
request. A listing that changes between two reads: the clock steps by ``clock.step`` on every
listing. Every request is logged (:attr:`ValgReplica.log`: ``list``, ``open``, ``stat``) so
tests can count downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import posixpath
import re
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.sources.kinds import DEMO_REPLAY_ENV
from resolvers.replica_kit.clock import Replay, ReplayClock
from resolvers.replica_kit.faults import Fault, Faults
from resolvers.replica_kit.log import Request, RequestLog
from resolvers.valg_sftp.replica.archive import (
    DATA_DIR,
    FV_ROOT,
    DataFile,
    ValgArchive,
    load_archive,
)

__all__ = [
    "Fault",
    "ReplayClock",
    "ValgReplica",
    "demo_replica",
    "election_night",
    "parse_replay",
    "replay_window",
    "start_replica",
]

logger = logging.getLogger(__name__)

USERNAME = "Valg"
PASSWORD = "Valg"
HOST_KEY_FILE = DATA_DIR / "replica-host-key"
FV_SIGNING_KEY_FILE = DATA_DIR / "replica-fv2026-signing-key.pem"
LIVE = "/data"
ARCHIVE = "/arkiv"
_DIR_MODE = stat.S_IFDIR | 0o555
_FILE_MODE = stat.S_IFREG | 0o444


# Faults answered when a request arrives; the others shape the newest version of a file.
_REQUEST_FAULTS = frozenset({"status", "slow", "timeout", "drop", "cut"})
_HOLD_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class _Node:
    """A directory entry; a file's content is produced on demand (signing is not free)."""

    is_dir: bool
    size: int = 0
    mtime: int = 0
    content: Callable[[], bytes] = field(default=lambda: b"", compare=False)
    fault: str | None = field(default=None, compare=False)
    """The kind of the fault that shapes this file (``truncate``, ``malformed``), if any."""


class _Signer:
    """Signs FV2026 files with the replica's key, lazily (RSA signing is not free)."""

    def __init__(self, pem: bytes) -> None:
        # The key is our own test key: skip the slow primality checks.
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the replica signing key must be RSA")
        self._key = key
        self._cache: dict[str, bytes] = {}
        self.size = key.key_size // 8
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, item: DataFile) -> bytes:
        """The detached PKCS#1 v1.5 / SHA-256 signature of a file's exact bytes."""
        signature = self._cache.get(item.path)
        if signature is None:
            signature = self._key.sign(item.data, padding.PKCS1v15(), hashes.SHA256())
            self._cache[item.path] = signature
        return signature


class _Tree:
    """The file tree the server shows at one instant, with faults applied."""

    def __init__(self, archive: ValgArchive, signer: _Signer, faults: Faults) -> None:
        self.archive = archive
        self.signer = signer
        self.faults = faults
        # Data files (paths below /data) the server no longer publishes: withdrawn by hand.
        self.withdrawn: set[str] = set()
        # directory -> the first instant anything below it is listed (None: always)
        self._first: dict[str, dt.datetime | None] = {}
        for directory in archive.directories():
            self._first[directory] = self._first_release(directory)

    def _first_release(self, directory: str) -> dt.datetime | None:
        prefix = f"{directory}/" if directory else ""
        if directory in self.archive.recovered_keys or any(
            path.startswith(prefix) for path in self.archive.static
        ):
            return None
        releases = [
            item.release or dt.datetime.min
            for path, item in self.archive.data.items()
            if path.startswith(prefix)
        ]
        return min(releases) if releases else dt.datetime.max

    def _standing(self, item: DataFile, newest: bool, kind: str) -> Fault | None:
        if not newest:
            return None
        return self.faults.peek(f"/data/{item.path}", kinds=(kind,))

    def served_bytes(self, item: DataFile, newest: bool) -> bytes:
        """The bytes a download of ``item`` returns (a fault may cut them)."""
        fault = self._standing(item, newest, "truncate")
        return item.data if fault is None else fault.kept(item.data)

    def signature(self, item: DataFile, newest: bool) -> bytes | None:
        """The ``.json.hash`` content for ``item`` (None: the server has none)."""
        if item.path.startswith(f"{FV_ROOT}/"):
            signature = self.signer.sign(item)
        elif item.signature is not None:
            signature = item.signature
        else:
            return None
        if self._standing(item, newest, "malformed") is not None:
            signature = bytes([signature[0] ^ 0xFF]) + signature[1:]
        return signature

    def _signature_size(self, item: DataFile) -> int | None:
        if item.path.startswith(f"{FV_ROOT}/"):
            return self.signer.size
        return None if item.signature is None else len(item.signature)

    def _mtime(self, item: DataFile) -> int:
        return int((item.release or self.archive.start).replace(tzinfo=dt.UTC).timestamp())

    def _data_nodes(self, item: DataFile, newest: bool) -> dict[str, _Node]:
        name = posixpath.basename(item.path)
        mtime = self._mtime(item)
        data = self.served_bytes(item, newest)
        short = "truncate" if len(data) != len(item.data) else None
        out = {name: _Node(False, len(data), mtime, lambda: data, short)}
        size = self._signature_size(item)
        if size is not None:
            wrong = "malformed" if self._standing(item, newest, "malformed") else None
            out[f"{name}.hash"] = _Node(
                False, size, mtime, lambda: self.signature(item, newest) or b"", wrong
            )
        return out

    def _is_listed_dir(self, directory: str, instant: dt.datetime) -> bool:
        first = self._first.get(directory, dt.datetime.max)
        return first is None or first <= instant

    def visible(self, directory: str, instant: dt.datetime) -> dict[str, _Node]:
        """The entries of ``directory`` (relative to ``/data``) at ``instant``."""
        out: dict[str, _Node] = {}
        for path in self._first:
            if path and posixpath.dirname(path) == directory and self._is_listed_dir(path, instant):
                out[posixpath.basename(path)] = _Node(is_dir=True)
        for path, data in self.archive.static.items():
            if posixpath.dirname(path) == directory:
                out[posixpath.basename(path)] = _static(data)
        if directory in self.archive.recovered_keys:
            out["public-key.pem"] = _static(self._public_key(directory))
        for versions in self.archive.series.get(directory, {}).values():
            for item, newest in self._listed(versions, instant):
                out.update(self._data_nodes(item, newest))
        return out

    def lookup(self, directory: str, name: str, instant: dt.datetime) -> _Node | None:
        """One entry of ``directory`` at ``instant`` (without listing the directory)."""
        path = f"{directory}/{name}" if directory else name
        if path in self._first:
            return _Node(is_dir=True) if self._is_listed_dir(path, instant) else None
        if path in self.archive.static:
            return _static(self.archive.static[path])
        if name == "public-key.pem" and directory in self.archive.recovered_keys:
            return _static(self._public_key(directory))
        item = self.archive.data.get(path.removesuffix(".hash"))
        if item is None:
            return None
        versions = self.archive.series[directory][item.series]
        for listed, newest in self._listed(versions, instant):
            if listed is item:
                return self._data_nodes(item, newest).get(name)
        return None

    def _public_key(self, root: str) -> bytes:
        return self.signer.public_pem if root == FV_ROOT else self.archive.recovered_keys[root]

    def _listed(
        self, versions: list[DataFile], instant: dt.datetime
    ) -> Iterable[tuple[DataFile, bool]]:
        released = [
            v
            for v in versions
            if (v.release is None or v.release <= instant) and v.path not in self.withdrawn
        ]
        newest = True
        for item in reversed(released):
            yield item, newest
            # A successor still being written (empty or cut short) has not replaced this
            # one yet: keep walking back until a complete version is listed.
            if item.data and len(self.served_bytes(item, newest)) == len(item.data):
                return
            newest = False


def _static(data: bytes) -> _Node:
    return _Node(False, len(data), 0, lambda: data)


class _ServerSession(asyncssh.SSHServer):
    """Password login ``Valg``/``Valg``; remembers connections so they can be dropped."""

    def __init__(self, replica: ValgReplica) -> None:
        self._replica = replica
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._replica.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._replica.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == (USERNAME, PASSWORD)


class _OpenFile:
    def __init__(
        self, data: bytes, mtime: int, fault: Fault | None, conn: asyncssh.SSHServerConnection
    ) -> None:
        self.data = data
        self.mtime = mtime
        self.delay = fault.delay if fault is not None and fault.kind == "slow" else 0.0
        # A cut file: the connection breaks once a read reaches this offset.
        self.cut = len(fault.kept(data)) if fault is not None and fault.kind == "cut" else None
        self.conn = conn


class _ValgSFTPServer(asyncssh.SFTPServer):
    """Read-only SFTP over the replica's tree; the login directory is ``/``."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], replica: ValgReplica) -> None:
        super().__init__(chan)
        self._replica = replica

    # -- paths -------------------------------------------------------------------------

    @staticmethod
    def _normal(path: bytes) -> str:
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise asyncssh.SFTPNoSuchFile("not a UTF-8 path") from exc
        return posixpath.normpath(posixpath.join("/", text))

    def _lookup(self, path: str) -> _Node:
        if path in ("/", LIVE, ARCHIVE):
            return _Node(is_dir=True)
        relative = self._replica.relative(path)
        if relative is None:
            raise asyncssh.SFTPNoSuchFile(f"{path}: no such file")
        directory, name = posixpath.split(relative)
        node = self._replica.lookup(directory, name)
        if node is None:
            raise asyncssh.SFTPNoSuchFile(f"{path}: no such file")
        return node

    def _attrs(self, node: _Node) -> asyncssh.SFTPAttrs:
        if node.is_dir:
            return asyncssh.SFTPAttrs(
                type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=_DIR_MODE, size=4096
            )
        return asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR,
            permissions=_FILE_MODE,
            size=node.size,
            mtime=node.mtime,
            atime=node.mtime,
        )

    async def _request(self, op: str, path: str) -> tuple[Request, Fault | None]:
        return await self._replica.request(op, path, self.connection)

    # -- read operations ---------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        return self._normal(path).encode()

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        normal = self._normal(path)
        await self._request("stat", normal)
        return self._attrs(self._lookup(normal))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self.stat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        normal = self._normal(path)
        request, fault = await self._request("list", normal)
        node = self._lookup(normal)
        if not node.is_dir:
            raise asyncssh.SFTPNoSuchFile(f"{normal}: not a directory")
        if normal == "/":
            entries: Mapping[str, _Node] = {"data": _Node(is_dir=True), "arkiv": _Node(is_dir=True)}
        elif normal in (LIVE, ARCHIVE):
            archived = normal == ARCHIVE
            entries = {
                name: entry
                for name, entry in self._replica.entries("").items()
                if (name in self._replica.archived) == archived
            }
            self._replica.clock.tick()
        else:
            entries = self._replica.entries(self._replica.relative(normal) or "")
            self._replica.clock.tick()
        request.size = len(entries)
        cut = len(entries) // 2 if fault is not None and fault.kind == "cut" else None
        for name in (".", ".."):
            yield asyncssh.SFTPName(name.encode(), attrs=self._attrs(_Node(is_dir=True)))
        for number, (name, entry) in enumerate(entries.items()):
            if number == cut:
                self.connection.abort()
                raise asyncssh.SFTPConnectionLost("connection broken mid-listing")
            yield asyncssh.SFTPName(name.encode(), attrs=self._attrs(entry))

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> _OpenFile:
        normal = self._normal(path)
        if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT):
            raise asyncssh.SFTPPermissionDenied("read-only server")
        request, fault = await self._request("open", normal)
        node = self._lookup(normal)
        if node.is_dir:
            raise asyncssh.SFTPFailure(f"{normal} is a directory")
        if node.fault is not None:
            # The download of a file a standing fault shapes uses one of its times.
            self._replica.faults.take(request, kinds=(node.fault,))
            request.fault = request.fault or node.fault
        content = node.content()
        request.size = len(content)
        return _OpenFile(content, node.mtime, fault, self.connection)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, _OpenFile)
        if file_obj.delay:
            await asyncio.sleep(file_obj.delay)
        end = offset + size
        if file_obj.cut is not None and end > file_obj.cut:
            if offset >= file_obj.cut:
                file_obj.conn.abort()
                raise asyncssh.SFTPConnectionLost("connection broken mid-file")
            end = file_obj.cut
        return file_obj.data[offset:end]

    def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        assert isinstance(file_obj, _OpenFile)
        return self._attrs(_Node(False, len(file_obj.data), file_obj.mtime))

    def close(self, file_obj: object) -> None:
        return None

    # -- everything else is refused ----------------------------------------------------

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        raise asyncssh.SFTPPermissionDenied("read-only server")

    def remove(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only server")

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only server")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only server")

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only server")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only server")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only server")


# The register the recorded archive in data/valg is of.
RECORDED_REGISTERS: tuple[str, ...] = ("VALG",)


class ValgReplica:
    """A running replica (a :class:`gateway.sources.kinds.DemoHandle`) and its controls."""

    def __init__(
        self,
        archive: ValgArchive,
        host_key: asyncssh.SSHKey,
        signer: _Signer,
        clock: ReplayClock | None = None,
    ) -> None:
        self.archive = archive
        self.host_key = host_key
        self.faults = Faults()
        """The faults to inject (matched against paths below ``/data``)."""
        self.clock = clock or ReplayClock(archive.end)
        """The instant the tree is shown at."""
        self.log = RequestLog()
        """Every request (``list``, ``open``, ``stat``)."""
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self._tree = _Tree(archive, signer, self.faults)
        self._signer = signer
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._stopping = asyncio.Event()
        self.host = "127.0.0.1"
        self.port = 0
        self.registers: tuple[str, ...] = RECORDED_REGISTERS
        """The registers served (``overrides`` names them)."""
        self.archived: frozenset[str] = frozenset(r for r in archive.roots if r != FV_ROOT)
        """The roots served below ``/arkiv`` instead of ``/data`` (the 2025 elections)."""

    # -- DemoHandle --------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"sftp://{USERNAME}:{PASSWORD}@{self.host}:{self.port}/data/"

    @property
    def known_hosts(self) -> str:
        """The known_hosts line that pins this replica's host key."""
        public = self.host_key.export_public_key().decode().strip()
        pattern = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{pattern} {public}"

    @property
    def overrides(self) -> Mapping[str, Mapping[str, Any]]:
        options = {
            "host": self.host,
            "port": self.port,
            "username": USERNAME,
            "password": PASSWORD,
            "knownHosts": self.known_hosts,
        }
        return {name: options for name in self.registers}

    async def stop(self) -> None:
        """Drop every connection, stop listening and release the port."""
        self._stopping.set()
        self.drop_connections()
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    # -- controls ----------------------------------------------------------------------

    def withdraw(self, path: str) -> None:
        """Stop publishing one data file version (``path`` below ``/data``), as a
        municipality withdrawing its data does; the version before it is listed again."""
        if path not in self.archive.data:
            raise KeyError(path)
        self._tree.withdrawn.add(path)

    def restore(self, path: str) -> None:
        """Publish a withdrawn file again."""
        self._tree.withdrawn.discard(path)

    def mirror(self, folder: Path, only: Callable[[str], bool] | None = None) -> int:
        """Write what a mirror of the server kept through the recording would hold: every
        version of every data file (``only``: those whose path it accepts) with its
        ``.json.hash``, each root's ``public-key.pem``, laid out as ``/data``; a file's time
        is its release. How many data files were written."""
        written = 0
        for path, item in sorted(self.archive.data.items()):
            if only is not None and not only(path):
                continue
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.data)
            stamp = self._tree._mtime(item)
            os.utime(target, (stamp, stamp))
            signature = self._tree.signature(item, newest=False)
            if signature is not None:
                hashed = target.with_name(f"{target.name}.hash")
                hashed.write_bytes(signature)
                os.utime(hashed, (stamp, stamp))
            written += 1
        for root, pem in self.public_keys.items():
            (folder / root).mkdir(parents=True, exist_ok=True)
            (folder / root / "public-key.pem").write_bytes(pem)
        return written

    @property
    def public_keys(self) -> dict[str, bytes]:
        """The ``public-key.pem`` each election root publishes."""
        return {
            root: self._signer.public_pem if root == FV_ROOT else pem
            for root, pem in self.archive.recovered_keys.items()
        }

    def relative(self, path: str) -> str | None:
        """``path`` in the tree's terms (``<root>/…``): ``/data/<root>/…`` for a live root,
        ``/arkiv/<root>/…`` for an archived one; None for anything else."""
        for top, archived in ((LIVE, False), (ARCHIVE, True)):
            if path.startswith(top + "/"):
                relative = path[len(top) + 1 :]
                if (relative.split("/", 1)[0] in self.archived) == archived:
                    return relative
        return None

    def entries(self, directory: str) -> dict[str, _Node]:
        """The entries of a directory below ``/data`` as shown now."""
        return self._tree.visible(directory, self.clock.now())

    def lookup(self, directory: str, name: str) -> _Node | None:
        """One entry of a directory below ``/data`` as shown now."""
        return self._tree.lookup(directory, name, self.clock.now())

    def listed_files(self, directory: str) -> list[str]:
        """Names of the data files (``*.json``) a listing of ``directory`` shows now."""
        return sorted(
            name
            for name, node in self.entries(directory).items()
            if not node.is_dir and name.endswith(".json")
        )

    def drop_connections(self) -> None:
        """Abort every open connection now."""
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()

    def downloads(self, suffix: str = ".json") -> list[str]:
        """Paths opened for reading so far whose name ends with ``suffix``."""
        return self.log.paths(method="open", suffix=suffix)

    async def request(
        self, op: str, path: str, conn: asyncssh.SSHServerConnection
    ) -> tuple[Request, Fault | None]:
        """Record a request and apply the faults answered on arrival; the fault returned
        (``slow``, ``cut``) is for the answer to apply."""
        request = self.log.record(Request(op, path))
        fault = self.faults.take(request, kinds=_REQUEST_FAULTS)
        if fault is None:
            request.status = 0
            return request, None
        request.fault = fault.kind
        if fault.kind == "drop":
            logger.info("replica: dropping the connection on %s %s", op, path)
            conn.abort()
            raise asyncssh.SFTPConnectionLost("connection dropped")
        if fault.kind == "status":
            request.status = asyncssh.FX_FAILURE
            raise asyncssh.SFTPFailure(f"fault injected: status {fault.status}")
        if fault.kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=_HOLD_SECONDS)
            conn.abort()
            raise asyncssh.SFTPConnectionLost("held until the server stopped")
        if fault.kind == "slow" and op != "open":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=fault.delay)
        request.status = 0
        return request, fault

    # -- lifecycle ---------------------------------------------------------------------

    async def listen(self, host: str, port: int) -> None:
        """Start accepting SFTP connections."""

        def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
            return _ValgSFTPServer(chan, self)

        self._stopping = asyncio.Event()
        self._acceptor = await asyncssh.listen(
            host,
            port,
            server_host_keys=[self.host_key],
            server_factory=lambda: _ServerSession(self),
            sftp_factory=sftp_factory,
            allow_scp=False,
        )
        self.host = host
        self.port = self._acceptor.get_port()


def _read_host_key(path: Path) -> asyncssh.SSHKey:
    return asyncssh.read_private_key(str(path))


async def start_replica(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    instant: dt.datetime | None = None,
    data_dir: Path = DATA_DIR,
) -> ValgReplica:
    """Load the archives (once per process) and serve them on ``host:port``."""
    archive = await asyncio.to_thread(load_archive, data_dir)
    host_key = _read_host_key(data_dir / HOST_KEY_FILE.name)
    signer = _Signer((data_dir / FV_SIGNING_KEY_FILE.name).read_bytes())
    replica = ValgReplica(archive, host_key, signer, ReplayClock(instant or archive.end))
    await replica.listen(host, port)
    return replica


REPLAY_ENV = "VALG_REPLICA_REPLAY"

# Election night starts an hour before the polls close (20:00 Danish time, 19:00 UTC in winter).
_NIGHT_STARTS = dt.time(18, 0)
_ELECTION_DAY = re.compile(r"-(\d\d)-(\d\d)-(\d{4})$")


def parse_replay(spec: str, end: dt.datetime) -> tuple[dt.datetime, dt.datetime, float]:
    """Read ``START[/END][@SPEED]`` (ISO 8601 UTC instants; END defaults to ``end``)."""
    replay = Replay.parse(spec, REPLAY_ENV)
    if replay.start is None:
        raise ValueError(f"{REPLAY_ENV}: expected START[/END][@SPEED], got {spec!r}")
    return replay.start, replay.end or end, replay.speed


def election_night(archive: ValgArchive) -> dt.datetime:
    """Where a replay of the newest election's night starts: 18:00 UTC on its election day
    (named by its root folder, ``…-DD-MM-YYYY``), within the recording."""
    days = [
        dt.date(int(m[3]), int(m[2]), int(m[1]))
        for m in map(_ELECTION_DAY.search, archive.roots)
        if m is not None
    ]
    if not days:
        return archive.start
    night = dt.datetime.combine(max(days), _NIGHT_STARTS)
    return min(max(night, archive.start), archive.end)


def replay_window(replay: Replay, archive: ValgArchive) -> tuple[dt.datetime, dt.datetime, float]:
    """The clock's window for ``replay``: election night to the recording's end unless told."""
    start = replay.start or election_night(archive)
    end = replay.end or archive.end
    if end < start:
        raise ValueError(f"--replay: the window must end after {start.isoformat()}Z")
    return start, end, replay.speed


async def demo_replica(registers: Mapping[str, Mapping[str, Any]] | None = None) -> ValgReplica:
    """The replica as ``gateway demo`` runs it: loopback, any free port.

    It shows the end of the recording, unless ``gateway demo --replay`` (the environment's
    ``DLS_DEMO_REPLAY``) asks for a replay: ``--replay`` alone replays the newest election's
    night from 18:00 UTC at 60x, ``--replay 120`` at 120x, and
    ``--replay 2026-03-24T18:00Z/2026-03-25T12:00Z@120`` a window of its own. The older
    ``VALG_REPLICA_REPLAY=START[/END][@SPEED]`` is read when ``--replay`` is not given.
    """
    replica = await start_replica()
    if registers:
        replica.registers = tuple(registers)
    try:
        demo = os.environ.get(DEMO_REPLAY_ENV)
        spec = os.environ.get(REPLAY_ENV)
        if demo is not None:
            replica.clock.replay(*replay_window(Replay.parse(demo), replica.archive))
        elif spec:
            replica.clock.replay(*parse_replay(spec, replica.archive.end))
    except ValueError:
        await replica.stop()
        raise
    return replica
