"""Sprite management endpoints (reference section 2)."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..domain import sprites as domain
from ..state import SPRITE_NAME, ServerState, state_of
from ..storage.store import ORGANIZATION, SpriteRow, sprite_json
from ..wire import read_json_object
from .errors import ApiError
from .sprite_url import sprite_url

_CREATE_FIELDS = {"name", "url_settings", "wait_for_capacity", "labels", "runtime", "config",
                  "environment"}
_UPDATE_FIELDS = {"url_settings", "labels", "clear_labels"}
_MAX_PAGE = 50
MAX_LABELS = 64
MAX_LABEL_LENGTH = 128


def _status(server: ServerState, row: SpriteRow) -> str:
    runtime_busy = server.has_activity(row.name)
    if runtime_busy:
        return "running"
    return "warm" if row.last_running_at else "cold"


def _body(request: Request, row: SpriteRow) -> dict:
    server = state_of(request)
    return sprite_json(row, url=sprite_url(server.base_url, row.name),
                       status=_status(server, row))


def _url_settings(value: object) -> dict:
    if not isinstance(value, dict) or set(value) - {"auth", "private_access"}:
        raise ApiError(400, 'url_settings must be an object like {"auth": "sprite"}')
    if value.get("auth", "sprite") not in ("sprite", "public"):
        raise ApiError(400, "url_settings.auth must be 'sprite' or 'public'")
    return {"auth": value.get("auth", "sprite"), **{k: v for k, v in value.items() if k != "auth"}}


def _labels(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "labels must be a list of strings")
    if len(value) > MAX_LABELS or any(len(label) > MAX_LABEL_LENGTH for label in value):
        raise ApiError(400, f"too many or too long labels: at most {MAX_LABELS} labels of "
                            f"at most {MAX_LABEL_LENGTH} characters each")
    return value


async def create_sprite(request: Request) -> Response:
    server = state_of(request)
    body = await read_json_object(request)
    unknown = set(body) - _CREATE_FIELDS
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    name = body.get("name")
    if not isinstance(name, str) or not SPRITE_NAME.fullmatch(name):
        raise ApiError(400, f"invalid sprite name {str(name)[:80]!r}: use lowercase letters, "
                            "digits and '-', starting with a letter or digit (at most 63)")
    url_settings = _url_settings(body.get("url_settings", {"auth": "sprite"}))
    labels = _labels(body.get("labels", []))
    row = await domain.create_sprite(server, name, url_settings=url_settings, labels=labels)
    return JSONResponse(_body(request, row), status_code=201)


async def list_sprites(request: Request) -> Response:
    server = state_of(request)
    prefix = request.query_params.get("prefix", "")
    try:
        limit = int(request.query_params.get("max_results", _MAX_PAGE))
    except ValueError:
        raise ApiError(400, "max_results must be an integer") from None
    limit = min(max(limit, 1), _MAX_PAGE)
    after = ""
    token = request.query_params.get("continuation_token")
    if token:
        try:
            after = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            after = ""
        if not after:
            raise ApiError(400, "invalid continuation_token: pass back the one you got") from None
    rows = server.store.list_sprites(prefix=prefix, after=after, limit=limit + 1)
    page, has_more = rows[:limit], len(rows) > limit
    next_token = (base64.urlsafe_b64encode(page[-1].name.encode()).decode()
                  if has_more else None)
    body = {
        "sprites": [_body(request, row) for row in page],
        "has_more": has_more,
        "next_continuation_token": next_token,
    }
    if not token:
        body.update(_counters(server))
    return JSONResponse(body)


def _counters(server: ServerState) -> dict[str, object]:
    """The organisation counters of the first page, in both shapes SDKs read: sprites-go's
    ``org`` object and sprites-py's top-level ``running``/``warm``/``cold``."""
    counts = {"running": 0, "warm": 0, "cold": 0}
    for row in server.store.list_sprites(limit=-1):
        counts[_status(server, row)] += 1
    return {**counts, "org": {"name": ORGANIZATION, **counts}}


async def get_sprite(request: Request) -> Response:
    row = state_of(request).require_sprite(request.path_params["name"])
    return JSONResponse(_body(request, row))


async def update_sprite(request: Request) -> Response:
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    body = await read_json_object(request)
    unknown = set(body) - _UPDATE_FIELDS
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    changes: dict[str, object] = {}
    if "url_settings" in body:
        changes["url_settings"] = _url_settings(body["url_settings"])
    if "labels" in body:
        changes["labels"] = _labels(body["labels"])
    if body.get("clear_labels") is True:
        changes["labels"] = []
    row = server.store.update_sprite(name, **changes)
    if row is None:
        raise ApiError(404, f"sprite not found: {name}")
    return JSONResponse(_body(request, row))


async def delete_sprite(request: Request) -> Response:
    server = state_of(request)
    await domain.delete_sprite(server, request.path_params["name"])
    return Response(status_code=204)


async def upgrade_sprite(request: Request) -> Response:
    state_of(request).require_sprite(request.path_params["name"])
    return Response(status_code=204)
