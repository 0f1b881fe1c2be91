"""PLACEHOLDER (being written by the snapshot helper): checkpoint endpoints."""

from starlette.requests import Request

from ..errors import ApiError


async def create_checkpoint(request: Request):
    raise ApiError(500, "not implemented yet")


list_checkpoints = get_checkpoint = delete_checkpoint = restore_checkpoint = create_checkpoint
