"""``SpriteProvisioner``: the ``jupyter_client`` provisioner that runs ipykernel in a sprite.

It writes a connection file into the sprite (ports 0, the sprite's loopback, this
kernel manager's key), starts ``python -m ipykernel_launcher -f FILE`` there as a
detached exec session in ``/home/sprite``, reads back the ports ipykernel bound, and
forwards five ports on this machine to them. Everything goes through the public Sprites
API (:mod:`sprites_jupyter.client`), so the same kernelspec works with a token on the
real service and on the local backend. The client is synchronous, so every call runs in
a worker thread and Jupyter's event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import KernelProvisionerBase
from traitlets import Float, Unicode

from ..backend import client_from_env
from ..client import Conflict, NotFound, Sprite, SpritesClient, SpritesError
from .channels import CHANNELS, ForwardedChannels
from .errors import KernelStartError
from .in_kernel import RELAY_ENV, RELAY_KEY_ENV, SPRITE_ENV
from .ipykernel_env import kernel_python
from .relay import HOME, RUNTIME_DIR, CheckpointRelay
from .sprite_choice import choose_sprite
from .sprite_process import KernelProcess

PORTS_POLL = 0.05
EXIT_POLL = 0.1
REVIVE_WAIT = 30.0  # for the restore to have stopped the kernel's old process


class SpriteProvisioner(KernelProvisionerBase):
    """Runs the kernel in a sprite; see the module docstring."""

    sprite = Unicode("", config=True,
                     help="The sprite the kernel runs in; empty: chosen per notebook "
                          "(its metadata's sprites.sprite, $SPRITES_KERNEL_SPRITE, 'jupyter').")
    python = Unicode("python3", config=True,
                     help="The interpreter in the sprite; without ipykernel, one is installed "
                          "into a venv there.")
    start_timeout = Float(300.0, config=True,
                          help="Seconds to wait for ipykernel to listen in the sprite "
                               "(installing ipykernel into the sprite counts too).")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: SpritesClient | None = None
        self._process: KernelProcess | None = None
        self._channels: ForwardedChannels | None = None
        self._relay: CheckpointRelay | None = None
        self.sprite_name = ""
        self._remote_file = ""
        self._relay_address = ""
        self._relay_key = secrets.token_hex(16)  # the kernel's, kept across its restarts
        self._how_launched: tuple[list[str], bytes, str] | None = None
        self._reviving = threading.Event()  # a restore replaced the kernel's process

    @property
    def has_process(self) -> bool:
        return self._process is not None

    # -- starting --------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.sprite_name = self.sprite or await asyncio.to_thread(  # reads the notebook
            choose_sprite, kwargs.get("env") or {}, kwargs.get("cwd"))
        self._remote_file = f"{RUNTIME_DIR}/kernel-{self.kernel_id}.json"  # from HOME
        self._relay_address = f"sprites-jupyter-relay-{self.kernel_id}"
        extra = kwargs.pop("extra_arguments", None) or []
        kwargs.pop("transport_encryption", None)
        cmd = [self.python, "-m", "ipykernel_launcher", "-f", self._remote_file, *extra]
        return await super().pre_launch(cmd=cmd, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        if self.parent is None:
            raise KernelStartError("a sprite kernel is started by a KernelManager (its key "
                                   "signs the messages): use jupyter_client's")
        session = self.parent.session
        self._how_launched = (cmd, session.key, session.signature_scheme)
        info = await asyncio.to_thread(self._launch, *self._how_launched)
        self.connection_info = info
        return info

    def _launch(self, cmd: list[str], key: bytes, scheme: str) -> KernelConnectionInfo:
        if self._client is None:
            try:
                self._client = client_from_env(on_wait=self.log.info)
            except SpritesError as error:
                raise KernelStartError(f"cannot reach the Sprites API: {error}") from None
        if self._relay is not None:
            self._relay.wait_idle(self.start_timeout)  # a restore it relayed must finish
        sprite = self._ensure_sprite(self._client)
        try:
            python = kernel_python(sprite, cmd[0], self.log)
        except SpritesError as error:
            raise KernelStartError(f"cannot prepare Python in sprite {sprite.name}: "
                                   f"{error}") from None
        # env(1) adds to the sprite's own environment, which an exec's env would replace
        argv = ["/usr/bin/env", f"{RELAY_ENV}={self._relay_address}",
                f"{RELAY_KEY_ENV}={self._relay_key}", f"{SPRITE_ENV}={sprite.name}",
                python, *cmd[1:]]
        connection = {"ip": "127.0.0.1", "transport": "tcp", "key": key.decode(),
                      "signature_scheme": scheme, "kernel_name": self.kernel_spec.name}
        fresh = dict.fromkeys(CHANNELS, 0)  # ipykernel picks and writes back
        if self._channels is None:
            bound = self._start_process(sprite, argv, {**connection, **fresh})
        else:  # a restart: the same ports, so connected clients carry on
            try:
                bound = self._start_process(sprite, argv,
                                            {**connection, **self._channels.sprite_ports})
            except KernelStartError as error:
                self.log.info("Sprite %s: restarting on the previous ports failed (%s); "
                              "trying new ones", sprite.name, error)
                bound = self._start_process(sprite, argv, {**connection, **fresh})
        self._start_relay(sprite, python)
        if self._channels is not None and self._channels.sprite_ports != bound:
            self._channels.stop()
            self._channels = None
        if self._channels is None:
            self._channels = ForwardedChannels(sprite, bound)
        ports = self._channels.local_ports
        info = KernelConnectionInfo(
            shell_port=ports["shell_port"], iopub_port=ports["iopub_port"],
            stdin_port=ports["stdin_port"], control_port=ports["control_port"],
            hb_port=ports["hb_port"], ip="127.0.0.1", transport="tcp",
            signature_scheme=scheme, kernel_name=self.kernel_spec.name)
        # bytes, as the KernelManager's own connection info has it (and compares it with),
        # though the TypedDict says str
        info["key"] = key  # type: ignore[typeddict-item]
        return info

    def _start_process(self, sprite: Sprite, argv: list[str],
                       connection: dict[str, Any]) -> dict[str, int]:
        """Write the connection file, start ipykernel; the ports it bound."""
        try:
            sprite.write_file(f"{HOME}/{self._remote_file}", json.dumps(connection),
                              mode="0600")
            self.log.info("Starting the kernel in sprite %s: %s", sprite.name, " ".join(argv))
            self._process = KernelProcess(sprite, argv, HOME, self.log)
            return self._bound_ports(sprite, self._process)
        except SpritesError as error:
            self._abandon()
            raise KernelStartError(f"cannot start the kernel in sprite {sprite.name}: "
                                   f"{error}") from None
        except KernelStartError:
            self._abandon()
            raise

    def _start_relay(self, sprite: Sprite, python: str) -> None:
        """The kernel's channel for checkpoint requests; without it the kernel still runs."""
        try:
            if self._relay is None:
                self._relay = CheckpointRelay(sprite.name, self.log,
                                              restoring=self._reviving.set,
                                              restored=self._after_restore)
            self._relay.start(sprite, python, self._relay_address, self._relay_key)
        except (SpritesError, OSError) as error:
            self.log.warning("Sprite %s: no checkpoint channel for the kernel (%s); "
                             "%%sprite checkpoint will not work in it", sprite.name, error)

    def _after_restore(self) -> None:
        threading.Thread(target=self._revive, daemon=True,
                         name=f"sprite kernel {self.sprite_name} revive").start()

    def _revive(self) -> None:
        """After a restore the kernel's notebook asked for, start the kernel again with
        the same ports and key: front ends carry on, with no restart of their own."""
        try:
            old = self._process
            if old is not None:
                if old.wait(REVIVE_WAIT) is None:
                    return  # the restore failed and left the kernel running
                old.stop()
            if self._how_launched is not None:
                self._launch(*self._how_launched)
                self.log.info("Sprite %s: the kernel runs again on the restored sprite",
                              self.sprite_name)
        except (KernelStartError, SpritesError, OSError) as error:
            self.log.error("Sprite %s: the kernel did not come back after the restore (%s); "
                           "Jupyter restarts it", self.sprite_name, error)
        finally:
            self._reviving.clear()

    def _ensure_sprite(self, client: SpritesClient) -> Sprite:
        try:
            try:
                client.get_sprite(self.sprite_name)
            except NotFound:
                self.log.info("Creating sprite %s for the kernel", self.sprite_name)
                with contextlib.suppress(Conflict):  # created meanwhile by another kernel
                    client.create_sprite(self.sprite_name)
        except SpritesError as error:
            raise KernelStartError(f"no sprite for the kernel: {error}") from None
        return client.sprite(self.sprite_name)

    def _bound_ports(self, sprite: Sprite, process: KernelProcess) -> dict[str, int]:
        """The ports ipykernel bound, which it writes back into the connection file."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not process.running:
                said = process.last_words()
                raise KernelStartError(
                    f"the kernel in sprite {sprite.name} exited with code {process.exit_code}"
                    + (f": {said}" if said else "") + " (see the kernel's log)")
            try:
                written = json.loads(sprite.read_file(f"{HOME}/{self._remote_file}"))
                ports = {name: int(written[name]) for name in CHANNELS}
            except NotFound:  # ipykernel removes it as it exits: let the exit show
                process.wait(EXIT_POLL * 10)
                continue
            except (ValueError, KeyError, TypeError):
                ports = {}  # caught mid-write: read again
            if ports and all(ports.values()):
                return ports
            time.sleep(PORTS_POLL)
        raise KernelStartError(f"the kernel in sprite {sprite.name} did not listen within "
                               f"{self.start_timeout:.0f} s: see the kernel's log, or raise "
                               "SpriteProvisioner.start_timeout")

    def _abandon(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._relay is not None:
            self._relay.stop()

    # -- the running kernel ----------------------------------------------------

    async def poll(self) -> int | None:
        if self._reviving.is_set():
            return None  # being started again after a restore
        if self._process is None:
            return 0
        return None if self._process.running else self._process.exit_code

    async def wait(self) -> int | None:
        if self._process is None:
            return 0
        while self._process.running:
            await asyncio.sleep(EXIT_POLL)
        code = self._process.exit_code
        await asyncio.to_thread(self._process.stop)
        self._process = None
        return code

    async def send_signal(self, signum: int) -> None:
        if self._process is not None and signum:
            await asyncio.to_thread(self._process.signal, signum)

    async def kill(self, restart: bool = False) -> None:
        if self._process is not None:
            await asyncio.to_thread(self._process.signal, "KILL")

    async def terminate(self, restart: bool = False) -> None:
        if self._process is not None:
            await asyncio.to_thread(self._process.signal, "TERM")

    async def cleanup(self, restart: bool = False) -> None:
        await asyncio.to_thread(self._cleanup, restart)

    def _cleanup(self, restart: bool) -> None:
        self._abandon()
        if self._client is not None and self._remote_file:
            with contextlib.suppress(SpritesError, OSError):  # gone already: fine
                self._client.sprite(self.sprite_name).delete(f"{HOME}/{self._remote_file}")
        if not restart:
            if self._channels is not None:
                self._channels.stop()
                self._channels = None
            if self._relay is not None:
                self._relay.close()
                self._relay = None
            if self._client is not None:
                self._client.close()
                self._client = None

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, self.start_timeout)
