"""Checkpoints through the client: streamed create and restore, list, get, delete."""

from __future__ import annotations

import pytest

from sprites_jupyter.client import (
    Checkpoint,
    CheckpointStream,
    Conflict,
    NotFound,
    Sprite,
    StreamMessage,
)


def test_create_streams_events_and_yields_the_new_checkpoint(sp: Sprite) -> None:
    sp.write_file("state.txt", "one")
    stream = sp.create_checkpoint("first")
    assert isinstance(stream, CheckpointStream)
    events = list(stream)
    assert all(isinstance(e, StreamMessage) for e in events)
    assert events[-1].type == "complete" and "v1" in events[-1].data
    assert all(e.time is not None and e.time.tzinfo for e in events)
    checkpoint = stream.result
    assert isinstance(checkpoint, Checkpoint)
    assert (checkpoint.id, checkpoint.comment, checkpoint.source_id) == ("v1", "first", "v0")
    assert checkpoint.create_time.tzinfo and not checkpoint.is_auto

    second = sp.create_checkpoint().wait()
    assert second.id == "v2" and second.comment == ""
    assert sp.get_checkpoint("v2") == second


def test_list_hides_current_and_auto_unless_asked(sp: Sprite) -> None:
    sp.create_checkpoint("a").wait()
    sp.create_checkpoint("b").wait()
    listed = sp.list_checkpoints()
    assert [c.id for c in listed] == ["v2", "v1", "v0"]
    assert [c.comment for c in listed[:2]] == ["b", "a"]
    list(sp.restore_checkpoint("v1"))
    ids = [c.id for c in sp.list_checkpoints(include_auto=True)]
    assert "Current" not in ids and {"v2", "v1", "v0"} <= set(ids)
    assert all(i.startswith(("v", "auto-")) for i in ids)


def test_history_filter(sp: Sprite) -> None:
    sp.create_checkpoint("a").wait()
    sp.create_checkpoint("b").wait()
    descendants = {c.id for c in sp.list_checkpoints(history="v1")}
    assert "v2" in descendants and "v0" not in descendants


def test_restore_brings_files_back(sp: Sprite) -> None:
    sp.write_file("state.txt", "before")
    checkpoint = sp.create_checkpoint("before").wait()
    sp.write_file("state.txt", "after")
    sp.write_file("extra.txt", "new")
    with sp.restore_checkpoint(checkpoint.id) as events:
        kinds = [e.type for e in events]
    assert kinds[-1] == "complete" and "info" in kinds
    assert sp.read_file("state.txt") == b"before"
    with pytest.raises(NotFound):
        sp.read_file("extra.txt")
    assert sp.create_checkpoint().wait().source_id == checkpoint.id


def test_unknown_checkpoint_is_not_found(sp: Sprite) -> None:
    with pytest.raises(NotFound):
        sp.get_checkpoint("v99")
    with pytest.raises(NotFound):
        sp.restore_checkpoint("v99")
    with pytest.raises(NotFound):
        sp.delete_checkpoint("v99")


def test_delete(sp: Sprite) -> None:
    sp.create_checkpoint("a").wait()
    sp.create_checkpoint("b").wait()
    sp.delete_checkpoint("v1")
    assert [c.id for c in sp.list_checkpoints()] == ["v2", "v0"]
    with pytest.raises(Conflict):
        sp.delete_checkpoint("Current")
    assert sp.create_checkpoint().wait().id == "v3"
