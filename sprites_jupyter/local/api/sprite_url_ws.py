"""WebSocket upgrades on the sprite URL, relayed message by message to the app in the sprite.

The server speaks WebSocket to the browser (uvicorn) and, over the connection
:meth:`~..state.SpriteRuntime.open_connection` gives, to the app (``websockets``'
sans-I/O client). The app's handshake answer decides the browser's: a refusal is
passed back as the app gave it, an acceptance with the app's subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

MAX_MESSAGE = 16 * 1024 * 1024  # as the server's own limit on what browsers send
READ_SIZE = 256 * 1024
HANDSHAKE_TIMEOUT = 30.0
# Sent by the handshake itself, so never copied from the browser's request.
_HANDSHAKE = {b"host", b"sec-websocket-key", b"sec-websocket-version",
              b"sec-websocket-extensions", b"sec-websocket-protocol"}
_UNSENDABLE = {1005: 1000, 1006: 1011}  # close codes a close frame cannot carry
_GONE = (WebSocketDisconnect, RuntimeError, OSError)

Headers = list[tuple[bytes, bytes]]


class AppRefused(Exception):
    """The app did not accept the upgrade; ``response`` is its answer, if it gave one."""

    def __init__(self, response: HandshakeResponse | None) -> None:
        super().__init__("the app refused the WebSocket upgrade")
        self.response = response


async def relay_websocket(websocket: WebSocket, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter, headers: Headers,
                          bad_answer: Response) -> None:
    """Upgrade to the app with the browser's headers, then relay messages both ways.

    ``bad_answer`` is what the browser gets when the app's answer is no HTTP/1.1 response
    (or none comes within ``HANDSHAKE_TIMEOUT``).
    """
    scope = websocket.scope
    target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    host = dict(scope["headers"]).get(b"host", b"localhost").decode("latin-1")
    protocol = ClientProtocol(parse_uri(f"ws://{host}{target}"), max_size=MAX_MESSAGE,
                              subprotocols=[Subprotocol(s) for s in scope.get("subprotocols", ())]
                              or None)
    try:
        answer = await asyncio.wait_for(_handshake(protocol, reader, writer, headers),
                                        HANDSHAKE_TIMEOUT)
    except AppRefused as refused:
        await websocket.send_denial_response(_refusal(refused.response) or bad_answer)
        return
    except (OSError, TimeoutError):
        await websocket.send_denial_response(bad_answer)
        return
    cookies = [(b"set-cookie", v.encode()) for v in answer.headers.get_all("Set-Cookie")]
    await websocket.accept(subprotocol=answer.headers.get("Sec-WebSocket-Protocol"),
                           headers=cookies)
    to_app = asyncio.create_task(_browser_to_app(websocket, protocol, writer))
    to_browser = asyncio.create_task(_app_to_browser(websocket, protocol, reader, writer))
    try:
        await asyncio.wait({to_app, to_browser}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_app, to_browser):
            task.cancel()
        await asyncio.gather(to_app, to_browser, return_exceptions=True)
        with contextlib.suppress(*_GONE):
            await websocket.close(1001, "the app's connection ended")


async def _handshake(protocol: ClientProtocol, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, headers: Headers) -> HandshakeResponse:
    request = protocol.connect()
    for key, value in headers:
        if key not in _HANDSHAKE:
            request.headers[key.decode("latin-1")] = value.decode("latin-1")
    protocol.send_request(request)
    await _flush(protocol, writer)
    while True:
        events = protocol.events_received()
        if protocol.handshake_exc is not None:
            first = events[0] if events else None
            raise AppRefused(first if isinstance(first, HandshakeResponse) else None)
        if events:
            answer = events[0]
            assert isinstance(answer, HandshakeResponse)
            return answer
        await _feed(protocol, reader)


def _refusal(answer: HandshakeResponse | None) -> Response | None:
    if answer is None:
        return None
    kept = {k: v for k, v in answer.headers.raw_items() if k.lower() == "content-type"}
    return Response(bytes(answer.body or b""), status_code=answer.status_code, headers=kept)


async def _feed(protocol: ClientProtocol, reader: asyncio.StreamReader) -> None:
    data = await reader.read(READ_SIZE)
    if data:
        protocol.receive_data(data)
    else:
        protocol.receive_eof()


async def _flush(protocol: ClientProtocol, writer: asyncio.StreamWriter) -> None:
    for data in protocol.data_to_send():
        if data:
            writer.write(data)
        elif writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    await writer.drain()


async def _browser_to_app(websocket: WebSocket, protocol: ClientProtocol,
                          writer: asyncio.StreamWriter) -> None:
    while True:
        message = await websocket.receive()
        try:
            if message["type"] == "websocket.disconnect":
                code = message.get("code") or 1000
                protocol.send_close(_UNSENDABLE.get(code, code), message.get("reason") or "")
                await _flush(protocol, writer)
                return
            if message.get("text") is not None:
                protocol.send_text(message["text"].encode())
            else:
                protocol.send_binary(message.get("bytes") or b"")
        except InvalidState:
            return  # the app is closing: the other direction ends the relay
        await _flush(protocol, writer)


async def _app_to_browser(websocket: WebSocket, protocol: ClientProtocol,
                          reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    parts: list[bytes] = []
    kind = Opcode.BINARY
    while protocol.state is not State.CLOSED and protocol.close_rcvd is None:
        await _feed(protocol, reader)
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                kind, parts = frame.opcode, [bytes(frame.data)]
            elif frame.opcode is Opcode.CONT:
                parts.append(bytes(frame.data))
            else:
                continue  # pings are answered by the protocol; close is handled below
            if frame.fin:
                payload = b"".join(parts)
                parts = []
                if kind is Opcode.TEXT:
                    try:
                        await websocket.send_text(payload.decode())
                    except UnicodeDecodeError:
                        await websocket.close(1007, "the app sent a text message that is "
                                                    "not UTF-8")
                        return
                else:
                    await websocket.send_bytes(payload)
        with contextlib.suppress(OSError):
            await _flush(protocol, writer)
    code = protocol.close_code or 1006
    await websocket.close(_UNSENDABLE.get(code, code), protocol.close_reason or "")
