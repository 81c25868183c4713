"""The performance suite: the gateway against its references, side by side in one run.

Every server under test runs in its own process pinned to one core (``taskset``); the load
generator (wrk, from Debian's packages) and the upstream replicas run on the other core.
Each scenario warms up, then takes ``--runs`` runs of ``--seconds`` seconds, interleaving
the gateway and its reference run by run, and reports medians: requests per second, p50
and p99 latency, CPU per request (utime + stime of the pinned process, from ``/proc``),
upstream requests per query (the gateway's ``/metrics``, the reference's own counter) and
peak resident memory (``VmHWM``, reset per scenario).

The previous gateway (``--baseline REV``, by default the commit before the current
performance work; ``none`` leaves it out) runs from a git worktree of that commit
(``baseline.py``), started like the current one with its working directory and
``PYTHONPATH`` the worktree, and takes part in every scenario below as one more server,
interleaved with the others run by run.

Scenarios (the performance targets' rows):

- ``hit``: a response-cache hit, against a plain Starlette route encoding the same answer
  on every request (``JSONResponse``) and one sending it as precomputed bytes;
- ``cached``: 100 ``FT_Stemme`` with ``Aktoer { navn }``, upstream responses cached, new
  variables every request (a nonce variable: the whole-response cache never hits), against
  the hand-written strawberry + DataLoader server with its upstream cache and document caches
  and against the Starlette route encoding an answer of the same size;
- ``deep``: ``FT_Stemme → Afstemning → Stemme → Aktoer``, cached like ``cached``;
- ``cold``: ``cached`` with the upstream cache off (``ttl`` 0), against the hand-written
  server without an upstream cache;
- ``valg``: ``VALG_Valgresultat`` paged with cursors through the whole set: the first walk
  (files downloaded and verified), warm walks by one client (milliseconds and CPU a page)
  and every page from 50 connections (wrk);
- ``export``: ``GET /FT/v1/download/Stemme.csv``, every row;
- ``de``: the CSV export of ``DE_Stimme`` (rows per second) and paging ``DE_Stimme`` by
  1,000 (milliseconds and CPU a page), each capped in time so that a slow gateway finishes.

Then the start-up (schema build), the "cheap wins" one by one (each a separate server
process, ``serve_variant.py``), and a py-spy profile of the hottest scenario. Writes
``REPORT.md``, ``results.json`` and the profile beside this file.

    uv run python bench/perf/run.py [--quick] [--py-spy PATH] [--budget 870]
        [--baseline REV|none]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from baseline import DEFAULT_REVISION, Tree, checkout  # bench/perf/baseline.py

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
LUA = PERF / "lua" / "graphql.lua"
PYCACHE = Path(tempfile.gettempdir()) / "dls-bench-pycache"

PAGE_QUERY = (
    "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
    "{ nodes { id typeid Aktoer { navn } } } }"
)
DEEP_QUERY = (
    "query($a: Int!) { FT_Stemme(first: 100, where: {afstemningid: {gte: $a}}) "
    "{ nodes { id Afstemning { id nummer Stemme { nodes { id Aktoer { navn } } } } } } }"
)
VALG_QUERY = (
    "query($after: String) { VALG_Valgresultat(first: 100, after: $after) "
    "{ pageInfo { hasNextPage endCursor } nodes { Noegle Valgmappe Kommune "
    "Afstemningsomraade Resultatart GyldigeStemmer } } }"
)
EXPORT_PATH = "/FT/v1/download/Stemme.csv"
DE_PAGE_QUERY = (
    "query($after: String) { DE_Stimme(first: 1000, after: $after) { nodes { wahl datei zeile "
    "bezirk_nr spalte kennung position kandidatnummer anzahl stimmzettel_gebiet_nr bezirk_id "
    "stimmzettel_id kandidat_id } pageInfo { hasNextPage endCursor } } }"
)
DE_FIRST_QUERY = "{ DE_Stimme(first: 1) { nodes { anzahl } } }"
NONCE = "@NONCE@"

# --- processes ---------------------------------------------------------------------------


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Children get compiled bytecode (kept outside the repository), as a deployment has."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra or {})
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pinned(core: int | None, command: Sequence[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if core is not None else list(command)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` value in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); ignored where not permitted."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass(eq=False)  # one per process: compared (and hashed) by identity
class Server:
    """One server process under test."""

    name: str
    kind: str  # gateway | starlette | strawberry
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def upstream_requests(self) -> int | None:
        """Upstream requests so far (None: the server has no upstream)."""
        if self.kind == "gateway":
            text = httpx.get(self.url + "/metrics", timeout=30).text
            return int(
                sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("dls_upstream_requests_total{")
                )
            )
        if self.kind == "strawberry":
            found: int = httpx.get(self.url + "/upstream", timeout=30).json()["requests"]
            return found
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class Fleet:
    """Starts servers and stops every one of them at the end."""

    def __init__(self, workdir: Path, core: int | None) -> None:
        self.workdir = workdir
        self.core = core
        self.servers: list[Server] = []

    def start(
        self,
        name: str,
        kind: str,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> Server:
        """Start ``command`` (which must listen on the port it is given via ``{port}``)."""
        port = _free_port()
        log = self.workdir / f"{name}.log"
        argv = [part.replace("{port}", str(port)) for part in command]
        with log.open("wb") as out:
            process = subprocess.Popen(
                _pinned(self.core, argv),
                cwd=cwd,
                env=_env(env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, kind, process, f"http://127.0.0.1:{port}", log)
        self.servers.append(server)
        return server

    @staticmethod
    def wait_ready(servers: Sequence[Server], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for server in servers:
            while True:
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
                try:
                    if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} did not start:\n{server.log.read_text()}")
                time.sleep(0.2)

    def stop(self, server: Server) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in list(self.servers):
            self.stop(server)


@contextlib.contextmanager
def upstreams(workdir: Path, core: int | None) -> Iterator[dict[str, Any]]:
    """The replicas in their own process; yields their Source.json overrides."""
    log = (workdir / "upstreams.log").open("wb")
    process = subprocess.Popen(
        _pinned(core, [sys.executable, str(PERF / "upstreams.py"), "--valg", "--de"]),
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the replicas did not start; see " + str(workdir))
        yield json.loads(line)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def gateway_config(
    path: Path,
    overrides: dict[str, Any],
    *,
    cold: bool = False,
    fast_path: bool = True,
    root: Path = ROOT,
) -> Path:
    """A TOML configuration: every register (of the tree at ``root``), rate limits off,
    sources on the replicas."""
    lines = [
        f"registers = {json.dumps(str(root / 'registers'))}",
        "",
        "[server]",
        "graphiql = false",
        f"fast_path = {'true' if fast_path else 'false'}",
        "",
        "[rate_limit]",
        "enabled = false  # one load generator sending as fast as it can",
        "",
        "# The cold first VALG page downloads every file of the listing it selects from.",
        "[limits.upstream_requests]",
        '"0" = 100000',
        "",
    ]
    if cold:
        lines += ["[cache]", "response_cache = false", ""]
    for register, options in overrides.items():
        lines.append(f"[sources.{register}]")
        for key, value in options.items():
            lines.append(f"{key} = {json.dumps(value)}")
        if register == "FT" and cold:
            lines.append("ttl = 0  # every upstream response fetched again")
            # As many upstream connections as the hand-written server's pool (politeness: 4).
            lines.append("concurrency = 16")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- load ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One measured run."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    upstream_per_query: float | None
    requests: int
    bad: int
    socket_errors: int
    rss_mib: float


@dataclass
class Result:
    """The medians of a subject's runs in one scenario."""

    subject: str
    samples: list[Sample]
    peak_rss_mib: float = 0.0

    def median(self, name: str) -> float | None:
        values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
        return statistics.median(values) if values else None

    @property
    def bad(self) -> int:
        return sum(s.bad + s.socket_errors for s in self.samples)


@dataclass
class Load:
    """wrk on the load core."""

    core: int | None
    connections: int

    def run(self, url: str, lines: Path, seconds: float, flags: Sequence[str]) -> dict[str, Any]:
        command = [
            "wrk", "-t1", f"-c{self.connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "30s", "-s", str(LUA), url, "--", str(lines), *flags,
        ]  # fmt: skip
        done = subprocess.run(
            _pinned(self.core, command), capture_output=True, text=True, timeout=seconds + 120
        )
        for line in done.stdout.splitlines():
            if line.startswith("WRK_JSON "):
                parsed: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
                return parsed
        raise RuntimeError(f"wrk gave no summary:\n{done.stdout}\n{done.stderr}")


@dataclass
class Subject:
    """A server in a scenario, with the requests it gets."""

    server: Server
    lines: Path
    flags: tuple[str, ...] = ("nonce",)
    path: str = "/graphql"
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.server.name


def settle(pid: int, limit: float = 60) -> None:
    """Wait until a server has finished what an earlier run left in flight (its CPU is still)."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pid)
        if now - last < 0.02:
            return
        last = now


def sample(load: Load, subject: Subject, seconds: float) -> Sample:
    """One wrk run. CPU and upstream requests are counted until the server is idle again
    and divided by the requests answered plus the ones in flight when wrk stopped (one per
    connection, which the server still works through): on a slow server, where a run
    answers few requests, the work on the last ones is not charged to the others."""
    server = subject.server
    settle(server.pid)
    upstream_before = server.upstream_requests()
    cpu_before = cpu_seconds(server.pid)
    out = load.run(server.url + subject.path, subject.lines, seconds, subject.flags)
    settle(server.pid, 180)
    cpu = cpu_seconds(server.pid) - cpu_before
    upstream_after = server.upstream_requests()
    requests = max(int(out["requests"]), 1)
    served = requests + load.connections
    per_query = None
    if upstream_before is not None and upstream_after is not None:
        per_query = (upstream_after - upstream_before) / served
    errors = sum(int(out[k]) for k in ("connect", "read", "write", "timeout"))
    return Sample(
        rps=requests / (out["duration_us"] / 1e6),
        p50_ms=out["p50_us"] / 1000,
        p99_ms=out["p99_us"] / 1000,
        cpu_us=cpu / served * 1e6,
        upstream_per_query=per_query,
        requests=requests,
        bad=int(out["bad"]) + int(out["status"]),
        socket_errors=errors,
        rss_mib=status_kib(server.pid, "VmHWM") / 1024,
    )


def compare(
    load: Load, subjects: Sequence[Subject], runs: int, seconds: float, warm: float
) -> dict[str, Result]:
    """Warm every subject up, then interleave their runs; one Result per subject."""
    results = {s.name: Result(s.name, []) for s in subjects}
    for subject in subjects:
        reset_peak(subject.server.pid)
        if warm > 0:
            load.run(subject.server.url + subject.path, subject.lines, warm, subject.flags)
    for _ in range(runs):
        for subject in subjects:
            results[subject.name].samples.append(sample(load, subject, seconds))
    for subject in subjects:
        results[subject.name].peak_rss_mib = status_kib(subject.server.pid, "VmHWM") / 1024
    for name, result in results.items():
        sys.stderr.write(f"  {name}: {_line(result)}\n")
    return results


def _line(result: Result) -> str:
    rps, cpu = result.median("rps") or 0, result.median("cpu_us") or 0
    return f"{rps:,.0f} req/s, {cpu:,.0f} µs CPU/req, bad {result.bad}"


# --- request bodies -----------------------------------------------------------------------


def write_lines(path: Path, bodies: Sequence[dict[str, Any]]) -> Path:
    """One JSON body per line; a variable ``nonce`` gets the wrk script's per-request number."""
    with path.open("w", encoding="utf-8") as out:
        for body in bodies:
            text = json.dumps(body, ensure_ascii=False)
            out.write(text.replace(f'"{NONCE}"', NONCE) + "\n")
    return path


def ballots() -> list[int]:
    with (ROOT / "data" / "ft" / "northatlantic_votes_raw.csv").open(encoding="utf-8") as f:
        return sorted({int(row["afstemningid"]) for row in csv.DictReader(f)})


def spread(values: Sequence[int], count: int) -> list[int]:
    step = max(1, len(values) // count)
    return list(values[::step][:count])


def send_each(url: str, lines: Path, concurrency: int = 8) -> list[Any]:
    """POST every line once (nonce 0); the answers, in order. Fails on any error."""
    import asyncio

    bodies = [line.replace(NONCE, "0") for line in lines.read_text("utf-8").splitlines() if line]

    async def main() -> list[Any]:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=120) as client:

            async def one(body: str) -> Any:
                async with gate:
                    response = await client.post(
                        url, content=body, headers={"content-type": "application/json"}
                    )
                answer = response.json()
                if response.status_code != 200 or "errors" in answer:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:500]}")
                return answer

            return await asyncio.gather(*(one(b) for b in bodies))

    return asyncio.run(main())


# --- VALG and export ------------------------------------------------------------------------


def valg_walk(url: str, nonce: int) -> tuple[list[str | None], int, float]:
    """Page through every VALG_Valgresultat; (the ``after`` of each page, rows, seconds)."""
    cursors: list[str | None] = []
    after: str | None = None
    rows = 0
    started = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        while True:
            cursors.append(after)
            variables = {"after": after, "nonce": nonce}
            answer = client.post(url, json={"query": VALG_QUERY, "variables": variables}).json()
            if "errors" in answer:
                raise RuntimeError(f"VALG paging of {url} failed: {answer['errors']}")
            connection = answer["data"]["VALG_Valgresultat"]
            rows += len(connection["nodes"])
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
    return cursors, rows, time.perf_counter() - started


class RssSampler:
    """RSS every 50 ms on a thread (to compare the first and second half of a transfer)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append((time.monotonic(), status_kib(self.pid, "VmRSS")))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def halves(self) -> tuple[int, int]:
        if len(self.samples) < 2:
            return (0, 0)
        middle = (self.samples[0][0] + self.samples[-1][0]) / 2
        first = [rss for t, rss in self.samples if t <= middle] or [0]
        second = [rss for t, rss in self.samples if t > middle] or [0]
        return (max(first), max(second))


def export_once(server: Server) -> dict[str, Any]:
    """Stream the whole CSV export once, discarding it; what it cost the gateway."""
    baseline = status_kib(server.pid, "VmRSS")
    reset_peak(server.pid)
    upstream_before = server.upstream_requests() or 0
    cpu_before = cpu_seconds(server.pid)
    size = lines = 0
    started = time.perf_counter()
    with (
        RssSampler(server.pid) as sampler,
        httpx.stream("GET", server.url + EXPORT_PATH, timeout=900) as response,
    ):
        response.raise_for_status()
        total = int(response.headers["x-total-count"])
        for chunk in response.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    if lines != total + 1:
        raise RuntimeError(f"the export has {lines - 1} rows; x-total-count says {total}")
    halves = sampler.halves()
    return {
        "rows": total,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": total / seconds,
        "cpu_s": cpu_seconds(server.pid) - cpu_before,
        "upstream": (server.upstream_requests() or 0) - upstream_before,
        "baseline_mib": baseline / 1024,
        "peak_growth_mib": (status_kib(server.pid, "VmHWM") - baseline) / 1024,
        "halves_growth_mib": [(h - baseline) / 1024 for h in halves],
    }


def graphql(server: Server, query: str, variables: dict[str, Any] | None = None) -> Any:
    """One GraphQL request; its ``data``. Fails on any error."""
    body = {"query": query, "variables": variables or {}}
    response = httpx.post(server.url + "/graphql", json=body, timeout=300)
    answer = response.json()
    if response.status_code != 200 or "errors" in answer:
        raise RuntimeError(f"{server.name}: {response.status_code} {response.text[:500]}")
    return answer["data"]


def valg_warm_walk(server: Server, nonce: int) -> dict[str, Any]:
    """One warm walk by one client: wall and the gateway's CPU per page."""
    settle(server.pid)
    cpu = cpu_seconds(server.pid)
    _, rows, seconds = valg_walk(server.url + "/graphql", nonce)
    cpu = cpu_seconds(server.pid) - cpu
    pages = -(-rows // 100)
    return {
        "seconds": seconds,
        "page_ms": 1000 * seconds / pages,
        "page_cpu_ms": 1000 * cpu / pages,
    }


def de_export_path(server: Server) -> str:
    """The CSV download of ``DE_Stimme``, as the catalogue lists it."""
    catalogue = httpx.get(server.url + "/catalog.json", timeout=120).json()
    for register in catalogue["registers"]:
        for entity in register["entities"]:
            if entity["graphqlName"] == "DE_Stimme" and entity["downloads"]:
                path: str = entity["downloads"][-1]["csv"]  # the newest relation version
                return path
    raise RuntimeError(f"{server.name}: no CSV download of DE_Stimme in /catalog.json")


def de_export(server: Server, path: str, limit: float) -> dict[str, Any]:
    """Stream the ``DE_Stimme`` CSV export for at most ``limit`` seconds, discarding it."""
    settle(server.pid)
    cpu_before = cpu_seconds(server.pid)
    size = lines = 0
    complete = False
    started = time.perf_counter()
    with httpx.stream("GET", server.url + path, timeout=300) as response:
        response.raise_for_status()
        total = response.headers.get("x-total-count")
        for chunk in response.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
            if time.perf_counter() - started > limit:
                break
        else:
            complete = True
    seconds = time.perf_counter() - started
    rows = max(lines - 1, 0)  # the header
    if complete and total is not None and rows != int(total):
        raise RuntimeError(f"the DE export has {rows} rows; x-total-count says {total}")
    cpu = cpu_seconds(server.pid) - cpu_before
    return {
        "rows": rows,
        "total": None if total is None else int(total),
        "complete": complete,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "cpu_us_per_row": cpu / max(rows, 1) * 1e6,
    }


def de_walk(server: Server, pages: int, limit: float) -> dict[str, Any]:
    """Page ``DE_Stimme`` by 1,000 from the start (at most ``pages`` pages or ``limit``
    seconds): milliseconds and the gateway's CPU per page."""
    settle(server.pid)
    times: list[float] = []
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    after: str | None = None
    with httpx.Client(timeout=300) as client:
        while len(times) < pages and time.perf_counter() - started < limit:
            began = time.perf_counter()
            body = {"query": DE_PAGE_QUERY, "variables": {"after": after}}
            answer = client.post(server.url + "/graphql", json=body).json()
            times.append(time.perf_counter() - began)
            if "errors" in answer:
                raise RuntimeError(f"DE paging failed: {answer['errors']}")
            connection = answer["data"]["DE_Stimme"]
            if not connection["pageInfo"]["hasNextPage"]:
                break
            if len(connection["nodes"]) != 1000:
                raise RuntimeError(f"a DE page of {len(connection['nodes'])} rows, not 1,000")
            after = connection["pageInfo"]["endCursor"]
    cpu = cpu_seconds(server.pid) - cpu_before
    return {
        "pages": len(times),
        "page_ms": 1000 * statistics.median(times),
        "mean_page_ms": 1000 * sum(times) / len(times),
        "page_cpu_ms": 1000 * cpu / len(times),
    }


# --- start-up and profile --------------------------------------------------------------------


def schema_build(
    core: int | None, tree: Path = ROOT, env: dict[str, str] | None = None, *flags: str
) -> dict[str, Any]:
    """The tree's own ``schema_build.py`` in a fresh process."""
    script = tree / "bench" / "perf" / "schema_build.py"
    done = subprocess.run(
        _pinned(core, [sys.executable, str(script), *flags]),
        cwd=tree,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def profile(
    py_spy: str, load: Load, subject: Subject, seconds: float, outputs: dict[str, Path]
) -> None:
    """py-spy on the server while wrk loads it; one recording per output format."""
    for fmt, target in outputs.items():
        load_thread = threading.Thread(
            target=load.run,
            args=(subject.server.url + subject.path, subject.lines, seconds + 3, subject.flags),
        )
        load_thread.start()
        time.sleep(1)
        subprocess.run(
            [py_spy, "record", "-p", str(subject.server.pid), "-d", str(int(seconds)),
             "-r", "200", "-f", fmt, "-o", str(target), "--nonblocking"],
            check=True, capture_output=True, timeout=seconds + 60,
        )  # fmt: skip
        load_thread.join()


def speedscope_top(path: Path, count: int = 14) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares of the functions in a speedscope profile."""
    data = json.loads(path.read_text("utf-8"))
    frames = data["shared"]["frames"]
    own: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    total = 0.0
    for prof in data["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            total += weight
            names = [_frame(frames[i]) for i in stack]
            if names:
                own[names[-1]] = own.get(names[-1], 0) + weight
            for name in set(names):
                if not name.startswith(_FRAMEWORK):
                    inclusive[name] = inclusive.get(name, 0) + weight

    def top(table: dict[str, float]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])
        return [(name, 100 * w / max(total, 1)) for name, w in ranked[:count]]

    return {"self": top(own), "inclusive": top(inclusive)}


# Frames every sample passes through (event loop, server start-up): left out of "inclusive".
_FRAMEWORK = (
    "BaseEventLoop", "Runner.", "run (uvicorn", "Server.", "<module>", "_run_module",
    "cmd_serve", "main (", "asyncio_run", "Handle._run", "_run_code", "run (asyncio",
)  # fmt: skip


def _frame(frame: dict[str, Any]) -> str:
    where = str(frame.get("file", ""))
    for marker in ("site-packages/", "/work/main/", str(ROOT) + "/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{frame.get('name', '?')} ({where}:{frame.get('line', '?')})"


# --- the suite ---------------------------------------------------------------------------------


@dataclass
class Settings:
    """How long and how hard."""

    runs: int
    seconds: float
    warm: float
    connections: int
    win_runs: int
    win_seconds: float
    budget: float
    valg_walks: int = 3  # warm walks per gateway
    # wrk runs on VALG pages: the previous gateway answers a page in seconds under 50
    # connections, so a run must be long enough for it to answer each of them a few times.
    valg_seconds: float = 10
    de_runs: int = 2  # DE exports and walks per gateway
    de_seconds: float = 15  # the longest a DE export or walk is measured
    de_pages: int = 20  # the most pages of a DE walk
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)


class Suite:
    """Runs every phase and collects what the report needs."""

    def __init__(
        self, settings: Settings, workdir: Path, py_spy: str | None, baseline: Tree | None
    ) -> None:
        self.settings = settings
        self.workdir = workdir
        self.py_spy = py_spy
        self.baseline = baseline
        cores = sorted(os.sched_getaffinity(0))
        self.server_core = cores[0] if len(cores) >= 2 else None
        self.load_core = cores[1] if len(cores) >= 2 else None
        if self.load_core is not None:
            # The suite's own clients (walks, exports) run beside wrk and the replicas.
            os.sched_setaffinity(0, {self.load_core})
        self.fleet = Fleet(workdir, self.server_core)
        self.load = Load(self.load_core, settings.connections)
        self.results: dict[str, Any] = {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": _machine(),
            "settings": asdict(settings),
            "pinning": {"server_core": self.server_core, "load_core": self.load_core},
            "load_average": {"start": os.getloadavg()},
            "baseline": baseline.describe() if baseline is not None else None,
            "scenarios": {},
            "wins": {},
            "notes": [],
        }

    # -- helpers ----------------------------------------------------------------------

    def gateway(
        self,
        name: str,
        config: Path,
        variants: str = "",
        plain_stack: bool = False,
        tree: Path | None = None,
    ) -> Server:
        if tree is not None:  # the previous gateway, from its worktree
            command = [
                sys.executable, "-m", "gateway", "serve", "--config", str(config),
                "--port", "{port}", "--log-level", "warning",
            ]  # fmt: skip
            env = {"PYTHONPATH": str(tree)}
            return self.fleet.start(name, "gateway", command, env, cwd=tree)
        if variants:
            command = [
                sys.executable, str(PERF / "serve_variant.py"), "--variants", variants, "--",
                "serve", "--config", str(config), "--port", "{port}", "--log-level", "warning",
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "gateway", "serve", "--config", str(config),
                "--port", "{port}", "--log-level", "warning",
            ]  # fmt: skip
        return self.fleet.start(name, "gateway", command, self._stack(plain_stack))

    def reference(self, name: str, ft_url: str, *flags: str) -> Server:
        command = [
            sys.executable, str(PERF / "ref_strawberry.py"), "--upstream", ft_url,
            "--port", "{port}", *flags,
        ]  # fmt: skip
        return self.fleet.start(name, "strawberry", command)

    def record(self, scenario: str, results: dict[str, Result], **extra: Any) -> None:
        entry = self.results["scenarios"].setdefault(scenario, {})
        entry["results"] = {k: _result_json(v) for k, v in results.items()}
        entry.update(extra)

    def note(self, text: str) -> None:
        self.results["notes"].append(text)
        sys.stderr.write(f"note: {text}\n")

    # -- phases -----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s = self.settings
        work = self.workdir
        with upstreams(work, self.load_core) as overrides:
            ft_url = overrides["FT"]["url"]
            base = gateway_config(work / "gateway.toml", overrides)
            cold = gateway_config(work / "gateway-cold.toml", overrides, cold=True)
            configs = {"base": base, "cold": cold}
            if self.baseline is not None:
                tree = self.baseline.path
                configs["baseline"] = gateway_config(work / "baseline.toml", overrides, root=tree)
                configs["baseline-cold"] = gateway_config(
                    work / "baseline-cold.toml", overrides, cold=True, root=tree
                )
            numbers = ballots()
            hit = write_lines(
                work / "hit.txt", [{"query": PAGE_QUERY, "variables": {"a": numbers[0]}}]
            )
            cached = write_lines(
                work / "cached.txt",
                [
                    {"query": PAGE_QUERY, "variables": {"a": a, "nonce": NONCE}}
                    for a in spread(numbers, 200)
                ],
            )
            deep = write_lines(
                work / "deep.txt",
                [
                    {"query": DEEP_QUERY, "variables": {"a": a, "nonce": NONCE}}
                    for a in spread(numbers, 100)
                ],
            )
            try:
                with self.timed("main"):
                    self.phase_main(configs, ft_url, hit, cached, deep)
                with self.timed("cold"):
                    self.phase_cold(configs, ft_url, cached, deep)
                with self.timed("startup"):
                    self.phase_startup()
                if s.left() > 200:
                    with self.timed("wins"):
                        self.phase_wins(base, cold, ft_url, hit, cached)
                else:
                    self.note("the cheap wins were skipped: the time budget ran out")
            finally:
                self.fleet.stop_all()
        self.results["load_average"]["end"] = os.getloadavg()
        self.results["seconds"] = round(time.monotonic() - s.started)
        return self.results

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Seconds a phase took, in ``results["phases"]``."""
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = round(time.monotonic() - started)
            self.results.setdefault("phases", {})[phase] = seconds
            sys.stderr.write(f"  ({phase}: {seconds} s)\n")

    def gateways(self, name: str, configs: dict[str, Path], which: str) -> dict[str, Server]:
        """The gateway and, with a baseline, the previous gateway, on configuration ``which``."""
        servers = {"gateway": self.gateway(name, configs[which])}
        if self.baseline is not None:
            servers["baseline"] = self.gateway(
                f"baseline-{name}", configs["baseline" if which == "base" else "baseline-cold"],
                tree=self.baseline.path,
            )  # fmt: skip
        return servers

    def check_baseline(self, server: Server) -> None:
        """The running previous gateway works in its worktree, with its packages first."""
        assert self.baseline is not None
        cwd = Path(os.readlink(f"/proc/{server.pid}/cwd")).resolve()
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        path = f"PYTHONPATH={self.baseline.path}".encode()
        if cwd != self.baseline.path or path not in environ:
            raise RuntimeError(f"{server.name} does not run from {self.baseline.path}")
        self.results["baseline"].setdefault("servers_checked", []).append(server.name)

    def phase_main(
        self, configs: dict[str, Path], ft_url: str, hit: Path, cached: Path, deep: Path
    ) -> None:
        s = self.settings
        sys.stderr.write("phase: response-cache hit, cached upstream, deep\n")
        gateways = self.gateways("gateway", configs, "base")
        gateway = gateways["gateway"]
        reference = self.reference("strawberry", ft_url, "--cache", "--document-caches")
        self.fleet.wait_ready([*gateways.values(), reference])
        if "baseline" in gateways:
            self.check_baseline(gateways["baseline"])
        # The Starlette routes answer the gateway's own bytes for the hit query.
        answers = {
            name: httpx.post(
                server.url + "/graphql", content=hit.read_text("utf-8").splitlines()[0],
                headers={"content-type": "application/json"}, timeout=120,
            ).content
            for name, server in gateways.items()
        }  # fmt: skip
        payload = answers["gateway"]
        (self.workdir / "payload.json").write_bytes(payload)
        starlette = self._starlette("starlette")
        self.fleet.wait_ready([starlette])
        same_bytes = httpx.post(starlette.url + "/bytes", content=b"{}").content == payload
        encoded = httpx.post(starlette.url + "/graphql", content=b"{}").content
        same_json = json.loads(encoded) == json.loads(payload)
        subjects = [Subject(server, hit, (), label=name) for name, server in gateways.items()]
        subjects += [
            Subject(starlette, hit, (), label="starlette json"),
            Subject(starlette, hit, (), path="/bytes", label="starlette bytes"),
        ]
        results = compare(self.load, subjects, s.runs, s.seconds, s.warm)
        self.record(
            "hit",
            results,
            response_bytes=len(payload),
            same_bytes=same_bytes,
            same_json=same_json,
            baseline_same_bytes=answers.get("baseline", payload) == payload,
        )

        for name, lines in (("cached", cached), ("deep", deep)):
            # Fills every upstream cache; the answers are compared.
            got = {k: send_each(v.url + "/graphql", lines) for k, v in gateways.items()}
            reference_answers = send_each(reference.url + "/graphql", lines)
            answers_now = got["gateway"]
            # The data: the gateway's answers also carry extensions (attribution).
            same = sum(
                a["data"] == b["data"] for a, b in zip(answers_now, reference_answers, strict=True)
            )
            extra: dict[str, Any] = {"same_answers": f"{same}/{len(answers_now)}"}
            if "baseline" in got:
                alike = sum(a == b for a, b in zip(answers_now, got["baseline"], strict=True))
                extra["baseline_same_answers"] = f"{alike}/{len(answers_now)}"
            extra["response_bytes"] = len(
                json.dumps(answers_now[0], ensure_ascii=False, separators=(",", ":"))
            )
            subjects = [Subject(server, lines, label=k) for k, server in gateways.items()]
            subjects.append(Subject(reference, lines, label="strawberry"))
            if name == "cached":
                # The same answer as the hit scenario's (the first variables), encoded anew.
                subjects.append(Subject(starlette, lines, label="starlette json"))
            results = compare(self.load, subjects, s.runs, s.seconds, s.warm)
            self.record(name, results, **extra)
            if name == "cached" and self.py_spy is not None:
                profile(
                    self.py_spy,
                    self.load,
                    Subject(gateway, lines),
                    min(8.0, s.seconds),
                    {
                        "speedscope": PERF / "profile-cached-upstream.speedscope.json",
                        "flamegraph": PERF / "profile-cached-upstream.svg",
                    },
                )
                self.results["profile"] = speedscope_top(
                    PERF / "profile-cached-upstream.speedscope.json"
                )
        for server in (*gateways.values(), reference, starlette):
            self.fleet.stop(server)

    def phase_cold(self, configs: dict[str, Path], ft_url: str, cached: Path, deep: Path) -> None:
        s = self.settings
        sys.stderr.write("phase: cold, VALG paging, exports, DE\n")
        gateways = self.gateways("cold", configs, "cold")
        reference = self.reference("strawberry-cold", ft_url, "--document-caches")
        self.fleet.wait_ready([*gateways.values(), reference])
        if "baseline" in gateways:
            self.check_baseline(gateways["baseline"])
        subjects = [Subject(server, cached, label=k) for k, server in gateways.items()]
        subjects.append(Subject(reference, cached, label="strawberry"))
        results = compare(self.load, subjects, s.runs, s.seconds, s.warm)
        self.record("cold", results)
        self.fleet.stop(reference)
        # The deep query cold, one at a time: upstream requests per query against the bound.
        some = self.workdir / "deep-some.txt"
        some.write_text("\n".join(deep.read_text("utf-8").splitlines()[:20]) + "\n", "utf-8")
        per_query = {}
        for name, server in gateways.items():
            before = server.upstream_requests() or 0
            send_each(server.url + "/graphql", some, concurrency=1)
            per_query[name] = ((server.upstream_requests() or 0) - before) / 20
        self.results["scenarios"]["cold"]["deep_upstream_per_query"] = per_query["gateway"]
        self.results["scenarios"]["cold"]["deep_upstream_per_query_by"] = per_query
        with self.timed("cold: VALG"):
            self.phase_valg(gateways)
        self.results["scenarios"]["export"] = {
            "runs": [export_once(gateways["gateway"])],
            "by": {name: [export_once(server)] for name, server in gateways.items()},
        }
        with self.timed("cold: DE"):
            self.phase_de(gateways)
        for server in gateways.values():
            self.fleet.stop(server)

    def phase_valg(self, gateways: dict[str, Server]) -> None:
        """VALG: the first walk downloads and verifies the files; later ones are warm."""
        s = self.settings
        rss: dict[str, dict[str, float]] = {}
        first: dict[str, float] = {}
        walked: dict[str, tuple[list[str | None], int]] = {}
        for name, server in gateways.items():
            rss[name] = {"before": status_kib(server.pid, "VmRSS") / 1024}
            settle(server.pid)
            cursors, rows, first[name] = valg_walk(server.url + "/graphql", 1)
            walked[name] = (cursors, rows)
            rss[name]["after_first_walk"] = status_kib(server.pid, "VmRSS") / 1024
        cursors, rows = walked["gateway"]
        for name, (_, found) in walked.items():
            if found != rows:
                self.note(f"VALG: {name} walked {found:,} rows, the gateway {rows:,}")
        walks: dict[str, list[dict[str, Any]]] = {name: [] for name in gateways}
        for n in range(2, 2 + s.valg_walks):
            for name, server in gateways.items():
                walks[name].append(valg_warm_walk(server, n))
        for name, server in gateways.items():
            rss[name]["after_walks"] = status_kib(server.pid, "VmRSS") / 1024
        pages = write_lines(
            self.workdir / "valg.txt",
            [{"query": VALG_QUERY, "variables": {"after": c, "nonce": NONCE}} for c in cursors],
        )
        subjects = [Subject(server, pages, label=k) for k, server in gateways.items()]
        results = compare(self.load, subjects, s.runs, max(s.seconds, s.valg_seconds), s.warm)
        for name, server in gateways.items():
            rss[name]["after_load"] = status_kib(server.pid, "VmRSS") / 1024
        by = {
            name: {
                "first_walk_s": first[name],
                "walk_s": statistics.median(w["seconds"] for w in walks[name]),
                "page_ms": statistics.median(w["page_ms"] for w in walks[name]),
                "page_cpu_ms": statistics.median(w["page_cpu_ms"] for w in walks[name]),
                "walks": walks[name],
                "rss_mib": rss[name],
            }
            for name in gateways
        }
        self.record(
            "valg",
            results,
            rows=rows,
            pages=len(cursors),
            first_walk_s=first["gateway"],
            walk_s=by["gateway"]["walk_s"],
            rss_mib=rss["gateway"],
            by=by,
        )

    def phase_de(self, gateways: dict[str, Server]) -> None:
        """DE_Stimme: the CSV export and paging by 1,000, interleaved, each capped in time."""
        s = self.settings
        first: dict[str, float] = {}
        paths: dict[str, str] = {}
        for name, server in gateways.items():
            # The listing and the files read and parsed (the first answer), not measured below.
            started = time.perf_counter()
            graphql(server, DE_FIRST_QUERY)
            first[name] = time.perf_counter() - started
            paths[name] = de_export_path(server)
        exports: dict[str, list[dict[str, Any]]] = {name: [] for name in gateways}
        walks: dict[str, list[dict[str, Any]]] = {name: [] for name in gateways}
        for _ in range(s.de_runs):
            for name, server in gateways.items():
                exports[name].append(de_export(server, paths[name], s.de_seconds))
        for _ in range(s.de_runs):
            for name, server in gateways.items():
                walks[name].append(de_walk(server, s.de_pages, s.de_seconds))
        self.results["scenarios"]["de"] = {
            "export_seconds_cap": s.de_seconds,
            "pages_cap": s.de_pages,
            "by": {
                name: {
                    "first_answer_s": first[name],
                    "export_rows_per_s": statistics.median(r["rows_per_s"] for r in exports[name]),
                    "export_cpu_us_per_row": statistics.median(
                        r["cpu_us_per_row"] for r in exports[name]
                    ),
                    "page_ms": statistics.median(w["page_ms"] for w in walks[name]),
                    "page_cpu_ms": statistics.median(w["page_cpu_ms"] for w in walks[name]),
                    "exports": exports[name],
                    "walks": walks[name],
                }
                for name in gateways
            },
        }
        for name, entry in self.results["scenarios"]["de"]["by"].items():
            sys.stderr.write(
                f"  DE {name}: export {entry['export_rows_per_s']:,.0f} rows/s, "
                f"page {entry['page_ms']:,.1f} ms\n"
            )

    def phase_startup(self) -> None:
        sys.stderr.write("phase: schema build\n")
        trees: dict[str, tuple[Path, dict[str, str] | None]] = {"gateway": (ROOT, None)}
        if self.baseline is not None:
            trees["baseline"] = (self.baseline.path, self.baseline.env)
        builds: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        decorated: list[dict[str, Any]] = []
        # The first of each also compiles the bytecode cache: not counted.
        for run in range(4):
            for name, (tree, env) in trees.items():
                found = schema_build(self.server_core, tree, env)
                if run:
                    builds[name].append(found)
            found = schema_build(self.server_core, ROOT, None, "--via-decorator")
            if run:
                decorated.append(found)
        self.results["startup"] = builds["gateway"]
        self.results["startup_decorated"] = decorated
        self.results["startup_baseline"] = builds.get("baseline", [])

    def phase_wins(self, base: Path, cold: Path, ft_url: str, hit: Path, cached: Path) -> None:
        s = self.settings
        sys.stderr.write("phase: cheap wins, one by one\n")
        nofast = gateway_config(
            self.workdir / "gateway-nofast.toml", _overrides_of(base), fast_path=False
        )
        # "as is" is the gateway; each other row undoes one thing it does for speed (or
        # tries a setting it does not use), so a row's cost over "as is" is what that is worth.
        hit_table = {
            "as is": "",
            "documents lexed on every request": "no-memo-lex",
            "response cache keeps data, encoded on every hit": "data-cache",
        }
        cached_table = {
            "as is": "",
            "without gc.freeze() after start-up": "no-gc-freeze",
            "gen-0 threshold 50,000": "gc-threshold",
            "documents lexed on every request": "no-memo-lex",
            "response cache keeps data, encoded on every hit": "data-cache",
            "edges built for every connection": "eager-edges",
            "scalars through graphql-core's coercion": "core-scalars",
        }
        variants = {v for v in [*hit_table.values(), *cached_table.values()]}
        gateways = {v: self.gateway(f"win-{v or 'as-is'}", base, v) for v in sorted(variants)}
        plain = self.gateway("win-plain", base, plain_stack=True)
        starlette = self._starlette("win-starlette")
        starlette_plain = self._starlette("win-starlette-plain", plain_stack=True)
        strawberry_path = {
            "gateway, strawberry path (fast path off)": self.gateway("win-nofast", nofast),
            "gateway, strawberry path without parser/validation caches": self.gateway(
                "win-nofast-nocaches", nofast, "no-doc-caches"
            ),
            "hand-written strawberry, no document caches": self.reference(
                "win-ref", ft_url, "--cache"
            ),
            "hand-written strawberry + parser/validation caches": self.reference(
                "win-ref-caches", ft_url, "--cache", "--document-caches"
            ),
        }
        cold_table = {
            "as is": self.gateway("win-cold", cold),
            "without sniffio (emulated)": self.gateway("win-cold-nosniffio", cold, "no-sniffio"),
            "a new HTTP client per upstream request": self.gateway(
                "win-cold-newclient", cold, "client-per-request"
            ),
        }
        warmed = [*gateways.values(), plain, *strawberry_path.values()]
        # A variant whose target is gone from the code refuses to start: its row is left out.
        gone = self._not_started([*warmed, starlette, starlette_plain, *cold_table.values()])
        warmed = [server for server in warmed if server not in gone]
        # Half the variables of the main phase: every server fills its upstream cache first.
        lines = self.workdir / "cached-wins.txt"
        lines.write_text("\n".join(cached.read_text("utf-8").splitlines()[::2]) + "\n", "utf-8")
        for server in warmed:
            send_each(server.url + "/graphql", lines)

        hit_subjects = [Subject(gateways[v], hit, (), label=n) for n, v in hit_table.items()]
        hit_subjects += [
            Subject(plain, hit, (), label="on asyncio's loop and h11"),
            Subject(starlette, hit, (), label="Starlette route"),
            Subject(starlette_plain, hit, (), label="Starlette route on asyncio's loop and h11"),
        ]
        cached_subjects = [Subject(gateways[v], lines, label=n) for n, v in cached_table.items()]
        cached_subjects.append(Subject(plain, lines, label="on asyncio's loop and h11"))
        hit_subjects = [x for x in hit_subjects if x.server not in gone]
        cached_subjects = [x for x in cached_subjects if x.server not in gone]
        strawberry_path = {n: x for n, x in strawberry_path.items() if x not in gone}
        cold_table = {n: x for n, x in cold_table.items() if x not in gone}
        groups = {
            "response-cache hit": hit_subjects,
            "cached upstream, new variables": cached_subjects,
            "parser and validation caches (cached upstream)": [
                Subject(server, lines, label=n) for n, server in strawberry_path.items()
            ],
            "sniffio and one pooled client (cold)": [
                Subject(server, lines, label=n) for n, server in cold_table.items()
            ],
        }
        # Cold queries are slow (the replica answers every upstream request): longer runs.
        lengths = {group: s.win_seconds for group in groups}
        lengths["sniffio and one pooled client (cold)"] = 2 * s.win_seconds
        warm = min(s.warm, 1.0)

        def cost(runs: int) -> float:
            return sum(len(g) * (runs * (lengths[n] + 1.5) + warm + 0.5) for n, g in groups.items())

        # Fit the time left: fewer runs, or fewer groups, rather than no report.
        runs = s.win_runs
        while runs > 1 and cost(runs) > s.left() - 30:
            runs -= 1
        if runs != s.win_runs:
            self.note(f"cheap wins measured with {runs} run(s) each to fit the time budget")
        for group, subjects in groups.items():
            if not subjects:
                continue
            if len(subjects) * (runs * (lengths[group] + 1.5) + warm) > s.left() - 20:
                self.note(f"cheap wins: '{group}' skipped, the time budget ran out")
                continue
            self.results["wins"][group] = _results_json(
                compare(self.load, subjects, runs, lengths[group], warm)
            )
        for server in list(self.fleet.servers):
            self.fleet.stop(server)

    def _not_started(self, servers: Sequence[Server]) -> set[Server]:
        """Wait for ``servers``; those that exit instead (a variant that cannot apply) are
        noted with the reason they gave, and returned."""
        gone: set[Server] = set()
        for server in servers:
            try:
                self.fleet.wait_ready([server])
            except RuntimeError:
                if server.process.poll() is None:
                    raise
                reason = server.log.read_text(errors="replace").strip().splitlines()
                self.note(f"{server.name} did not start: {reason[-1] if reason else '?'}")
                self.fleet.stop(server)
                gone.add(server)
        return gone

    def _starlette(self, name: str, plain_stack: bool = False) -> Server:
        command = [
            sys.executable, str(PERF / "ref_starlette.py"), str(self.workdir / "payload.json"),
            "--port", "{port}",
        ]  # fmt: skip
        return self.fleet.start(name, "starlette", command, self._stack(plain_stack))

    def _stack(self, plain_stack: bool) -> dict[str, str] | None:
        """With ``plain_stack``: uvloop and httptools hidden, so uvicorn falls back to
        asyncio's own loop and h11 (what it runs on without them)."""
        if not plain_stack:
            return None
        target = self.workdir / "plain-stack"
        for module in ("uvloop", "httptools"):
            package = target / module
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").write_text(
                f"raise ImportError('{module} is hidden for this benchmark')\n", "utf-8"
            )
        return {"PYTHONPATH": str(target)}


def _overrides_of(config: Path) -> dict[str, Any]:
    import tomllib

    data = tomllib.loads(config.read_text("utf-8"))
    sources: dict[str, Any] = data.get("sources", {})
    return sources


def _result_json(result: Result) -> dict[str, Any]:
    return {
        "rps": result.median("rps"),
        "p50_ms": result.median("p50_ms"),
        "p99_ms": result.median("p99_ms"),
        "cpu_us": result.median("cpu_us"),
        "upstream_per_query": result.median("upstream_per_query"),
        "peak_rss_mib": result.peak_rss_mib,
        "requests": sum(s.requests for s in result.samples),
        "bad": result.bad,
        "runs": [asdict(s) for s in result.samples],
    }


def _results_json(results: dict[str, Result]) -> dict[str, Any]:
    return {k: _result_json(v) for k, v in results.items()}


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].strip(),
        "packages": _versions(
            [
                "strawberry-graphql",
                "graphql-core",
                "starlette",
                "uvicorn",
                "httpx",
                "httpcore",
                "orjson",
                "sniffio",
                "uvloop",
                "httptools",
                "h11",
            ]
        ),
    }


def _versions(names: Sequence[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warm", type=float, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--win-runs", type=int, default=2)
    parser.add_argument("--win-seconds", type=float, default=3)
    parser.add_argument("--budget", type=float, default=870, help="seconds for the whole suite")
    parser.add_argument(
        "--baseline",
        default=DEFAULT_REVISION,
        help="the previous gateway's commit, measured beside the current one ('none': not)",
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s: to try the suite")
    parser.add_argument("--py-spy", help="the py-spy executable (no profile without it)")
    parser.add_argument("--output", type=Path, default=PERF / "REPORT.md")
    args = parser.parse_args(argv)
    quick: dict[str, Any] = {
        "valg_walks": 1, "valg_seconds": 3.0, "de_runs": 1, "de_seconds": 5.0, "de_pages": 5,
    }  # fmt: skip
    if args.quick:
        args.runs, args.seconds, args.warm, args.win_runs, args.win_seconds = 1, 3, 1, 1, 2
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.stderr.write(f"{tool} is missing (apt-get install -y wrk util-linux)\n")
            return 2
    settings = Settings(
        args.runs, args.seconds, args.warm, args.connections,
        args.win_runs, args.win_seconds, args.budget, **(quick if args.quick else {}),
    )  # fmt: skip
    PYCACHE.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dls-bench-"))
        baseline = None
        if args.baseline.lower() != "none":
            baseline = stack.enter_context(checkout(args.baseline, Path(tmp) / "baseline"))
            sys.stderr.write(f"previous gateway: {baseline.commit} ({baseline.subject})\n")
        suite = Suite(settings, Path(tmp), args.py_spy, baseline)
        try:
            results = suite.run()
        except BaseException:
            for log in sorted(Path(tmp).glob("*.log")):
                sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}\n")
            raise
    (PERF / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    from report import write_report  # bench/perf/report.py

    write_report(results, args.output, PERF / "notes.md")
    sys.stderr.write(f"wrote {args.output} in {results['seconds']} s\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(PERF))
    raise SystemExit(main())
