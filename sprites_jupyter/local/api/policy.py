"""Network policy endpoints (reference section 9).

The policy is stored where the real sprite shows it, ``/.sprite/policy/network.json``
(the sprite's platform directory, read-only inside), so checkpoints capture it and
restores bring it back.
A sandboxed sprite's egress proxy applies a new policy at once (new connections use
it, open ones it denies are cut); unsandboxed, the policy is only stored.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..runtime.egress.sprite_egress import POLICY_FILE
from ..state import state_of
from ..wire import read_json_object
from .errors import ApiError

POLICY_PATH = POLICY_FILE
_ACTIONS = ("allow", "deny")


def validate_policy(document: dict[str, Any]) -> dict[str, Any]:
    """Validate strictly as the reference's section 9.3 says; return it normalised."""
    if set(document) - {"rules"}:
        unknown_keys = ", ".join(sorted(set(document) - {"rules"}))
        raise ApiError(400, f"invalid policy config: unknown key(s) {unknown_keys}")
    if "rules" not in document:
        raise ApiError(400, 'invalid policy config: missing "rules" (use {"rules": []} for none)')
    rules = document["rules"]
    if not isinstance(rules, list):
        raise ApiError(400, 'invalid policy config: "rules" must be a list')
    normalised = []
    for index, rule in enumerate(rules):
        where = f"rule {index}"
        if not isinstance(rule, dict):
            raise ApiError(400, f"invalid policy config: {where} must be an object")
        unknown = set(rule) - {"domain", "action", "include"}
        if unknown:
            raise ApiError(400, f"invalid policy config: {where} has unknown key(s) "
                                f"{', '.join(sorted(unknown))}")
        if ("domain" in rule) == ("include" in rule):
            raise ApiError(400, f"invalid policy config: {where} must set exactly one of "
                                "'domain' or 'include'")
        action = rule.get("action")
        if isinstance(action, str):
            action = action.strip().lower()
        if "include" in rule:
            if rule["include"] != "defaults":
                raise ApiError(400, f"invalid policy config: {where}: the only include is "
                                    "'defaults'")
            if "action" in rule and action not in _ACTIONS:
                raise ApiError(400, f"invalid policy config: {where}: action must be allow "
                                    "or deny")
            normalised.append({"include": "defaults", **({"action": action} if action else {})})
            continue
        domain = rule["domain"]
        if not isinstance(domain, str) or not domain.strip():
            raise ApiError(400, f"invalid policy config: {where}: domain must be a non-empty "
                                "string")
        if action not in _ACTIONS:
            raise ApiError(400, f"invalid policy config: {where}: action must be allow or deny")
        normalised.append({"domain": domain.strip().lower(), "action": action})
    return {"rules": normalised}


async def get_policy(request: Request) -> Response:
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    path = server.runtime(name).files.platform / POLICY_PATH
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        document = {"rules": []}
    return JSONResponse(document)


async def set_policy(request: Request) -> Response:
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    document = validate_policy(await read_json_object(request))
    runtime = server.runtime(name)
    await asyncio.to_thread(_store, runtime.files.platform / POLICY_PATH, document)
    if runtime.egress is not None:
        runtime.egress.set_rules(document["rules"])
    return Response(status_code=204)


def _store(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(document, indent=2) + "\n")
    temp.replace(path)
