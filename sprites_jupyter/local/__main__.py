"""``sprites-local serve``: run the local Sprites server in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

from .api.app import create_app
from .http_limits import LimitedHttpToolsProtocol
from .storage.home import default_home, resolve_token, write_server_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprites-local",
        description="A local, Sprites-compatible server: a development stand-in, not a sandbox.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; anything else exposes "
                            "command execution to your network)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    serve.add_argument("--home", type=Path, default=None,
                       help="state directory (default $SPRITES_LOCAL_HOME or the user data dir)")
    serve.add_argument("--token", default=None,
                       help="bearer token (default $SPRITES_LOCAL_TOKEN, else HOME/token)")
    serve.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug"])
    return parser


async def _serve(server: uvicorn.Server, sock: socket.socket, home: Path, url: str) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        write_server_file(home, pid=os.getpid(), url=url)
        print(f"Sprites local server listening on {url}", flush=True)
    await task


class _DenialNoiseFilter(logging.Filter):
    """Drop uvicorn's false alarm after a refused WebSocket upgrade.

    uvicorn's websockets-sansio protocol logs "ASGI callable returned without
    completing handshake" even when the app answered the upgrade with an HTTP
    denial response (a 401 or 404), which is how this server refuses upgrades.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing handshake" not in record.getMessage()


def serve(host: str, port: int, home: Path, token: str, log_level: str = "warning") -> None:
    """Serve until interrupted; print the ready line once the socket accepts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (no Nagle delay)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sys.exit(f"sprites-local: cannot listen on {host}:{port}: {exc.strerror}")
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown_host}:{bound_port}"
    app = create_app(home, token, base_url=url)
    config = uvicorn.Config(app, log_level=log_level, http=LimitedHttpToolsProtocol,
                            ws="websockets-sansio",
                            ws_max_size=16 * 1024 * 1024, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_DenialNoiseFilter())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, sock, home, url))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    home = (args.home or default_home()).expanduser().resolve()
    token = resolve_token(home, args.token)
    serve(args.host, args.port, home, token, args.log_level)


if __name__ == "__main__":
    main()
