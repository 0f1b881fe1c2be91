"""The checkpoint listing SQLite writes is the same Checkpoint objects a GET of each gives,
newest first, on new databases and on ones made before it had the formatted times."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import httpx

from sprites_jupyter.local.storage.schema import SCHEMA_VERSION
from sprites_jupyter.local.storage.store import Store
from sprites_jupyter.local.wire import rfc3339
from tests.local.ndjson import stream_events

COMMENTS = ["plain", 'line one\nline "two"\ttab \\ back', "é ✓ \u2028 \x7f \x1f", "nul \x00 in it"]

# The schema as it was before the listing was built by SQLite.
_OLD_SCHEMA = """
CREATE TABLE sprites (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, url_settings TEXT NOT NULL,
    labels TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    last_running_at REAL, source_id TEXT NOT NULL DEFAULT 'v0',
    next_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE checkpoints (
    sprite TEXT NOT NULL REFERENCES sprites(name) ON DELETE CASCADE, id TEXT NOT NULL,
    create_time REAL NOT NULL, comment TEXT NOT NULL DEFAULT '', source_id TEXT,
    is_auto INTEGER NOT NULL DEFAULT 0, manifest TEXT NOT NULL, PRIMARY KEY (sprite, id)
);
"""


def test_listing_entries_are_the_checkpoints_as_got(http: httpx.Client, sprite: str) -> None:
    for comment in COMMENTS:
        status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint",
                                       json={"comment": comment})
        assert status == 200 and events[-1]["type"] == "complete", events
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoints/v2/restore")
    assert status == 200 and events[-1]["type"] == "complete", events
    response = http.get(f"/v1/sprites/{sprite}/checkpoints", params={"includeAuto": "true"})
    assert response.headers["content-type"] == "application/json"
    current, *listed = response.json()
    assert current["id"] == "Current" and current["source_id"] == "v2"
    ids = [entry["id"] for entry in listed]
    assert ids[0].startswith("auto-") and ids[1:] == ["v4", "v3", "v2", "v1", "v0"]
    assert [entry["comment"] for entry in listed[1:5]] == COMMENTS[::-1]
    for entry in listed:
        got = http.get(f"/v1/sprites/{sprite}/checkpoints/{entry['id']}").json()
        got.pop("history")
        assert entry == got
    assert "source_id" not in listed[-1] and listed[0]["is_auto"] is True


def test_listing_of_a_sprite_with_only_v0(http: httpx.Client, sprite: str) -> None:
    current, base = http.get(f"/v1/sprites/{sprite}/checkpoints").json()
    assert current["id"] == "Current"
    assert base == {"id": "v0", "create_time": base["create_time"],
                    "comment": "Base (clean) state", "is_auto": False,
                    "changed_bytes": None}


def test_a_database_from_before_is_given_the_formatted_times(tmp_path: Path) -> None:
    # Fractions that round half to even, carry into the next second, or have no digits.
    times = [1767609000 + 1 / 128, 1767609000 + 3 / 128, 1767609000.9999996, 1767609001.0,
             1767609002.123456789, 1767609003.5555555]
    path = tmp_path / "metadata.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(_OLD_SCHEMA)
        old.execute("INSERT INTO sprites VALUES ('s', 'sprite-1', '{}', '[]', 0, 0, NULL, 'v0', "
                    f"{len(times)})")
        old.executemany("INSERT INTO checkpoints VALUES ('s', ?, ?, '', NULL, 0, 'm')",
                        [(f"v{n}", when) for n, when in enumerate(times)])
    old.close()
    store = Store(path)
    try:
        listed = json.loads(store.checkpoints_json("s", include_auto=False))
        added = store.add_checkpoint("s", manifest="m", comment="new", is_auto=False)
        newest = json.loads(store.checkpoints_json("s", include_auto=False))[0]
    finally:
        store.close()
    assert [entry["create_time"] for entry in listed] == [rfc3339(t) for t in times[::-1]]
    assert [entry["id"] for entry in listed] == [f"v{n}" for n in reversed(range(len(times)))]
    assert newest["id"] == added.id and newest["create_time"] == rfc3339(added.create_time)
    assert _layout(path) == (SCHEMA_VERSION, True)


def _layout(path: Path) -> tuple[int, bool]:
    """The database's recorded layout version, and whether it has every column."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in db.execute("PRAGMA table_info(checkpoints)")}
    return version, {"create_time_text", "changed_bytes"} <= columns


def test_a_database_is_upgraded_once_to_the_current_layout(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh.sqlite3", tmp_path / "old.sqlite3"
    Store(fresh).close()
    with contextlib.closing(sqlite3.connect(old)) as db:
        db.executescript(_OLD_SCHEMA)
    assert _layout(old) == (0, False)
    Store(old).close()
    assert _layout(fresh) == _layout(old) == (SCHEMA_VERSION, True)
    marked = tmp_path / "marked.sqlite3"  # the steps go by the marker, not by looking
    with contextlib.closing(sqlite3.connect(marked)) as db:
        db.executescript(_OLD_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    Store(marked).close()
    assert _layout(marked) == (SCHEMA_VERSION, False)


def test_history_filter_keeps_the_checkpoints_descending_from_one(http: httpx.Client,
                                                                  sprite: str) -> None:
    def post(path: str) -> None:
        status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/{path}", json={})
        assert status == 200 and events[-1]["type"] == "complete", events

    for step in ("checkpoint", "checkpoint", "checkpoints/v1/restore", "checkpoint",
                 "checkpoint", "checkpoints/v3/restore", "checkpoint"):
        post(step)  # v1, v2; back to v1: v3, v4; back to v3: v5 (two branches, two autos)
    base = f"/v1/sprites/{sprite}/checkpoints"
    for auto in ("false", "true"):
        listed = [entry["id"] for entry in http.get(base, params={"includeAuto": auto}).json()
                  if entry["id"] != "Current"]
        histories = {cp: http.get(f"{base}/{cp}").json()["history"] for cp in listed}
        for ancestor in listed:
            response = http.get(base, params={"history": ancestor, "includeAuto": auto})
            assert response.headers["content-type"].startswith("text/plain")
            expected = [cp for cp in listed if ancestor in histories[cp]]
            assert response.text.splitlines() == expected, (ancestor, auto)
    lines = http.get(base, params={"history": "v3"}).text.splitlines()
    assert lines == ["v5", "v4"]


def test_history_follows_a_long_chain_in_order_and_stops_at_a_loop(tmp_path: Path) -> None:
    store = Store(tmp_path / "metadata.sqlite3")
    try:
        store.create_sprite("long", url_settings={}, labels=[], base_manifest="m")
        for _ in range(400):
            store.add_checkpoint("long", manifest="m", comment="", is_auto=False)
        newest = store.get_checkpoint("long", "v400")
        assert newest is not None
        assert newest.history == [f"v{n}" for n in range(400)]
        with store.transaction() as db:  # damaged data: v2's source points at v3
            db.execute("UPDATE checkpoints SET source_id = 'v3' WHERE sprite = 'long' "
                       "AND id = 'v2'")
        looped = store.get_checkpoint("long", "v4")
        assert looped is not None and looped.history == ["v2", "v3"]
    finally:
        store.close()
