"""The metadata database's tables, and the steps that bring an older one up to date.

The layout's version is SQLite's ``user_version``: 0 for a database from before the
marker, then one more for each step of :data:`_UPGRADES`. A step must be safe on a
database that already has what it adds (a fresh one is made whole by :data:`_SCHEMA`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sprites (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    url_settings TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_running_at REAL,
    source_id TEXT NOT NULL DEFAULT 'v0',
    next_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS checkpoints (
    sprite TEXT NOT NULL REFERENCES sprites(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    create_time REAL NOT NULL,
    create_time_text TEXT,
    comment TEXT NOT NULL DEFAULT '',
    source_id TEXT,
    is_auto INTEGER NOT NULL DEFAULT 0,
    manifest TEXT NOT NULL,
    changed_bytes INTEGER,
    PRIMARY KEY (sprite, id)
);
CREATE INDEX IF NOT EXISTS checkpoints_by_time ON checkpoints (sprite, create_time);
-- Manifests whose checkpoint was deleted, for the collector to look at (a manifest
-- released twice is two rows: one collection must not forget a later release).
CREATE TABLE IF NOT EXISTS released (
    serial INTEGER PRIMARY KEY AUTOINCREMENT,
    manifest TEXT NOT NULL
);
"""

# ``wire.rfc3339(create_time)`` in SQL, digit for digit: whole seconds, then the fraction
# rounded half to even to microseconds as ``datetime.fromtimestamp`` does (a carry into
# the next second included).
_SECONDS = "CAST(create_time AS INTEGER)"
_MICROS = f"((create_time - {_SECONDS}) * 1000000.0)"
_WHOLE = f"CAST({_MICROS} AS INTEGER)"
_ROUNDED = (f"({_WHOLE} + ({_MICROS} - {_WHOLE} > 0.5"
            f" OR ({_MICROS} - {_WHOLE} = 0.5 AND {_WHOLE} % 2 = 1)))")
_RFC3339_SQL = (f"strftime('%Y-%m-%dT%H:%M:%S', {_SECONDS} + {_ROUNDED} / 1000000, 'unixepoch')"
               f" || printf('.%06dZ', {_ROUNDED} % 1000000)")


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Make the tables a new database lacks, and bring one of an older layout up to
    :data:`SCHEMA_VERSION` once: each step of :data:`_UPGRADES` it has not had runs in
    order, then the version is recorded (a fresh database already has every column, so
    its steps change nothing)."""
    db.executescript(_SCHEMA)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for step in _UPGRADES[version:]:
        step(db)
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _add_create_time_text(db: sqlite3.Connection) -> None:
    """Databases made before listings were built by SQLite lack the formatted times."""
    if "create_time_text" in {row[1] for row in db.execute("PRAGMA table_info(checkpoints)")}:
        return
    db.execute("BEGIN IMMEDIATE")  # a failure leaves it uncommitted: closing rolls it back
    db.execute("ALTER TABLE checkpoints ADD COLUMN create_time_text TEXT")
    db.execute(f"UPDATE checkpoints SET create_time_text = {_RFC3339_SQL}")
    db.execute("COMMIT")


def _add_changed_bytes(db: sqlite3.Connection) -> None:
    """Databases made before checkpoints recorded their size of change: unknown (NULL)."""
    if "changed_bytes" not in {row[1] for row in db.execute("PRAGMA table_info(checkpoints)")}:
        db.execute("ALTER TABLE checkpoints ADD COLUMN changed_bytes INTEGER")


_UPGRADES: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _add_create_time_text, _add_changed_bytes)
SCHEMA_VERSION = len(_UPGRADES)
"""The database's layout, kept as SQLite's ``user_version`` (0: from before the marker)."""
