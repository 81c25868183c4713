"""Scale-out: three gateway processes behind nginx, sharing one Redis.

- a query answered by one process is a cache hit on another;
- concurrent cold queries on different processes cause one upstream request;
- killing a process mid-load loses no request (nginx retries on the others);
- Redis going away degrades to per-process caching, and sharing resumes when it is back.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from resolvers.odata.replica.server import ODataReplica
from tests.support import REGISTERS, ROOT, RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.timeout(300)


class ReplicaThread:
    """The FT replica on an event loop in a thread, so this test can read its log."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.replica: ODataReplica = self.call(lambda: ODataReplica().start())

    def call(self, factory: Callable[[], Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(factory(), self.loop)
        return future.result(timeout=60)

    def data_paths(self) -> list[str]:
        return [r.path + "?" + r.query for r in self.replica.log if "$metadata" not in r.path]

    def stop(self) -> None:
        self.call(self.replica.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Cluster:
    """Gateway processes and nginx in front of them."""

    def __init__(self, tmp: Path, replica_url: str, redis_port: int, count: int = 3) -> None:
        self.tmp = tmp
        (tmp / "registers").mkdir()
        (tmp / "registers" / "FT").symlink_to(REGISTERS / "FT")
        config = tmp / "gateway.toml"
        config.write_text(
            f'registers = "registers"\n'
            f'[sources.FT]\nurl = "{replica_url}"\nttl = 300\n'
            f'[cache]\nurl = "redis://127.0.0.1:{redis_port}/0"\n'
            "[rate_limit]\nenabled = false\n",
            encoding="utf-8",
        )
        self.ports = [free_port() for _ in range(count)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, Path] = {}
        self._handles: list[Any] = []
        for port in self.ports:
            log = tmp / f"gateway-{port}.log"
            self.logs[port] = log
            handle = log.open("wb")
            self._handles.append(handle)
            self.processes[port] = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(config),
                 "--port", str(port), "--log-level", "warning"],
                cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        for port in self.ports:
            wait_for_port(port)
        self.nginx_port = free_port()
        self.nginx = self._start_nginx()

    def _start_nginx(self) -> subprocess.Popen[bytes]:
        servers = "\n".join(
            f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in self.ports
        )
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            f"""
worker_processes 1;
daemon off;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {self.tmp}/body;
  proxy_temp_path {self.tmp}/proxy;
  fastcgi_temp_path {self.tmp}/fastcgi;
  uwsgi_temp_path {self.tmp}/uwsgi;
  scgi_temp_path {self.tmp}/scgi;
  upstream gateways {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{self.nginx_port};
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }}
  }}
}}
""",
            encoding="utf-8",
        )
        process = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.tmp)], stderr=subprocess.DEVNULL
        )
        wait_for_port(self.nginx_port)
        return process

    def url(self, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.nginx_port}/graphql"

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()

    def stop(self) -> None:
        self.nginx.send_signal(signal.SIGQUIT)
        self.nginx.wait(timeout=10)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        for handle in self._handles:
            handle.close()


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ReplicaThread, RedisServer, Cluster]]:
    for binary in ("nginx", "redis-server"):
        assert shutil.which(binary), f"{binary} is installed by scripts/bootstrap-system"
    replica = ReplicaThread()
    redis = RedisServer().start()
    cluster = Cluster(tmp_path_factory.mktemp("scale"), replica.replica.url, redis.port)
    try:
        yield replica, redis, cluster
    finally:
        cluster.stop()
        redis.stop()
        replica.stop()


def ask(url: str, query: str) -> dict[str, Any]:
    response = httpx.post(url, json={"query": query}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def test_an_answer_from_one_process_is_a_hit_on_another(
    setup: tuple[ReplicaThread, RedisServer, Cluster],
) -> None:
    replica, _, cluster = setup
    first, second, _third = cluster.ports
    replica.replica.log.clear()
    query = (
        "{ FT_Stemme(first: 7, where: {afstemningid: {eq: 2}}) { nodes { id Aktoer { navn } } } }"
    )
    one = ask(cluster.url(first), query)
    fetched = replica.data_paths()
    assert len(fetched) == 2  # the page and the relation
    other = ask(cluster.url(second), query)
    assert other == one
    assert replica.data_paths() == fetched  # nothing more was fetched
    # A different query on a third process reuses the upstream responses it needs.
    ask(cluster.url(_third), query.replace("first: 7", "first: 8"))
    assert len(replica.data_paths()) == 3


def test_concurrent_cold_queries_on_different_processes_fetch_once(
    setup: tuple[ReplicaThread, RedisServer, Cluster],
) -> None:
    replica, _, cluster = setup
    replica.replica.log.clear()
    replica.replica.latency = 0.5
    query = "{ FT_Afstemning(first: 4, where: {id: {gte: 300}}) { nodes { id nummer } } }"
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda port: ask(cluster.url(port), query), cluster.ports * 2))
    finally:
        replica.replica.latency = 0.0
    assert all(a == answers[0] for a in answers)
    assert len(replica.data_paths()) == 1


def test_killing_a_process_mid_load_loses_no_request(
    setup: tuple[ReplicaThread, RedisServer, Cluster],
) -> None:
    _, _, cluster = setup
    victim = cluster.ports[2]
    queries = [
        f"{{ FT_Aktoertype(first: {1 + i % 12}) {{ nodes {{ id type }} }} }}" for i in range(240)
    ]

    def run(query: str) -> int:
        response = httpx.post(cluster.url(), json={"query": query}, timeout=60)
        return response.status_code if "errors" not in response.json() else 599

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(run, q) for q in queries]
        time.sleep(0.3)
        cluster.kill(victim)
        statuses = [f.result() for f in futures]
    assert statuses == [200] * len(queries)


def test_redis_going_away_degrades_and_recovers(
    setup: tuple[ReplicaThread, RedisServer, Cluster],
) -> None:
    replica, redis, cluster = setup
    first, second = cluster.ports[:2]
    redis.stop()
    query = '{ FT_Aktoer(where: {navn: {eq: "Sara Olsvig"}}) { nodes { id } } }'
    assert ask(cluster.url(first), query)["data"]["FT_Aktoer"]["nodes"] == [{"id": 13}]
    log = cluster.logs[first].read_text(encoding="utf-8")
    assert "Redis cache unavailable" in log
    redis.start()
    time.sleep(6)  # the cache tries Redis again after a few seconds
    replica.replica.log.clear()
    shared = "{ FT_Aktoertype(first: 2, where: {id: {gt: 5}}) { nodes { id } } }"
    ask(cluster.url(first), shared)
    ask(cluster.url(second), shared)
    assert len(replica.data_paths()) == 1
