"""The sprite's filesystem as its processes see it, for the filesystem API.

Everything resolves inside a root directory held as an fd (the sprite's tree, or the
sandbox's view of it), so no sprite process can redirect the server to a host file by
swapping a symlink, a directory or a hard link in; fifos, sockets and devices are
named and refused, never opened for reading or writing.
"""

from .errors import SpriteFsError
from .ids import acting_as
from .tree import TreeEntry
from .view import SpriteView
from .writes import CopyResult, PendingWrite, begin_write, copy

__all__ = ["CopyResult", "PendingWrite", "SpriteFsError", "SpriteView", "TreeEntry",
           "acting_as", "begin_write", "copy"]
