"""NDJSON streaming answers (Starlette responses): one line per event, or one send per
batch of events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from starlette.responses import StreamingResponse

from ..wire import ndjson_line

__all__ = ["ndjson_batches_response", "ndjson_response"]


def _ndjson_text(event: Mapping[str, Any]) -> str:
    """One NDJSON line as text; output events (type, data, timestamp) the fast way."""
    data, stamp = event.get("data"), event.get("timestamp")
    if len(event) == 3 and type(data) is str and type(stamp) is int:
        return (f'{{"type":{encode_basestring_ascii(event["type"])},'
                f'"data":{encode_basestring_ascii(data)},"timestamp":{stamp}}}\n')
    return json.dumps(event, separators=(",", ":")) + "\n"


def ndjson_batches_response(batches: AsyncIterator[Sequence[Mapping[str, Any]]]
                            ) -> StreamingResponse:
    """Stream batches of events as NDJSON, one send per batch, a turn for others between."""

    async def body() -> AsyncIterator[bytes]:
        async for batch in batches:
            if batch:
                yield "".join(map(_ndjson_text, batch)).encode()
            await asyncio.sleep(0)

    return StreamingResponse(
        body(),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def ndjson_response(events: AsyncIterator[Mapping[str, Any]]) -> StreamingResponse:
    """Stream events as NDJSON, one flushed line per event."""

    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            yield ndjson_line(event)

    return StreamingResponse(
        body(),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
