"""A TCP proxy on 127.0.0.1 that tests put between lssed and the moto S3 server to cut the network.

``cut(seconds)`` closes every open connection at once and, for ``seconds``, accepts new ones only to
close them straight away (a peer sees "connection reset" / an empty reply, as when a load balancer or
a NAT drops its state). Afterwards connections are forwarded again. A few lines of asyncio on a
background thread: real sockets, real resets, nothing in lssed knows it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Iterator


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``; ``cut`` drops everything for a while."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted while up
        self.refused = 0  # accepted and dropped while cut
        self._down_until = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "TcpProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TCP proxy did not start")
        return self

    def stop(self) -> None:
        def shutdown() -> None:
            for w in list(self._writers):
                _abort(w)
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_soon(self._loop.stop)

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
            # let the cancelled connection tasks finish, so none is destroyed while pending
            pending = asyncio.all_tasks(self._loop)
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            server.close()

    # ------------------------------------------------------------------ faults
    def cut(self, seconds: float) -> None:
        """Reset every open connection now and refuse new ones for ``seconds``."""
        self._down_until = time.monotonic() + seconds
        done = threading.Event()

        def drop_all() -> None:
            for w in list(self._writers):
                _abort(w)
            self._writers.clear()
            done.set()

        self._loop.call_soon_threadsafe(drop_all)
        done.wait(10)

    @property
    def is_cut(self) -> bool:
        return time.monotonic() < self._down_until

    # ------------------------------------------------------------------ forwarding
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), like a dropped connection, not a polite FIN."""
    import socket
    import struct

    sock = writer.get_extra_info("socket")
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


@contextlib.contextmanager
def tcp_proxy(endpoint_url: str) -> Iterator[TcpProxy]:
    """A running proxy in front of ``http://host:port``."""
    from urllib.parse import urlparse

    parsed = urlparse(endpoint_url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 80).start()
    try:
        yield proxy
    finally:
        proxy.stop()
