"""Running an ASGI app on a real loopback socket inside the current event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

import uvicorn
from starlette.types import ASGIApp

__all__ = ["RunningServer", "serve_asgi"]


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        # The owner of the event loop handles signals; a replica must not steal them.
        pass


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
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what went wrong
            raise RuntimeError("server exited before it started")
        await asyncio.sleep(0.01)
    return RunningServer(server, task, host, sock.getsockname()[1], sock)
