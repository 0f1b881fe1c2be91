"""A listing's columns hold exactly what its models hold, for every variant the SDKs
tolerate; it behaves as a sequence of Checkpoints; a real listing arrives as one."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sprites_jupyter.client import Checkpoint, ProtocolError, Sprite
from sprites_jupyter.client.checkpoint_list import CheckpointList, checkpoint_objects, decode

FIELDS = [f.name for f in dataclasses.fields(Checkpoint)]

VARIED = [
    {"id": "v9", "create_time": "2026-06-02T17:11:14.555839485Z", "comment": "nanoseconds",
     "source_id": "v8", "is_auto": False, "changed_bytes": 4096},
    {"id": "v8", "create_time": "2026-01-13T10:30:00+02:00", "history": ["v0", 7],
     "changed_bytes": None},
    {"id": "v7", "create_time": "2026-01-13T10:30:00", "comment": None, "health": None,
     "changed_bytes": "12"},
    {"id": 6, "create_time": 1767609000, "is_auto": 1, "health": "mount_failed",
     "changed_bytes": True},
    {"id": "auto-1776191193888", "create_time": "0001-01-01T00:00:00Z", "is_auto": True,
     "bucket": "b", "size": 12},
    {"id": "v0", "create_time": "yesterday", "source_id": None, "history": []},
    {"id": "v00"},
]
ISO_ONLY = [{"id": f"v{n}", "create_time": f"2026-01-0{n}T10:30:00.{n:06d}Z", "comment": ""}
            for n in range(1, 6)]


COUNTED = [{**item, "changed_bytes": n * 4096} for n, item in enumerate(ISO_ONLY)]
NEGATIVE = [*COUNTED, {"id": "v0", "changed_bytes": -1}]
NAIVE = [{"id": "v1", "create_time": "2026-01-13T10:30:00"}]
ZERO = [{"id": "v1", "create_time": "0001-01-01T00:00:00Z"}]


@pytest.mark.parametrize("objects", [VARIED, ISO_ONLY, VARIED[:1], [], ISO_ONLY + ZERO,
                                     NAIVE, ISO_ONLY + NAIVE, COUNTED, NEGATIVE],
                         ids=["varied", "plain", "one", "empty", "go-zero", "naive", "mixed",
                              "counted", "negative-count"])
def test_columns_are_the_models_values(objects: list[dict]) -> None:
    listing = CheckpointList([dict(item) for item in objects])
    models = [Checkpoint.from_json(item) for item in objects]
    for field in FIELDS:
        assert listing.column(field) == [getattr(m, field) for m in models], field
    assert list(listing) == models


def test_odd_times_and_ids_as_the_models_have_them() -> None:
    listing = CheckpointList(VARIED)
    times = listing.column("create_time")
    assert times[1].utcoffset().total_seconds() == 7200 and times[2].tzinfo is not None
    assert times[4] is None and times[5] is None and times[6] is None
    assert listing.column("id")[3] == "6" and listing[1].history == ("v0", "7")
    assert listing[4].extra == {"bucket": "b", "size": 12} and listing[0].extra == {}
    assert listing.column("changed_bytes") == [4096, None, None, None, None, None, None]


def test_unknown_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no field 'created'.*create_time"):
        CheckpointList(ISO_ONLY).column("created")


def test_a_sequence_of_checkpoints() -> None:
    objects = [{"id": f"v{n}", "create_time": "2026-01-05T10:30:00Z"} for n in range(12, 0, -1)]
    listing = CheckpointList(objects)
    assert len(listing) == 12 and listing[0].id == "v12" and listing[-1].id == "v1"
    assert listing[0] is listing[0]  # made once
    head = listing[:2]
    assert isinstance(head, CheckpointList) and [c.id for c in head] == ["v12", "v11"]
    assert listing == [Checkpoint.from_json(item) for item in objects] and listing != head
    assert Checkpoint.from_json(objects[3]) in listing
    shown = repr(listing)
    assert shown.startswith("[Checkpoint(v12, ") and shown.endswith(", … 2 more]")
    with pytest.raises(IndexError):
        listing[12]


def test_values_as_sent_and_a_selection_without_models() -> None:
    listing = CheckpointList(VARIED)
    assert listing.values("create_time") == [item.get("create_time") for item in VARIED]
    assert listing.values("bucket") == [None, None, None, None, "b", None, None]
    kept = listing.where([True, False] * 3 + [True])
    assert isinstance(kept, CheckpointList)
    assert kept.column("id") == ["v9", "v7", "auto-1776191193888", "v00"]
    assert kept[1] == Checkpoint.from_json(VARIED[2])
    assert len(listing.where(iter(()))) == 0


def test_objects_of_a_listing() -> None:
    body = [{"id": "Current"}, {"id": "v2"}, "junk", None, {"id": "v1"}]
    assert checkpoint_objects(body, skip="Current", what="list") == [{"id": "v2"}, {"id": "v1"}]
    body = [{"id": "v2"}, {"id": "Current"}, {"id": None}, {"id": "Current"}]
    assert checkpoint_objects(body, skip="Current", what="list") == [{"id": "v2"}, {"id": None}]
    assert checkpoint_objects([{"id": "v1"}], skip="Current", what="list") == [{"id": "v1"}]
    with pytest.raises(ProtocolError, match="list: a checkpoint without an id: "):
        checkpoint_objects([{"id": "v1"}, {"comment": "x"}], skip="Current", what="list")
    with pytest.raises(ProtocolError, match="expected a JSON array"):
        checkpoint_objects({"id": "v1"}, skip="Current", what="list")


def test_a_real_listing_is_a_checkpoint_list(sp: Sprite) -> None:
    sp.create_checkpoint("one").wait()
    listed = sp.list_checkpoints()
    assert isinstance(listed, CheckpointList)
    assert listed.column("id") == ["v1", "v0"] and listed.column("comment")[0] == "one"
    assert listed[0] == dataclasses.replace(sp.get_checkpoint("v1"), history=())


def test_decode_reads_what_orjson_refuses_as_the_standard_library_does() -> None:
    assert decode(b'[{"id": "v1", "comment": "\\u00e9"}]') == [{"id": "v1", "comment": "é"}]
    odd = b'[NaN, 18446744073709551616, "\\ud800"]'
    assert repr(decode(odd)) == repr(json.loads(odd))
    with pytest.raises(ValueError):
        decode(b"[{")
