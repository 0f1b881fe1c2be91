"""frames.py: typed DataFrames from the client's real model classes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sprites_jupyter.client import (
    Checkpoint,
    ExecSession,
    FileEntry,
    PolicyRule,
    Service,
    ServiceState,
    SpriteInfo,
)
from sprites_jupyter.frames import (
    checkpoints_frame,
    exit_codes_frame,
    files_frame,
    policy_frame,
    services_frame,
    sessions_frame,
    sprites_frame,
)

NOW = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)


def _dtypes(frame):
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def test_empty_frames_keep_their_columns_and_dtypes():
    for build, rows in ((checkpoints_frame, [Checkpoint("v1", NOW)]),
                        (services_frame, [Service("web", "python3")]),
                        (sprites_frame, [SpriteInfo("demo")]),
                        (sessions_frame, [ExecSession("12")]),
                        (files_frame, [FileEntry("a")]),
                        (policy_frame, [PolicyRule("x.com", "allow")])):
        assert _dtypes(build([])) == _dtypes(build(rows)), build.__name__


def test_checkpoint_lineage_from_history_or_source():
    frame = checkpoints_frame([
        Checkpoint("v3", NOW, "c", source_id="v1", history=("v0", "v1")),
        Checkpoint("v2", NOW, source_id="v0"),
        Checkpoint("v0", None),
    ])
    assert frame["lineage"].tolist() == ["v0 → v1 → v3", "v0 → v2", ""]
    assert frame["create_time"].isna().tolist() == [False, False, True]
    assert _dtypes(frame)["create_time"] == "datetime64[ns, UTC]"


def test_services_frame_without_state_has_nulls_not_errors():
    frame = services_frame([
        Service("db", "postgres", ("-D", "/data")),
        Service("web", "python3", ("app.py",), needs=("db",), http_port=8080,
                state=ServiceState("web", "running", pid=42, started_at=NOW, restart_count=2)),
    ])
    assert frame.loc["db", "status"] == "" and frame["pid"].isna().tolist() == [True, False]
    assert frame.loc["web", "pid"] == 42 and frame.loc["web", "needs"] == "db"
    assert frame.loc["db", "command"] == "postgres -D /data"
    assert _dtypes(frame)["restart_count"] == "Int64"


def test_sprites_frame_joins_labels():
    frame = sprites_frame([SpriteInfo("demo", status="warm", labels=("ml", "gpu"),
                                      created_at=NOW)])
    assert frame.loc["demo", "labels"] == "ml, gpu"
    assert frame.loc["demo", "created_at"] == NOW


def test_services_frame_shows_the_command_shell_quoted():
    frame = services_frame([Service("web", "sh", ("-c", "echo 'a b'; sleep 1"))])
    assert frame.loc["web", "command"] == "sh -c 'echo '\"'\"'a b'\"'\"'; sleep 1'"


def test_exit_code_durations_are_rounded_to_milliseconds():
    from sprites_jupyter.magic_commands.execution import Outcome

    frame = exit_codes_frame([Outcome("a", 0, 0.03960299599998507)])
    assert frame.loc["a", "duration"] == 0.04


def test_checkpoint_frame_from_a_listing_equals_the_one_from_its_models():
    from pandas.testing import assert_frame_equal

    from sprites_jupyter.client.checkpoint_list import CheckpointList
    objects = [
        {"id": "v3", "create_time": "2026-01-05T10:30:00.5Z", "comment": "c", "source_id": "v1",
         "history": ["v0", "v1"]},
        {"id": "v2", "create_time": "2026-01-05T12:30:00+02:00", "source_id": "v0",
         "is_auto": True},
        {"id": "v0", "comment": None},
    ]
    for chosen in (objects, objects[1:]):  # with and without a history
        listing = CheckpointList(chosen)
        models = [Checkpoint.from_json(item) for item in chosen]
        assert_frame_equal(checkpoints_frame(listing), checkpoints_frame(models))
    frame = checkpoints_frame(CheckpointList(objects))
    assert frame["lineage"].tolist() == ["v0 → v1 → v3", "v0 → v2", ""]
    assert frame["source_id"].tolist() == ["v1", "v0", ""] and frame["comment"].iloc[2] == ""


@pytest.mark.parametrize("times", [
    ["2026-01-05T10:30:00.123456789Z", "2026-01-05T10:29:00Z", "2025-12-31T23:59:59.5Z"],
    ["2026-01-05T10:30:00Z", "0001-01-01T00:00:00Z"],  # Go's zero time: no time
    ["2026-01-05T10:30:00Z", "9999-12-31T23:59:59Z"],  # past what numpy's ns hold
    ["2026-01-05T10:30:00Z", "2026-01-05T10:30:00+02:00"],
    ["2026-01-05T10:30:00Z", None], ["2026-13-45T10:30:00Z", "2026-01-05T10:30:00Z"],
    ["2026-01-05Z", "nowZ"], ["1969-12-31T23:59:59.9999999Z", "1700-01-01T00:00:00Z"],
], ids=["utc", "go-zero", "year-9999", "offset", "missing", "invalid", "no-time", "early"])
@pytest.mark.parametrize("counts", [[None, None], [0, 4096], [None, 12], [-1, "12"]],
                         ids=["none", "counts", "some", "odd"])
def test_checkpoint_frame_of_any_listing_has_the_models_values(times, counts):
    from pandas.testing import assert_frame_equal

    from sprites_jupyter.client.checkpoint_list import CheckpointList
    objects = [{"id": f"v{n}", "create_time": time, "changed_bytes": counts[n % 2]}
               for n, time in enumerate(times)]
    frame = checkpoints_frame(CheckpointList(objects))
    assert_frame_equal(frame, checkpoints_frame([Checkpoint.from_json(o) for o in objects]))
    assert _dtypes(frame)["create_time"] == "datetime64[ns, UTC]"
    assert _dtypes(frame)["changed_bytes"] == "Int64"
