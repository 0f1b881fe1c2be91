"""Reading NDJSON streams with plain httpx, for the local server's tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


def stream_events(http: httpx.Client, method: str, url: str, **kwargs: Any
                  ) -> tuple[int, list[dict[str, Any]]]:
    """The status and every event of a streamed NDJSON response."""
    with http.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.json()]
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return 200, [json.loads(line) for line in response.iter_lines() if line]
