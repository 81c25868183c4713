"""Pinning the SFTP server's host key: fetch it, show it, write it where ``Source.json`` says.

The register ships with ``knownHosts`` empty: the client refuses every connection to a server
whose key nobody has checked. ``gateway pin-host-key VALG`` connects (no login), shows the key
the server presents (type and SHA-256 fingerprint as ``ssh-keygen -l`` and ``ssh`` show them,
to compare with one obtained another way) and, once the operator accepts it, writes its
known_hosts line:

- into the file ``knownHosts`` names, when it names one (a single path; the line replaces any
  earlier line for the same host);
- else into ``knownHosts`` itself, in the register's ``Source.json`` (inline known_hosts
  lines; again replacing a line for the same host).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncssh

from gateway.model.errors import UpstreamTimeoutError, UpstreamUnavailableError
from gateway.sources.kinds import HostKey
from resolvers.valg_sftp.options import parse

__all__ = ["ValgHostKeys", "host_pattern", "known_hosts_file"]

_OPTION = "knownHosts"
_OLD_SPELLING = "known_hosts"


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names a server: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_file(value: str) -> Path | None:
    """The file a ``knownHosts`` value names, or None for inline lines (or nothing)."""
    text = value.strip()
    if not text or "\n" in text or " " in text:
        return None
    return Path(text)


def _replaced(text: str, pattern: str, line: str) -> str:
    """known_hosts ``text`` with ``line`` instead of any earlier line for ``pattern``."""
    kept = [
        existing
        for existing in text.splitlines()
        if existing.strip() and existing.split()[0] not in (pattern, f"{pattern},")
    ]
    return "\n".join([*kept, line]) + "\n"


class ValgHostKeys:
    """The ``valg-sftp`` kind's host-key hook (:class:`gateway.sources.kinds.HostKeys`)."""

    async def fetch(self, options: Mapping[str, Any]) -> HostKey:
        """The host key the server ``options`` names presents (the key exchange only)."""
        settings = parse(options)
        where = f"{settings.host}:{settings.port}"
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(settings.host, settings.port),
                settings.connect_timeout,
            )
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"VALG: no SSH answer from {where}") from exc
        except (OSError, asyncssh.Error) as exc:
            raise UpstreamUnavailableError(f"VALG: cannot reach {where}: {exc}") from exc
        if key is None:
            raise UpstreamUnavailableError(f"VALG: {where} presented no host key")
        algorithm, blob = key.export_public_key("openssh").decode("ascii").split()[:2]
        pattern = host_pattern(settings.host, settings.port)
        return HostKey(
            host=pattern,
            algorithm=algorithm,
            fingerprint=key.get_fingerprint("sha256"),
            line=f"{pattern} {algorithm} {blob}",
        )

    def pin(self, rc_folder: Path, key: HostKey) -> Path:
        """Write ``key``'s line where the register's ``Source.json`` says (see the module)."""
        source = rc_folder / "Source.json"
        document: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
        value = str(document.get(_OPTION, document.get(_OLD_SPELLING, "")) or "")
        file = known_hosts_file(value)
        if file is not None:
            current = file.read_text(encoding="utf-8") if file.is_file() else ""
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(_replaced(current, key.host, key.line), encoding="utf-8")
            return file
        document.pop(_OLD_SPELLING, None)
        document[_OPTION] = _replaced(value, key.host, key.line).rstrip("\n")
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        source.write_text(text, encoding="utf-8")
        return source
