"""PLACEHOLDER (being written by the exec helper): the TCP proxy socket."""

from starlette.websockets import WebSocket

from ..errors import ApiError


async def proxy_socket(websocket: WebSocket):
    await websocket.send_denial_response(ApiError(404, "not implemented yet").response())
