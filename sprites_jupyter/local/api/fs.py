"""PLACEHOLDER: filesystem endpoints."""

from starlette.requests import Request

from ..errors import ApiError


async def read_file(request: Request):
    raise ApiError(500, "not implemented yet")


write_file = list_files = delete_files = rename_file = copy_files = chmod_files = read_file
chown_files = read_file
