"""The one error a sprite kernel's start raises: its message says what to do."""


class KernelStartError(Exception):
    """The kernel could not be started in the sprite."""
