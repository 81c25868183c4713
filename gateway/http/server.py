"""Running an ASGI app on a real loopback socket inside the current event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.types import ASGIApp

__all__ = ["RunningServer", "serve_asgi"]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the owner of the event loop.

    uvicorn's ``serve`` takes over SIGINT and SIGTERM for as long as it runs (a second
    SIGINT then forces an exit that cancels lifespans mid-shutdown) and raises the signal
    again when it stops. Several servers share one loop here: its owner decides when each
    stops (:meth:`RunningServer.stop`).
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningServer:
    """A uvicorn server started by :func:`serve_asgi`."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int
    sock: socket.socket = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, and close."""
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sock.close()


async def serve_asgi(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0 = a free port) and return once it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    # Forwarding headers are the app's business (the gateway trusts only configured
    # proxies): uvicorn must not rewrite the client address from X-Forwarded-For.
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", access_log=False, proxy_headers=False
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what went wrong
            raise RuntimeError("server exited before it started")
        await asyncio.sleep(0.01)
    return RunningServer(server, task, host, sock.getsockname()[1], sock)
