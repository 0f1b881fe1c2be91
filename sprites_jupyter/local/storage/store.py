"""SQLite metadata: sprites and their checkpoints.

File data lives in the snapshot object store (``snapshots.py``); this database
only says which sprites and checkpoints exist. Every write is one transaction,
so a server killed mid-operation leaves the database as it was before it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..wire import rfc3339
from .schema import create_or_upgrade

ORGANIZATION = "local"

log = logging.getLogger("sprites_jupyter.local")

# One Checkpoint object of the listing (see ``checkpoint_json``), made by SQLite.
_IS_AUTO_JSON = "json(CASE WHEN is_auto THEN 'true' ELSE 'false' END)"
_OBJECT_SQL = ("json_object('id', id, 'create_time', create_time_text, 'comment', comment, "
               f"'is_auto', {_IS_AUTO_JSON}, 'changed_bytes', changed_bytes")
_LIST_JSON = (f"SELECT CAST(CASE WHEN source_id IS NULL OR source_id = '' THEN {_OBJECT_SQL})"
              f" ELSE {_OBJECT_SQL}, 'source_id', source_id) END AS BLOB) FROM checkpoints"
              " WHERE sprite = ? AND (? OR is_auto = 0) ORDER BY create_time DESC, rowid DESC")


@dataclass(frozen=True)
class SpriteRow:
    """A sprite as stored."""

    name: str
    id: str
    url_settings: dict[str, Any]
    labels: list[str]
    created_at: float
    updated_at: float
    last_running_at: float | None
    source_id: str
    next_version: int


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint as stored; ``manifest`` names its snapshot manifest object."""

    sprite: str
    id: str
    create_time: float
    comment: str
    source_id: str | None
    is_auto: bool
    manifest: str
    history: list[str] = field(default_factory=list)
    changed_bytes: int | None = None


class Store:
    """Thread-safe access to the metadata database at ``path``."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        for private in (path, path.with_name(path.name + "-wal"),
                        path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                private.chmod(0o600)  # SQLite gives its -wal and -shm the database's mode
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            self._db = self._connect(path)
        except sqlite3.OperationalError as exc:
            # On a full disk SQLite cannot make the -shm file WAL needs; exclusive locking
            # keeps that index in memory instead (one server per home holds the database).
            log.warning("opening the database with exclusive locking: %s", exc)
            self._db = self._connect(path, exclusive=True)
        self._reader, self._reader_lock = self._open_reader(path)

    def _open_reader(self, path: Path) -> tuple[sqlite3.Connection, threading.RLock]:
        """A second connection for long reads, so they hold up no write or quick read.

        WAL lets it read the last commit while the main connection writes; with
        exclusive locking (the full-disk fallback) only the main connection can read.
        """
        if self._db.execute("PRAGMA locking_mode").fetchone()[0] == "exclusive":
            return self._db, self._lock
        reader = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                 check_same_thread=False, isolation_level=None)
        return reader, threading.RLock()

    @staticmethod
    def _connect(path: Path, *, exclusive: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            if exclusive:
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            # With WAL this never corrupts the database and a killed server loses nothing;
            # only a power cut may undo the last commits, and a commit waits for no fsync.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            create_or_upgrade(db)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._reader_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction (BEGIN IMMEDIATE … COMMIT, rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # sprites -------------------------------------------------------------

    def create_sprite(self, name: str, *, url_settings: dict[str, Any], labels: list[str],
                      base_manifest: str) -> SpriteRow:
        """Insert a sprite together with its seeded ``v0`` checkpoint."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sprites (name, id, url_settings, labels, created_at, updated_at,"
                " source_id, next_version) VALUES (?, ?, ?, ?, ?, ?, 'v0', 1)",
                (name, f"sprite-{uuid.uuid4()}", json.dumps(url_settings), json.dumps(labels),
                 now, now),
            )
            db.execute(
                "INSERT INTO checkpoints (sprite, id, create_time, create_time_text, comment,"
                " source_id, is_auto, manifest)"
                " VALUES (?, 'v0', ?, ?, 'Base (clean) state', NULL, 0, ?)",
                (name, now, rfc3339(now), base_manifest),
            )
        row = self.get_sprite(name)
        assert row is not None
        return row

    def get_sprite(self, name: str) -> SpriteRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM sprites WHERE name = ?", (name,)).fetchone()
        return _sprite(row) if row else None

    def list_sprites(self, prefix: str = "", after: str = "", limit: int = 50) -> list[SpriteRow]:
        """Sprites by name: those starting with ``prefix`` that sort after ``after``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM sprites WHERE name >= ? AND name > ? AND substr(name, 1, ?) = ?"
                " ORDER BY name LIMIT ?",
                (prefix, after, len(prefix), prefix, limit),
            ).fetchall()
        return [_sprite(r) for r in rows]

    def update_sprite(self, name: str, **values: Any) -> SpriteRow | None:
        """Set the given columns (``url_settings``/``labels`` as Python values)."""
        encoded = {k: json.dumps(v) if k in ("url_settings", "labels") else v
                   for k, v in values.items()}
        encoded["updated_at"] = time.time()
        assignments = ", ".join(f"{column} = ?" for column in encoded)
        with self.transaction() as db:
            db.execute(f"UPDATE sprites SET {assignments} WHERE name = ?",
                       (*encoded.values(), name))
        return self.get_sprite(name)

    def touch_running(self, name: str) -> None:
        """Note that the sprite ran; best effort, so a full disk never fails a read or exec."""
        with self._lock:
            try:
                self._db.execute("UPDATE sprites SET last_running_at = ? WHERE name = ?",
                                 (time.time(), name))
            except sqlite3.OperationalError as exc:
                log.warning("could not record that %s ran: %s", name, exc)

    def delete_sprite(self, name: str) -> None:
        """Forget the sprite; its checkpoints' manifests are released (:meth:`released`)."""
        with self.transaction() as db:
            db.execute("INSERT INTO released (manifest) SELECT manifest FROM checkpoints"
                       " WHERE sprite = ?", (name,))
            db.execute("DELETE FROM checkpoints WHERE sprite = ?", (name,))
            db.execute("DELETE FROM sprites WHERE name = ?", (name,))

    # checkpoints ---------------------------------------------------------

    def add_checkpoint(self, sprite: str, *, manifest: str, comment: str, is_auto: bool,
                       auto_id: str | None = None,
                       changed_bytes: int | None = None) -> CheckpointRow:
        """Record a checkpoint atomically: ``vN`` from the sprite's counter, or ``auto_id``.

        The new checkpoint's ``source_id`` is the checkpoint the live state descends
        from; afterwards the live state descends from the new one. ``changed_bytes`` is
        what its snapshot stored anew (the panel's size of change).
        """
        now = time.time()
        with self.transaction() as db:
            sprite_row = db.execute(
                "SELECT source_id, next_version FROM sprites WHERE name = ?", (sprite,)
            ).fetchone()
            if sprite_row is None:
                raise KeyError(sprite)
            if is_auto:
                assert auto_id is not None
                checkpoint_id = auto_id
            else:
                checkpoint_id = f"v{sprite_row['next_version']}"
                db.execute("UPDATE sprites SET next_version = next_version + 1 WHERE name = ?",
                           (sprite,))
            db.execute(
                "INSERT INTO checkpoints (sprite, id, create_time, create_time_text, comment,"
                " source_id, is_auto, manifest, changed_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sprite, checkpoint_id, now, rfc3339(now), comment, sprite_row["source_id"],
                 int(is_auto), manifest, changed_bytes),
            )
            if not is_auto:
                db.execute("UPDATE sprites SET source_id = ? WHERE name = ?",
                           (checkpoint_id, sprite))
        row = self.get_checkpoint(sprite, checkpoint_id)
        assert row is not None
        return row

    def get_checkpoint(self, sprite: str, checkpoint_id: str) -> CheckpointRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM checkpoints WHERE sprite = ? AND id = ?", (sprite, checkpoint_id)
            ).fetchone()
            if row is None:
                return None
            return _checkpoint(row, self._history(sprite, row["source_id"]))

    def list_checkpoints(self, sprite: str, *, include_auto: bool,
                         limit: int = -1) -> list[CheckpointRow]:
        """Newest first; the first ``limit`` (all when negative)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM checkpoints WHERE sprite = ? AND (? OR is_auto = 0)"
                " ORDER BY create_time DESC, rowid DESC LIMIT ?",
                (sprite, int(include_auto), limit),
            ).fetchall()
        return [_checkpoint(r, []) for r in rows]

    def checkpoints_json(self, sprite: str, *, include_auto: bool) -> bytes:
        """The sprite's checkpoints as a JSON array, newest first, each object as
        :func:`checkpoint_json` makes it; SQLite writes the JSON (4x faster than Python)
        on the reading connection. Blocking: call it off the event loop."""
        with self._reader_lock:
            objects = self._reader.execute(_LIST_JSON, (sprite, int(include_auto))).fetchall()
        return b"[" + b",".join(text for (text,) in objects) + b"]"

    def descendants(self, sprite: str, ancestor: str, *, include_auto: bool) -> list[str]:
        """Ids, newest first, of the checkpoints whose history holds ``ancestor``: one
        read, each ancestry walked once. Blocking: call it off the event loop."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT id, source_id, is_auto FROM checkpoints WHERE sprite = ?"
                " ORDER BY create_time DESC, rowid DESC", (sprite,)).fetchall()
        parents = {checkpoint_id: source for checkpoint_id, source, _ in rows}
        known: dict[str, bool] = {}

        def descends(checkpoint_id: str) -> bool:
            path: list[str] = []
            node: str | None = checkpoint_id
            found = False
            while node is not None and node not in known:
                known[node] = False  # for now: a loop in the links ends here
                path.append(node)
                parent = parents.get(node)
                if parent == ancestor:
                    found = True
                    break
                node = parent
            else:
                found = node is not None and known[node]
            known.update(dict.fromkeys(path, found))
            return found

        return [checkpoint_id for checkpoint_id, _, is_auto in rows
                if (include_auto or not is_auto) and descends(checkpoint_id)]

    def delete_checkpoint(self, sprite: str, checkpoint_id: str) -> None:
        """Forget the checkpoint; its manifest is released (:meth:`released`)."""
        with self.transaction() as db:
            db.execute("INSERT INTO released (manifest) SELECT manifest FROM checkpoints"
                       " WHERE sprite = ? AND id = ?", (sprite, checkpoint_id))
            db.execute("DELETE FROM checkpoints WHERE sprite = ? AND id = ?",
                       (sprite, checkpoint_id))

    def set_source(self, sprite: str, checkpoint_id: str) -> None:
        """After a restore: the live state now descends from ``checkpoint_id``."""
        with self.transaction() as db:
            db.execute("UPDATE sprites SET source_id = ?, updated_at = ? WHERE name = ?",
                       (checkpoint_id, time.time(), sprite))

    def released(self) -> tuple[int, set[str]]:
        """The manifests released by deletions not yet collected, and the serial up to
        which they were read (give it to :meth:`forget_released` once collected). Released
        in the same transaction as the deletion, so a crash loses no candidate."""
        with self._lock:
            rows = self._db.execute("SELECT serial, manifest FROM released").fetchall()
        return max((serial for serial, _ in rows), default=0), {m for _, m in rows}

    def forget_released(self, up_to: int) -> None:
        """The releases read up to serial ``up_to`` were collected (later ones stay)."""
        with self.transaction() as db:
            db.execute("DELETE FROM released WHERE serial <= ?", (up_to,))

    def manifests_in_use(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT DISTINCT manifest FROM checkpoints")}

    def _history(self, sprite: str, source_id: str | None) -> list[str]:
        """Ancestor ids, oldest first, following ``source_id`` links: one query, however
        long the chain (a query per link cost 2,000 round trips at 2,000 checkpoints)."""
        if not source_id:
            return []
        rows = self._db.execute(
            "WITH RECURSIVE chain(id, depth) AS (SELECT ?, 0 UNION ALL "
            "SELECT c.source_id, chain.depth + 1 FROM checkpoints c JOIN chain "
            "ON c.sprite = ? AND c.id = chain.id WHERE c.source_id IS NOT NULL "
            "AND c.source_id != '' AND chain.depth <= "
            "(SELECT COUNT(*) FROM checkpoints WHERE sprite = ?)) "
            "SELECT id FROM chain ORDER BY depth",
            (source_id, sprite, sprite)).fetchall()
        chain: list[str] = []
        seen: set[str] = set()
        for (ancestor,) in rows:
            if ancestor in seen:  # a loop in damaged data: stop where it closes
                break
            seen.add(ancestor)
            chain.append(ancestor)
        return list(reversed(chain))


def sprite_json(row: SpriteRow, *, url: str, status: str) -> dict[str, Any]:
    """The Sprite object of the reference (section 2.1), plus ``org_slug``."""
    return {
        "id": row.id,
        "name": row.name,
        "organization": ORGANIZATION,
        "org_slug": ORGANIZATION,
        "url": url,
        "url_settings": row.url_settings,
        "status": status,
        "labels": row.labels,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
        "last_running_at": rfc3339(row.last_running_at) if row.last_running_at else None,
    }


def checkpoint_json(row: CheckpointRow, *, with_history: bool = False) -> dict[str, Any]:
    """The Checkpoint object of the reference (section 8.1)."""
    body: dict[str, Any] = {
        "id": row.id,
        "create_time": rfc3339(row.create_time),
        "comment": row.comment,
        "is_auto": row.is_auto,
    }
    body["changed_bytes"] = row.changed_bytes
    if row.source_id:
        body["source_id"] = row.source_id
    if with_history:
        body["history"] = row.history
    return body


def _sprite(row: sqlite3.Row) -> SpriteRow:
    return SpriteRow(
        name=row["name"], id=row["id"], url_settings=json.loads(row["url_settings"]),
        labels=json.loads(row["labels"]), created_at=row["created_at"],
        updated_at=row["updated_at"], last_running_at=row["last_running_at"],
        source_id=row["source_id"], next_version=row["next_version"],
    )


def _checkpoint(row: sqlite3.Row, history: list[str]) -> CheckpointRow:
    return CheckpointRow(
        sprite=row["sprite"], id=row["id"], create_time=row["create_time"],
        comment=row["comment"], source_id=row["source_id"], is_auto=bool(row["is_auto"]),
        manifest=row["manifest"], history=history, changed_bytes=row["changed_bytes"],
    )
