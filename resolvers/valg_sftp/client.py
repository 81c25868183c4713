"""One reused SFTP connection to data.valg.dk, with pinned host key and bounded downloads.

Foreign errors are translated here, at the boundary: a refused login, a wrong host key or a
dropped connection become :class:`gateway.model.errors.UpstreamUnavailableError` (after one
reconnect), a slow server :class:`gateway.model.errors.UpstreamTimeoutError`, and a file deleted
between listing and download :class:`resolvers.valg_sftp.codec.FileProblem` ``gone``.

Every listing and download attempt is recorded through ``record`` (the source's
:meth:`gateway.sources.port.Source.record`: requests by outcome, bytes, latency per register),
like the HTTP kinds' requests; SFTP has no headers, so the id of the gateway request that caused
an upstream call is in the log lines about it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from gateway.model.errors import UpstreamTimeoutError, UpstreamUnavailableError
from gateway.sources.guard import Guard
from gateway.sources.metrics import REQUEST_ID
from resolvers.valg_sftp.codec import FileProblem
from resolvers.valg_sftp.options import ValgOptions

__all__ = ["RemoteEntry", "SftpClient", "SftpStats"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DROPPED = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    asyncssh.sftp.SFTPConnectionLost,
    ConnectionError,
    BrokenPipeError,
    EOFError,
)


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """A directory entry: name, size in bytes, and whether it is a directory."""

    name: str
    size: int
    is_dir: bool


@dataclass(slots=True)
class SftpStats:
    """What the client did, for tests, logs and benchmarks."""

    connects: int = 0
    listings: int = 0
    downloads: int = 0
    bytes: int = 0


class SftpClient:
    """A lazily opened, shared SFTP session; reconnects once when the connection drops."""

    def __init__(
        self,
        settings: ValgOptions,
        guard: Guard | None = None,
        record: Callable[[float, int, str], None] | None = None,
        register: str = "VALG",
    ) -> None:
        self.register = register
        self.guard = guard
        self.record = record
        self.host = settings.host
        self.port = settings.port
        self.username = settings.username
        self.password = settings.password
        self.known_hosts = settings.known_hosts
        self.connect_timeout = settings.connect_timeout
        self.read_timeout = settings.read_timeout
        self.encryption_algs = list(settings.encryption_algs)
        self._lock = asyncio.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self.stats = SftpStats()

    def _unpinned(self) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"VALG: no pinned SFTP host key for {self.host}; run `gateway pin-host-key "
            f"{self.register}` to fetch it, check its fingerprint and pin it (knownHosts in "
            "the register's Source.json)"
        )

    def _pinned(self) -> Any:
        text = str(self.known_hosts).strip()
        if not text:
            raise self._unpinned()
        if "\n" not in text and " " not in text and Path(text).is_file():
            if not Path(text).read_text(encoding="utf-8", errors="replace").strip():
                raise self._unpinned()
            return text
        try:
            return asyncssh.import_known_hosts(text)
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise UpstreamUnavailableError(f"VALG: known_hosts cannot be read: {exc}") from exc

    async def _session(self) -> asyncssh.SFTPClient:
        async with self._lock:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            await self._drop()
            known_hosts = self._pinned()
            try:
                conn = await asyncio.wait_for(
                    asyncssh.connect(
                        self.host,
                        self.port,
                        username=self.username,
                        password=self.password,
                        known_hosts=known_hosts,
                        client_keys=None,
                        agent_path=None,
                        preferred_auth="password",
                        encryption_algs=self.encryption_algs,
                        compression_algs=None,
                    ),
                    self.connect_timeout,
                )
                sftp = await conn.start_sftp_client()
            except TimeoutError as exc:
                raise UpstreamTimeoutError(f"VALG: no SFTP connection to {self.host}") from exc
            except asyncssh.HostKeyNotVerifiable as exc:
                raise UpstreamUnavailableError(
                    f"VALG: the SFTP host key of {self.host} does not match the pinned one; "
                    f"if the server's key was changed, check the new one with `gateway "
                    f"pin-host-key {self.register}`"
                ) from exc
            except asyncssh.PermissionDenied as exc:
                raise UpstreamUnavailableError(f"VALG: SFTP login refused by {self.host}") from exc
            except (*_DROPPED, OSError, asyncssh.Error) as exc:
                raise UpstreamUnavailableError(
                    f"VALG: cannot connect to {self.host}: {exc}"
                ) from exc
            self._conn, self._sftp = conn, sftp
            self.stats.connects += 1
            return sftp

    async def _drop(self) -> None:
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (TimeoutError, *_DROPPED, OSError):
                logger.debug("VALG: connection did not close cleanly")

    async def _run(self, what: str, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        if self.guard is None:
            return await self._attempt(what, op)
        # The register's guard: retries with backoff, the circuit breaker, politeness.
        return await self.guard.run(lambda: self._attempt(what, op))

    async def _attempt(self, what: str, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome, size = "unavailable", 0
        try:
            result = await self._attempt_once(what, op)
        except UpstreamTimeoutError:
            outcome = "timeout"
            raise
        except FileProblem:
            outcome = "not_found"
            raise
        else:
            outcome = "ok"
            size = len(result) if isinstance(result, bytes) else 0
            return result
        finally:
            if self.record is not None:
                self.record(time.perf_counter() - started, size, outcome)

    async def _attempt_once(
        self, what: str, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]
    ) -> T:
        for attempt in (1, 2):
            sftp = await self._session()
            try:
                return await asyncio.wait_for(op(sftp), self.read_timeout)
            except asyncssh.SFTPNoSuchFile as exc:
                raise FileProblem("gone", what) from exc
            except TimeoutError as exc:
                await self._reset()
                logger.info("VALG: %s timed out (request %s)", what, REQUEST_ID.get())
                raise UpstreamTimeoutError(f"VALG: {what} timed out") from exc
            except _DROPPED as exc:
                await self._reset()
                if attempt == 2:
                    raise UpstreamUnavailableError(f"VALG: connection lost during {what}") from exc
                logger.info(
                    "VALG: connection lost during %s; reconnecting (request %s)",
                    what,
                    REQUEST_ID.get(),
                )
            except asyncssh.SFTPError as exc:
                raise UpstreamUnavailableError(f"VALG: {what} failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def _reset(self) -> None:
        async with self._lock:
            await self._drop()

    async def listdir(self, path: str) -> list[RemoteEntry]:
        """The entries of a remote directory (without ``.`` and ``..``)."""

        async def op(sftp: asyncssh.SFTPClient) -> list[RemoteEntry]:
            names = await sftp.readdir(path)
            out = []
            for item in names:
                name = item.filename if isinstance(item.filename, str) else item.filename.decode()
                if name in (".", ".."):
                    continue
                is_dir = item.attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
                out.append(RemoteEntry(name, int(item.attrs.size or 0), is_dir))
            return out

        entries = await self._run(f"listing {path}", op)
        self.stats.listings += 1
        return entries

    async def read(self, path: str) -> bytes:
        """The whole content of a remote file (how many at once: the guard's concurrency)."""

        async def op(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(path, "rb") as handle:
                data = await handle.read()
            return data if isinstance(data, bytes) else data.encode()

        data = await self._run(f"download of {path}", op)
        self.stats.downloads += 1
        self.stats.bytes += len(data)
        return data

    async def aclose(self) -> None:
        """Close the connection."""
        await self._reset()
