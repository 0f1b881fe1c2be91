"""``sprites-local serve|status|stop``: run a local server, list those running, stop one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import uvicorn

from . import registry
from .api.app import create_app, server_state
from .http_limits import LimitedHttpToolsProtocol
from .idle import IdleWatch
from .runtime.egress.addresses import ALLOW_PRIVATE_ENV, PrivateAllowance, parse_ip
from .runtime.sandbox.bwrap import SandboxUnavailable, detect
from .runtime.sandbox.cgroups import SpriteCgroups, clean_recorded
from .runtime.sandbox.disks import MIN_DISK, default_disk_bytes, private_mount_namespace
from .runtime.sandbox.limits import SpriteLimits, parse_size, size_text
from .runtime.sandbox.machine import Isolation
from .storage.home import (
    AlreadyServing,
    default_home,
    hold_serve_lock,
    resolve_token,
    write_server_file,
)

_STOP_WAIT = 15.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprites-local",
        description="A local, Sprites-compatible server: each sprite runs in its own "
                    "bubblewrap sandbox (or, where none can be made, in a directory).",
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
    serve.add_argument("--isolation", default="auto", choices=["auto", "sandbox", "none"],
                       help="sandbox: every sprite in its own bubblewrap sandbox, fail if "
                            "that is impossible; none: sprites are directories on the host; "
                            "auto (default): sandbox when possible, else none with a warning")
    serve.add_argument("--allow-private-hosts", metavar="HOSTS",
                       default=os.environ.get(ALLOW_PRIVATE_ENV, ""),
                       help="host names (mirror.corp, *.corp) and addresses or CIDRs "
                            "(10.1.0.0/16), space or comma separated, in private or reserved "
                            "ranges that sprites may reach, such as a company package mirror "
                            f"(default ${ALLOW_PRIVATE_ENV}); never this host's loopback nor "
                            "the server's own address; the sprite's policy still applies")
    serve.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug"])
    defaults = SpriteLimits()
    serve.add_argument("--max-processes", type=_count, default=defaults.processes, metavar="N",
                       help="processes (and threads) per sandboxed sprite (a cgroup's "
                            "pids.max where the server can make one, and RLIMIT_NPROC); "
                            "beyond, fork fails with EAGAIN and exec says so (default "
                            f"{defaults.processes}; 0: no limit)")
    serve.add_argument("--max-memory", type=_size, default=defaults.memory_bytes,
                       metavar="SIZE", help="memory of a sandboxed sprite: its total by "
                                            "cgroup where the server can make one (root on "
                                            "cgroup v1, a delegated cgroup v2), and each "
                                            "process's (RLIMIT_DATA); e.g. 2G; default half "
                                            "the host's memory, at most 8G; 0: no limit")
    serve.add_argument("--service-log-max", type=_size, default=defaults.service_log_bytes,
                       metavar="SIZE", help="size at which a service's log is rotated (one "
                                            "older file kept; default 10M; 0: never)")
    serve.add_argument("--max-disk", type=_size, default=None, metavar="SIZE",
                       help="disk per sprite made by a root server: each new sprite gets an "
                            "ext4 image of its own, and writes past SIZE fail with ENOSPC "
                            "(default 100G, as a real sprite has, at most a quarter of the "
                            "home's filesystem; at least 32M; 0: no limit). An unprivileged "
                            "server cannot limit disk and says so at start")
    serve.add_argument("--idle-exit", type=float, default=0.0, metavar="S",
                       help="exit after S seconds without clients or sprite activity "
                            "(default 0: never; servers started by kernels use 1800)")
    status = commands.add_parser("status", help="list the local servers running on this "
                                                "machine (home, URL, pid, sprites, uptime)")
    status.set_defaults(handler=lambda args: show_status())
    stop = commands.add_parser("stop", help="stop the server of a home (default: the "
                                            "default home) or with a pid")
    stop.add_argument("--home", type=Path, default=None,
                      help="the server's state directory (default $SPRITES_LOCAL_HOME or "
                           "the user data dir)")
    stop.add_argument("--pid", type=int, default=None, help="the server's process id")
    stop.set_defaults(handler=lambda args: stop_server(args.home, args.pid))
    return parser


async def _serve(server: uvicorn.Server, sock: socket.socket, home: Path, url: str,
                 idle: IdleWatch, idle_exit: float, limits: str) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        try:
            write_server_file(home, pid=os.getpid(), url=url)
        except OSError as exc:  # a full disk: serve anyway (reads and deletes still work)
            print(f"sprites-local: could not record this server in {home} "
                  f"({exc.strerror}): the extension will not find it by itself",
                  file=sys.stderr, flush=True)
        registry.register(pid=os.getpid(), url=url, home=home, limits=limits)
        print(f"Sprites local server listening on {url}", flush=True)
    watcher = None
    if idle_exit > 0:
        watcher = asyncio.create_task(
            idle.exit_when_idle(idle_exit, lambda: setattr(server, "should_exit", True)))
    try:
        await task
    finally:
        registry.unregister(os.getpid())
        if watcher is not None:
            watcher.cancel()


class _DenialNoiseFilter(logging.Filter):
    """Drop uvicorn's false alarm after a refused WebSocket upgrade.

    uvicorn's websockets-sansio protocol logs "ASGI callable returned without
    completing handshake" even when the app answered the upgrade with an HTTP
    denial response (a 401 or 404), which is how this server refuses upgrades.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing handshake" not in record.getMessage()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count: give a whole number, 0 "
                                         "for no limit")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give bytes or a number "
                                         "with K, M, G or T (e.g. 512M), 0 for no limit"
                                         ) from None


def choose_isolation(mode: str, limits: SpriteLimits | None = None) -> Isolation:
    """The isolation for ``--isolation MODE``; ``sandbox`` exits when none can be made,
    ``auto`` then warns once on stderr and runs sprites unsandboxed. Sandboxed sprites
    get ``limits`` (:func:`serve` says once what they are and what is not limited)."""
    limits = limits or SpriteLimits()
    if mode == "none":
        return Isolation(None, "--isolation none", limits)
    try:
        return Isolation(detect(), limits=limits)
    except SandboxUnavailable as exc:
        if mode == "sandbox":
            sys.exit(f"sprites-local: --isolation sandbox: {exc}")
        print(f"sprites-local: warning: sprites run UNSANDBOXED on this host ({exc}); "
              "their commands can read and change your files", file=sys.stderr, flush=True)
        return Isolation(None, str(exc), limits)


def own_addresses(host: str) -> list:
    """The addresses this server answers on: ``host``, or for a wildcard this machine's."""
    address = parse_ip(host)
    if address is not None and not address.is_unspecified:
        return [address]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return [] if address is None else [address]
    return [a for a in (parse_ip(str(info[4][0])) for info in infos) if a is not None]


def serve(host: str, port: int, home: Path, token: str, log_level: str = "warning",
          idle_exit: float = 0.0, isolation: Isolation | None = None,
          private_allowed: PrivateAllowance | None = None) -> None:
    """Serve until interrupted (or idle for ``idle_exit`` s); print the ready line once
    the socket accepts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (no Nagle delay)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sys.exit(f"sprites-local: cannot listen on {host}:{port}: {exc.strerror}")
    bound_port = sock.getsockname()[1]
    notice = isolation.limits_notice() if isolation is not None else ""
    if notice:
        print(f"sprites-local: {notice}", file=sys.stderr, flush=True)
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown_host}:{bound_port}"
    api = create_app(home, token, base_url=url, isolation=isolation,
                     private_allowed=private_allowed)
    app = IdleWatch(api, server_state(api).busy)
    config = uvicorn.Config(app, log_level=log_level, http=LimitedHttpToolsProtocol,
                            ws="websockets-sansio",
                            ws_max_size=16 * 1024 * 1024, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_DenialNoiseFilter())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, sock, home, url, app, idle_exit,
                           notice or "sprites unsandboxed: no limits"))


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


def show_status() -> None:
    """Print a table of the running local servers."""
    servers = registry.running_servers()
    if not servers:
        print("No local Sprites server is running.")
        return
    rows = [("HOME", "URL", "PID", "SPRITES", "UPTIME")]
    rows += [(str(s.home), s.url, str(s.pid), str(s.sprites), _duration(s.uptime))
             for s in servers]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                        ).rstrip())
    limited = [server for server in servers if server.limits]
    if limited:
        print("\nWhat each server's sprites may use:")
        for server in limited:
            print(f"  {server.home}: {server.limits.removeprefix('sprite limits: ')}")


def stop_server(home: Path | None, pid: int | None) -> None:
    """Stop one server (SIGTERM, as Ctrl-C would) and wait for it to end."""
    servers = registry.running_servers()
    if pid is not None:
        chosen = [s for s in servers if s.pid == pid]
        what = f"pid {pid}"
    else:
        where = (home or default_home()).expanduser().resolve()
        chosen = [s for s in servers if s.home == where]
        what = f"home {where}"
    if not chosen:
        print(f"No local Sprites server is running for {what} (sprites-local status "
              "lists those that are)")
        return
    server = chosen[0]
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT
    while registry.is_alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if registry.is_alive(server.pid):
        sys.exit(f"sprites-local: the server (pid {server.pid}) did not exit within "
                 f"{_STOP_WAIT:g} s")
    print(f"Stopped the local Sprites server for {server.home} (pid {server.pid}, {server.url})")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if getattr(args, "handler", None) is not None:
        args.handler(args)
        return
    home = (args.home or default_home()).expanduser().resolve()
    try:
        lock = hold_serve_lock(home)
    except AlreadyServing as exc:
        sys.exit(f"sprites-local: {exc}")
    try:
        private_allowed = PrivateAllowance.parse(args.allow_private_hosts,
                                                 own_addresses(args.host))
    except ValueError as exc:
        sys.exit(f"sprites-local: --allow-private-hosts: {exc}")
    token = resolve_token(home, args.token)
    disk = default_disk_bytes(home) if args.max_disk is None else args.max_disk
    if 0 < disk < MIN_DISK:
        sys.exit(f"sprites-local: --max-disk {size_text(disk)} is too small for a sprite's "
                 "disk: give at least 32M (0: no limit)")
    isolation = choose_isolation(args.isolation, SpriteLimits(
        args.max_processes, args.max_memory, args.service_log_max, disk))
    if isolation.sandboxed and disk:
        isolation = dataclasses.replace(isolation, disk_unlimited=private_mount_namespace())
    with lock:
        if isolation.sandboxed:
            isolation = dataclasses.replace(isolation, cgroups=SpriteCgroups.set_up(
                home, isolation.limits.memory_bytes, isolation.limits.processes, reap=True))
        else:
            clean_recorded(home)  # what a killed sandboxing server of this home left
        try:
            serve(args.host, args.port, home, token, args.log_level, args.idle_exit,
                  isolation, private_allowed)
        finally:
            isolation.cgroups.close(home)


if __name__ == "__main__":
    main()
