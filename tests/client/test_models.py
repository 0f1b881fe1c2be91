"""Model parsing: every field kept, datetimes aware, documented variants tolerated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sprites_jupyter.client import (
    Checkpoint,
    FileEntry,
    ProtocolError,
    Service,
    ServiceLogEvent,
    SpriteInfo,
    StreamMessage,
)
from sprites_jupyter.client.http import go_duration
from sprites_jupyter.client.models import parse_time


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-06-02T17:11:14.555839485Z", datetime(2026, 6, 2, 17, 11, 14, 555839, tzinfo=UTC)),
    ("2026-01-13T10:30:00Z", datetime(2026, 1, 13, 10, 30, tzinfo=UTC)),
    ("2026-01-13T10:30:00+02:00", datetime(2026, 1, 13, 8, 30, tzinfo=UTC)),
    ("2026-01-13T10:30:00", datetime(2026, 1, 13, 10, 30, tzinfo=UTC)),
    (1767609000, datetime(2026, 1, 5, 10, 30, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    (None, None),
    ("yesterday", None),
])
def test_parse_time(text: object, expected: datetime | None) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


def test_unknown_fields_are_kept_in_extra() -> None:
    sprite = SpriteInfo.from_json({"name": "a", "org_slug": "acme", "bucket_name": "b",
                                   "config": {"cpus": 8}, "created_at": "2026-01-13T10:30:00Z"})
    assert sprite.organization == "acme"
    assert sprite.extra == {"org_slug": "acme", "bucket_name": "b"}
    assert sprite.config == {"cpus": 8}
    assert sprite.created_at.tzinfo


def test_checkpoint_fields() -> None:
    checkpoint = Checkpoint.from_json({"id": "v3", "create_time": "2026-01-05T10:30:00Z",
                                       "source_id": "v2", "history": ["v0", "v1", "v2"],
                                       "is_auto": False, "health": "mount_failed"})
    assert checkpoint.history == ("v0", "v1", "v2") and checkpoint.health == "mount_failed"
    assert Checkpoint.from_json({"id": "Current"}).comment == ""


def test_events_and_services() -> None:
    event = ServiceLogEvent.from_json({"type": "complete", "timestamp": 1780420276551,
                                       "log_files": {"stdout": "/x"}})
    assert event.timestamp == datetime(2026, 6, 2, 17, 11, 16, 551000, tzinfo=UTC)
    message = StreamMessage.from_json({"type": "error", "error": "disk full", "time": None})
    assert message.text == "disk full" and message.time is None
    service = Service.from_json({"name": "web", "cmd": "python3", "args": ["-m", "x"],
                                 "http_port": 3000, "state": {
                                     "status": "running", "started_at": "0001-01-01T00:00:00Z"}})
    assert service.args == ("-m", "x") and service.state.started_at is None
    assert Service.from_json({"name": "db", "state": None}).state is None


def test_file_entry_defaults_and_modes() -> None:
    entry = FileEntry.from_json({"path": "/a/b", "isDir": True, "modTime": "2026-01-12T21:24:42Z"})
    assert (entry.name, entry.type, entry.mode_bits) == ("b", "directory", 0o755)
    assert FileEntry.from_json({"path": "/f", "mode": "junk"}).mode_bits == 0o644


def test_shapes_that_are_not_objects_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        SpriteInfo.from_json(["not", "an", "object"])
    with pytest.raises(ProtocolError, match="missing"):
        SpriteInfo.from_json({"id": "no name"})


def test_go_duration() -> None:
    assert [go_duration(x) for x in (5, 5.0, 1.5, 0, 0.25, 1e7)] == [
        "5s", "5s", "1.5s", "0s", "0.25s", "10000000s"]
    with pytest.raises(ValueError):
        go_duration(-1)
