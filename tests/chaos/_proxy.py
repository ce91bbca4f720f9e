"""A TCP proxy on 127.0.0.1 that adds latency: what a slow (not dead) store looks like to
the service. Every chunk the upstream server sends back is held ``delay`` seconds before
it is passed on (in order), so each round trip through the proxy takes ``delay`` longer;
requests are passed on at once. ``delay`` can be changed while connections are open.

It runs its own event loop in a thread of the runner: a scenario starts it, points a
service at :attr:`LatencyProxy.address`, and sets :attr:`LatencyProxy.delay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from tests.chaos._load import HOST


class LatencyProxy:
    def __init__(self, upstream_port: int, delay: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy",
                                        daemon=True)  # fmt: skip

    @property
    def address(self) -> str:
        """The proxy as ``AUGUR_REDIS_URL`` writes it (``host:port``)."""
        return f"{HOST}:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = fut.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            client_w.close()
            return
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        tasks = [
            asyncio.create_task(self._pump(client_r, up_w)),
            asyncio.create_task(self._hold(up_r, held)),
            asyncio.create_task(self._release(held, client_w)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (client_w, up_w):
                w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _hold(self, reader: asyncio.StreamReader, held: asyncio.Queue) -> None:  # type: ignore[type-arg]
        while data := await reader.read(65536):
            held.put_nowait((time.monotonic() + self.delay, data))
        held.put_nowait((0.0, b""))  # upstream closed

    @staticmethod
    async def _release(held: asyncio.Queue, writer: asyncio.StreamWriter) -> None:  # type: ignore[type-arg]
        while True:
            due, data = await held.get()
            if not data:
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()


__all__ = ["LatencyProxy"]
