"""``gateway pin-host-key VALG`` against the SFTP replica: an unpinned register refuses to
connect and names the command; the command shows the key the server presents and pins it
where ``Source.json`` says; the register then connects.

The expected fingerprint is computed from the replica's key file with ``cryptography`` and
``hashlib`` (as OpenSSH computes it), not with the SSH library under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.cli import main
from gateway.model.datamodel import Register
from gateway.model.errors import UpstreamUnavailableError
from gateway.model.query import Query
from gateway.sources.cache import Cache
from gateway.sources.port import Services
from resolvers.valg_sftp.adapter import ValgSource
from resolvers.valg_sftp.replica.server import HOST_KEY_FILE, ValgReplica
from tests.support import REGISTERS

pytestmark = pytest.mark.asyncio


def _expected_key() -> tuple[str, str, str]:
    """(type, fingerprint, base64 blob) of the replica's host key, as OpenSSH shows them."""
    private = serialization.load_ssh_private_key(HOST_KEY_FILE.read_bytes(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    algorithm, blob = public.decode("ascii").split()[:2]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return algorithm, "SHA256:" + base64.b64encode(digest).decode().rstrip("="), blob


def _registers(tmp_path: Path, replica: ValgReplica, known_hosts: str) -> Path:
    """A registers folder with a copy of VALG pointed at the replica (and FT for its join)."""
    folder = tmp_path / "registers"
    shutil.copytree(REGISTERS / "VALG", folder / "VALG")
    (folder / "FT").symlink_to(REGISTERS / "FT")
    path = _source_path(folder)
    document = json.loads(path.read_text(encoding="utf-8"))
    document.update(host=replica.host, port=replica.port, knownHosts=known_hosts)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder


def _source_path(folder: Path) -> Path:
    return folder / "VALG" / "rc00002" / "Source.json"


async def _elections(register: Register, options: dict[str, Any]) -> list[str]:
    """The election roots the register's adapter lists with ``options``."""
    cache = Cache()
    adapter = ValgSource(register, options, Services(cache))
    try:
        page = await adapter.fetch(Query(register.datamodel.entities["Valg"]))
        return sorted(str(row["Valgmappe"]) for row in page.rows)
    finally:
        await adapter.aclose()
        await cache.close()


async def _pin(*argv: str) -> int:
    # The command runs its own event loop; the replica serves from this one meanwhile.
    code: int = await asyncio.to_thread(main, ["pin-host-key", *argv])
    return code


async def test_unpinned_register_names_the_command(
    valg_replica: ValgReplica, register: Register, source_json: dict[str, Any]
) -> None:
    options = {**source_json, **valg_replica.overrides["VALG"], "knownHosts": ""}
    with pytest.raises(UpstreamUnavailableError) as caught:
        await _elections(register, options)
    assert "gateway pin-host-key VALG" in caught.value.message
    assert not valg_replica.connections


async def test_pin_host_key_shows_the_key_and_writes_it_into_source_json(
    valg_replica: ValgReplica,
    register: Register,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    algorithm, fingerprint, blob = _expected_key()
    folder = _registers(tmp_path, valg_replica, "")
    before = _source_path(folder).read_text(encoding="utf-8")

    # Not accepted (no --write, no terminal to ask on): shown, not written.
    assert await _pin("VALG", "--registers", str(folder)) == 1
    shown = capsys.readouterr().out
    assert fingerprint in shown
    assert algorithm in shown
    assert "not pinned" in shown
    assert _source_path(folder).read_text(encoding="utf-8") == before

    assert await _pin("VALG", "--registers", str(folder), "--write") == 0
    shown = capsys.readouterr().out
    line = f"[{valg_replica.host}]:{valg_replica.port} {algorithm} {blob}"
    assert f"fingerprint {fingerprint}" in shown
    assert line in shown
    written = json.loads(_source_path(folder).read_text(encoding="utf-8"))
    assert written["knownHosts"] == line
    # Nothing else of Source.json changed.
    assert {**json.loads(before), "knownHosts": line} == written

    # The register now connects with exactly what was written.
    roots = await _elections(register, {**written})
    assert roots == sorted(valg_replica.archive.roots)


async def test_pin_host_key_writes_the_file_knownhosts_names(
    valg_replica: ValgReplica,
    register: Register,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    algorithm, _, blob = _expected_key()
    known = tmp_path / "known_hosts"
    stale = f"[{valg_replica.host}]:{valg_replica.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld"
    other = "data.valg.dk ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther"
    known.write_text("", encoding="utf-8")
    folder = _registers(tmp_path, valg_replica, str(known))
    source = json.loads(_source_path(folder).read_text(encoding="utf-8"))

    # An empty known_hosts file pins nothing: the same advice as an empty option.
    with pytest.raises(UpstreamUnavailableError) as caught:
        await _elections(register, source)
    assert "gateway pin-host-key VALG" in caught.value.message

    known.write_text(f"{other}\n{stale}\n", encoding="utf-8")
    with pytest.raises(UpstreamUnavailableError) as mismatch:
        await _elections(register, source)
    assert "does not match the pinned one" in mismatch.value.message
    assert "gateway pin-host-key VALG" in mismatch.value.message

    assert await _pin("VALG", "--registers", str(folder), "--write") == 0
    assert f"wrote {known}" in capsys.readouterr().out
    line = f"[{valg_replica.host}]:{valg_replica.port} {algorithm} {blob}"
    # The stale line for this server is replaced; the other server's line is kept.
    assert known.read_text(encoding="utf-8").splitlines() == [other, line]
    assert json.loads(_source_path(folder).read_text(encoding="utf-8")) == source
    assert await _elections(register, source) == sorted(valg_replica.archive.roots)


async def test_pin_host_key_errors(
    valg_replica: ValgReplica, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _registers(tmp_path, valg_replica, "")
    # Nothing listens on a port just released.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    path = _source_path(folder)
    document = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**document, "port": closed}), encoding="utf-8")
    assert await _pin("VALG", "--registers", str(folder), "--write") == 1
    assert f"cannot reach {valg_replica.host}:{closed}" in capsys.readouterr().err
    assert json.loads(path.read_text(encoding="utf-8"))["knownHosts"] == ""

    assert await _pin("FT", "--registers", str(folder)) == 2
    assert "no host key to pin" in capsys.readouterr().err
    assert await _pin("NOPE", "--registers", str(folder)) == 2
    assert "register 'NOPE' is not loaded" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """A standard input that is a terminal, holding the operator's answer."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "pinned"), [("yes\n", True), ("n\n", False), ("\n", False)])
async def test_pin_host_key_asks_on_a_terminal(
    answer: str,
    pinned: bool,
    valg_replica: ValgReplica,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    algorithm, fingerprint, blob = _expected_key()
    folder = _registers(tmp_path, valg_replica, "")
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    assert await _pin("VALG", "--registers", str(folder)) == (0 if pinned else 1)
    shown = capsys.readouterr().out
    assert "pin this key for VALG? [y/N]" in shown
    assert fingerprint in shown
    written = json.loads(_source_path(folder).read_text(encoding="utf-8"))["knownHosts"]
    line = f"[{valg_replica.host}]:{valg_replica.port} {algorithm} {blob}"
    assert written == (line if pinned else "")
