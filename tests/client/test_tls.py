"""Our client over TLS, as it talks to the real service (https://, wss://): the local
server behind a TLS relay made for the test, its certificate trusted through
``SSL_CERT_FILE``. Exec and the TCP proxy carry data both ways at once over a TLS
socket (whose writes all go through the connection's writer thread)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.client import ConnectionFailed, SpritesClient, http
from tests.conftest import LocalServer
from tests.local.egress_targets import _throwaway_certificate
from tests.sprite_apps import ECHO, free_port


class TlsRelay:
    """Accepts TLS on a loopback port and relays the plain bytes to ``target``."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        ready = threading.Event()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", target_port)
            await asyncio.gather(pump(reader, upstream_writer),
                                 pump(upstream_reader, writer))

        async def serve() -> None:
            self.server = await asyncio.start_server(relay, "127.0.0.1", self.port,
                                                     ssl=context)
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        assert ready.wait(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def tls_client(server: LocalServer, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[SpritesClient]:
    cert, key = _throwaway_certificate(tmp_path, ["localhost"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    relay = TlsRelay(int(server.url.rsplit(":", 1)[1]), context)
    monkeypatch.setenv("SSL_CERT_FILE", os.fspath(cert))
    http._verifying_tls.cache_clear()  # the process's one TLS context, made with the CA
    try:
        with SpritesClient(server.token, f"https://localhost:{relay.port}") as client:
            yield client
    finally:
        http._verifying_tls.cache_clear()
        relay.close()


def test_exec_over_tls_carries_stdin_and_stdout_at_once(tls_client: SpritesClient,
                                                       sprite: str) -> None:
    sp = tls_client.sprite(sprite)
    assert sp.run("echo", "over tls").stdout == "over tls\n"
    payload = random.Random(3).randbytes(4 * 1024 * 1024).hex()  # 8 MB of text
    result = sp.run("cat", stdin=payload, timeout=120)
    assert result.exit_code == 0
    assert hashlib.sha256(result.stdout.encode()).hexdigest() == \
        hashlib.sha256(payload.encode()).hexdigest()


def test_a_port_over_tls_carries_megabytes_both_ways(tls_client: SpritesClient,
                                                      sprite: str) -> None:
    sp = tls_client.sprite(sprite)
    port = free_port()
    payload = random.Random(5).randbytes(24 * 1024 * 1024)
    with sp.command("python3", "-c", ECHO, str(port), stdin=False):
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = sp.open_port(port)
                break
            except ConnectionFailed:
                assert time.monotonic() < deadline, "the echo service never listened"
                time.sleep(0.05)
        with connection:
            assert isinstance(connection._ws.socket, ssl.SSLSocket)
            sender = threading.Thread(target=lambda: [
                connection.send(payload[at:at + 256 * 1024])
                for at in range(0, len(payload), 256 * 1024)], daemon=True)
            sender.start()
            received = hashlib.sha256()
            size = 0
            while size < len(payload):
                chunk = connection.recv(timeout=60)
                assert chunk, f"the connection ended after {size} bytes"
                received.update(chunk)
                size += len(chunk)
            sender.join(60)
    assert received.hexdigest() == hashlib.sha256(payload).hexdigest()
