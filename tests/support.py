"""Helpers for end-to-end tests: the gateway app on an in-process client, register subsets."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from gateway.http.app import create_app
from gateway.http.config import Settings

ROOT = Path(__file__).resolve().parent.parent
REGISTERS = ROOT / "registers"


@contextmanager
def register_subset(*names: str) -> Iterator[Path]:
    """A registers folder holding only ``names`` (links to the shipped folders)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            os.symlink(REGISTERS / name, Path(tmp) / name)
        yield Path(tmp)


@asynccontextmanager
async def gateway_client(
    registers_dir: Path, overrides: Mapping[str, Mapping[str, Any]], **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the gateway app (lifespan running), its sources per ``overrides``.

    Replicas run on loopback: the registers' politeness rates (requests per second towards
    the public services) are off unless ``overrides`` sets them.
    """
    sources = {name: {"rate": 0, **dict(options)} for name, options in overrides.items()}
    # DLS_FAST_PATH=0 runs the same end-to-end tests through the field-by-field path only.
    settings.setdefault("fast_path", os.environ.get("DLS_FAST_PATH", "1") != "0")
    app = create_app(Settings(registers_dir=registers_dir, sources=sources, **settings))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: Mapping[str, Any] | None = None,
    path: str = "/graphql",
) -> dict[str, Any]:
    """POST a GraphQL document; return the decoded JSON body."""
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = dict(variables)
    response = await client.post(path, json=body)
    document: dict[str, Any] = response.json()
    return document


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, seconds: float = 60) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RedisServer:
    """A private redis-server (nothing on disk) that can stop and start on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is installed by scripts/bootstrap-system"
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, 20)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class PostgresServer:
    """A private PostgreSQL server (Debian's binaries) in a temporary folder, trust auth on
    127.0.0.1; as root it runs as the ``postgres`` user, as PostgreSQL requires."""

    def __init__(self) -> None:
        found = shutil.which("initdb") or next(
            iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
        )
        assert found, "postgresql is installed by scripts/bootstrap-system"
        self.bin = Path(found).parent
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="dls-postgres-"))
        self.data = self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix: list[str] = []
        if os.geteuid() == 0:
            prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self.folder.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder} -F"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l",
            str(self.folder / "log"), "start",
        )  # fmt: skip
        return self

    def database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


async def start_gateway_process(
    registers: Path,
    sources: Mapping[str, str],
    *,
    cwd: Path = ROOT,
    output: Any = None,
    environment: Mapping[str, str] | None = None,
) -> tuple[asyncio.subprocess.Process, str]:
    """``gateway serve`` in its own process (as deployed) over ``registers``, the per-client
    rate limit off; ``sources`` are ``GATEWAY_SOURCE__…`` options (``{"FT__url": …}``).

    Returns the process and its URL once ``/healthz`` answers.
    """
    config = registers / "gateway.toml"
    config.write_text(
        f"registers = {json.dumps(str(registers))}\n[rate_limit]\nenabled = false\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {**os.environ, **{f"GATEWAY_SOURCE__{k}": v for k, v in sources.items()}}
    env.update(environment or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        cwd=cwd, env=env, stdout=output, stderr=output,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        deadline = time.monotonic() + 60
        while process.returncode is None and time.monotonic() < deadline:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    if process.returncode is None:
        process.kill()
    raise RuntimeError("the gateway did not start")


async def stop_gateway_process(process: asyncio.subprocess.Process) -> None:
    """Stop it as Ctrl-C would (graceful), killing it if it does not stop in 30 s."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()


def ft_credited(data: Mapping[str, Any]) -> dict[str, Any]:
    """The whole answer the gateway owes for ``data`` read from FT: the data and the credit
    FT's terms require, as declared in the shipped ``registers/FT/rc00001/Source.json``."""
    source = json.loads((ROOT / "registers/FT/rc00001/Source.json").read_text("utf-8"))
    credit = {
        "register": "FT",
        "text": source["attribution"],
        "name": source["attributionName"],
        "url": source["attributionUrl"],
        "required": True,
    }
    return {"data": dict(data), "extensions": {"attribution": [credit]}}
