"""PLACEHOLDER (being written by the services helper): service endpoints."""

from starlette.requests import Request

from ..errors import ApiError


async def list_services(request: Request):
    raise ApiError(500, "not implemented yet")


signal_service = get_service = put_service = delete_service = list_services
start_service = stop_service = restart_service = service_logs = list_services
