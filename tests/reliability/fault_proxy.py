"""An asyncio TCP fault proxy, switchable at runtime: pass, latency, reset, blackhole.

Put it between a client and a server (the Rapport server and PostgreSQL; later the
delivery worker and a webhook receiver) and change its mode while traffic flows::

    with FaultProxy("127.0.0.1", 5432) as proxy:      # runs in its own thread
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/test"
        ...
        proxy.set_mode("latency", delay=0.2)          # every chunk waits 200 ms
        proxy.set_mode("reset")                       # RST open connections and new ones
        proxy.set_mode("blackhole")                   # accept, swallow bytes, answer nothing
        proxy.set_mode("pass")

Modes apply to live connections at once (each chunk checks the mode), so a blackhole
freezes a connection mid-query, as a partitioned network does. Command line, for manual
experiments: ``python -m tests.reliability.fault_proxy <listen-port> <host> <port>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "latency", "reset", "blackhole"]


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    bytes_forwarded: int = 0
    modes: list[str] = field(default_factory=list)


class FaultProxy:
    """A TCP proxy to ``target_host:target_port`` on 127.0.0.1:``port`` (0 = any free)."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.stats = ProxyStats()
        self._requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()

    # -- control (any thread) ------------------------------------------------------------
    def set_mode(self, mode: Mode, *, delay: float = 0.0) -> None:
        """Switch mode now; ``reset`` also resets every open connection."""
        self.mode, self.delay = mode, delay
        self.stats.modes.append(mode)
        if mode == "reset" and self._loop is not None:
            self._loop.call_soon_threadsafe(self._reset_all)

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy (its own loop) ------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self._requested_port)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            self._reset_all()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    @staticmethod
    def _rst(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            self.stats.resets += 1
            self._rst(writer)
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        if self.mode == "reset":
            self.stats.resets += 1
            self._rst(writer)
            return
        if self.mode == "blackhole":
            await self._swallow(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._rst(writer)
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.read(65536):
                pass
        self._writers.discard(writer)
        writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                while self.mode == "blackhole":  # noqa: ASYNC110 - mode is set from other threads
                    await asyncio.sleep(0.05)  # hold the bytes: the peer sees silence
                if self.mode == "reset":
                    raise ConnectionResetError
                if self.mode == "latency" and self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(data)
                await dst.drain()
                self.stats.bytes_forwarded += len(data)
        finally:
            with contextlib.suppress(Exception):
                dst.close()


def main() -> None:
    """``python -m tests.reliability.fault_proxy LISTEN_PORT HOST PORT``; then type a mode
    (pass | latency <seconds> | reset | blackhole) on stdin to switch."""
    listen, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with FaultProxy(host, port, listen) as proxy:
        print(f"proxying 127.0.0.1:{proxy.port} -> {host}:{port}; modes on stdin")
        for line in sys.stdin:
            parts = line.split()
            if parts and parts[0] in ("pass", "latency", "reset", "blackhole"):
                delay = float(parts[1]) if len(parts) > 1 else 0.0
                proxy.set_mode(parts[0], delay=delay)  # type: ignore[arg-type]
                print(f"mode {parts[0]}")


if __name__ == "__main__":
    main()
