"""PLACEHOLDER (being written by the exec helper): exec endpoints."""

from starlette.requests import Request
from starlette.websockets import WebSocket

from ..errors import ApiError


async def list_sessions(request: Request):
    raise ApiError(500, "not implemented yet")


http_exec = get_session = kill_session = list_sessions


async def exec_socket(websocket: WebSocket):
    await websocket.send_denial_response(ApiError(404, "not implemented yet").response())


attach_socket = control_socket = exec_socket
