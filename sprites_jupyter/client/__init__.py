"""The Sprites API client: REST and NDJSON streams over httpx, exec over WebSocket."""

from .checkpoint_list import CheckpointList
from .checkpoints import CheckpointStream
from .client import SpritesClient
from .counters import SpriteCounts
from .errors import (
    AuthError,
    Conflict,
    ConnectionFailed,
    ExecError,
    ExecTimeout,
    HTTPStatusError,
    InvalidRequest,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    SpritesError,
    StreamError,
)
from .exec import Command
from .exec_http import HttpExecResult
from .forward import PortForward
from .models import (
    Checkpoint,
    ExecResult,
    ExecSession,
    FileEntry,
    KillEvent,
    NetworkPolicy,
    OutputChunk,
    PolicyRule,
    Service,
    ServiceLogEvent,
    ServiceState,
    SpriteInfo,
    StreamMessage,
)
from .proxy import PortConnection
from .sign_in import sign_in_link
from .sprite import Sprite
from .streams import EventStream

__all__ = [
    "AuthError",
    "Checkpoint",
    "CheckpointList",
    "CheckpointStream",
    "Command",
    "Conflict",
    "ConnectionFailed",
    "EventStream",
    "ExecError",
    "ExecResult",
    "ExecSession",
    "ExecTimeout",
    "FileEntry",
    "HTTPStatusError",
    "HttpExecResult",
    "InvalidRequest",
    "KillEvent",
    "NetworkPolicy",
    "NotFound",
    "OutputChunk",
    "PolicyRule",
    "PortConnection",
    "PortForward",
    "ProtocolError",
    "RateLimited",
    "ServerError",
    "Service",
    "ServiceLogEvent",
    "ServiceState",
    "Sprite",
    "SpriteCounts",
    "SpriteInfo",
    "SpritesClient",
    "SpritesError",
    "StreamError",
    "StreamMessage",
    "sign_in_link",
]
