"""The kernel's five ZMQ channels, each a port on this machine forwarded into the sprite.

The forwards outlive a kernel restart (the restarted kernel binds the same ports in the
sprite), so clients already connected to this machine's ports carry on, as they do with
a local kernel; ZMQ reconnects by itself when a tunnel drops.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..client import PortForward, Sprite

CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class ForwardedChannels:
    """One :class:`PortForward` per channel, from ``127.0.0.1`` here to the sprite."""

    def __init__(self, sprite: Sprite, sprite_ports: Mapping[str, int]) -> None:
        self.sprite_ports = {name: int(sprite_ports[name]) for name in CHANNELS}
        self._forwards: dict[str, PortForward] = {}
        try:
            for name in CHANNELS:
                self._forwards[name] = PortForward(sprite, self.sprite_ports[name])
        except BaseException:
            self.stop()
            raise

    @property
    def local_ports(self) -> dict[str, int]:
        return {name: forward.local_port for name, forward in self._forwards.items()}

    @property
    def stopped(self) -> bool:
        return all(forward.stopped for forward in self._forwards.values())

    def stop(self) -> None:
        for forward in self._forwards.values():
            forward.stop()
