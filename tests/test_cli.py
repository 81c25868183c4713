"""The ``gateway`` command as people run it: demo, serve, schema."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port, register_subset


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _read_until(process: subprocess.Popen[str], pattern: str, seconds: float = 90) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    process.kill()
    process.communicate()
    raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(lines))


def test_demo_serves_ft_and_stops_on_sigint() -> None:
    with register_subset("FT") as registers:
        process = _start(["demo", "--port", "0", "--registers", str(registers)])
        try:
            lines = _read_until(process, r"Ctrl-C")
            text = "\n".join(lines)
            url = re.search(r"(http://127\.0\.0\.1:\d+/graphql)", text)
            assert url, text
            assert re.search(r"replica\s+FT\s+http://127\.0\.0\.1:\d+/api/", text)
            response = httpx.post(
                url.group(1), json={"query": "{ FT_Stemmetype { nodes { id type } } }"}, timeout=30
            )
            types = response.json()["data"]["FT_Stemmetype"]["nodes"]
            assert [t["type"] for t in types] == ["For", "Imod", "Fravær", "Hverken for eller imod"]
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
            assert process.returncode == 0


def test_demo_stops_cleanly_when_ctrl_c_arrives_twice() -> None:
    # A terminal's Ctrl-C reaches every process of the foreground group, and a launcher such
    # as ``uv run`` may pass it on as well: the demo gets SIGINT twice and must still stop
    # gracefully (every server shut down in order, no tracebacks).
    with register_subset("FT") as registers:
        process = _start(["demo", "--port", "0", "--registers", str(registers)])
        try:
            _read_until(process, r"Ctrl-C")
        finally:
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=30)
        assert process.returncode == 0, out
        assert "stopping" in out
        assert "Traceback" not in out
        assert "ERROR" not in out


def test_serve_reads_config_file_and_environment(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'registers = "{tmp_path / "regs"}"\n[server]\nport = {port}\n'
        '[sources.FT]\nurl = "http://127.0.0.1:9/api/"\n',
        encoding="utf-8",
    )
    (tmp_path / "regs").mkdir()
    (tmp_path / "regs" / "FT").symlink_to(ROOT / "registers" / "FT")
    process = _start(["serve", "--config", str(config)], env={"GATEWAY_SOURCE__FT__timeout": "1"})
    try:
        _read_until(process, r"Uvicorn running|Application startup complete")
        body = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ FT_Stemmetype { nodes { id } } }"},
            timeout=30,
        ).json()
        # Port 9 (discard) refuses: the gateway says so instead of failing.
        assert body["data"]["FT_Stemmetype"] is None
        assert body["errors"][0]["extensions"]["code"] in (
            "UPSTREAM_UNAVAILABLE",
            "UPSTREAM_TIMEOUT",
        )
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_serve_refuses_broken_registers(tmp_path: Path) -> None:
    (tmp_path / "FT").mkdir()
    process = _start(["serve", "--registers", str(tmp_path)])
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "the registers are invalid" in output
    assert "DLS_metadata.json" in output


@pytest.mark.parametrize("endpoint", ["/graphql", "/FT/v1"])
def test_schema_command_writes_sdl(tmp_path: Path, endpoint: str) -> None:
    with register_subset("FT") as registers:
        out = tmp_path / "schema.graphql"
        process = _start(
            ["schema", "--registers", str(registers), "--endpoint", endpoint, "-o", str(out)]
        )
        process.communicate(timeout=120)
    assert process.returncode == 0
    sdl = out.read_text(encoding="utf-8")
    assert "FT_Stemme(" in sdl
    assert sdl.endswith("}\n")
