"""%sprite checkpoint, checkpoints, restore — through a real shell and server."""

from __future__ import annotations

import sys

import pandas as pd

from sprites_jupyter.client import Checkpoint


def _write(http, sprite, path, data):
    response = http.put(f"/v1/sprites/{sprite}/fs/write", params={"path": path}, content=data)
    assert response.status_code in (200, 201), response.text


def test_checkpoint_returns_the_new_checkpoint_and_prints_stages(ip, current, capsys):
    created = ip.ok("%sprite checkpoint -m 'first try'")
    assert isinstance(created, Checkpoint)
    assert (created.id, created.comment) == ("v1", "first try")
    out = capsys.readouterr().out
    assert f"Checkpoint {current}: v1 created" in out


def test_checkpoints_is_a_typed_dataframe(ip, current):
    ip.ok("%sprite checkpoint -m one")
    ip.ok("%sprite checkpoint")
    frame = ip.ok("%sprite checkpoints")
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.name == "id"
    assert frame.index.tolist() == ["v2", "v1", "v0"]
    assert list(frame.columns) == ["create_time", "comment", "source_id", "is_auto",
                                   "changed_bytes", "lineage"]
    assert str(frame["create_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["is_auto"].dtype == bool
    assert str(frame["changed_bytes"].dtype) == "Int64"
    assert frame.loc["v2", "changed_bytes"] == 0 and pd.isna(frame.loc["v0", "changed_bytes"])
    assert frame.loc["v1", "comment"] == "one"
    assert frame.loc["v2", "source_id"] == "v1"
    assert frame.loc["v2", "lineage"].endswith("v1 → v2")


def test_checkpoints_history_and_auto_keep_what_was_asked(ip, current):
    ip.ok("%sprite checkpoint")
    ip.ok("%sprite checkpoint -m later")
    ip.ok("%sprite restore v1 --yes")
    ip.ok("%sprite checkpoint -m branch")
    frame = ip.ok("%sprite checkpoints --history v1")
    assert frame.index.tolist() == ["v3", "v2"]
    assert frame.loc["v3", "lineage"] == "v0 → v1 → v3" and frame.loc["v2", "comment"] == "later"
    everything = ip.ok("%sprite checkpoints --auto")
    autos = everything[everything["is_auto"]]
    assert len(autos) == 1 and autos.index[0].startswith("auto-")
    assert everything.index.drop(autos.index).tolist() == ["v3", "v2", "v1", "v0"]


def test_restore_of_unknown_id_lists_what_exists(ip, current):
    ip.ok("%sprite checkpoint")
    ip.ok("%sprite checkpoint")
    message = ip.fails("%sprite restore v9 --yes")
    assert message == f"Checkpoint v9 not found on sprite {current} (have v0\u2013v2)"


def test_restore_needs_yes_where_nobody_can_answer(ip, current, http):
    ip.ok("%sprite checkpoint")
    _write(http, current, "/home/sprite/after.txt", b"later")
    message = ip.fails("%sprite restore v1")
    assert "add --yes" in message
    assert http.get(f"/v1/sprites/{current}/fs/read",
                    params={"path": "/home/sprite/after.txt"}).status_code == 200


def test_restore_replaces_state_and_prints_how_to_undo(ip, current, http, capsys):
    _write(http, current, "/home/sprite/notes.txt", b"v1 state")
    ip.ok("%sprite checkpoint -m good")
    _write(http, current, "/home/sprite/notes.txt", b"broken state")
    ip.ok("%sprite restore v1 --yes")
    out = capsys.readouterr().out
    undo = out.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert f"Restored v1 on sprite {current}. Undo with: %sprite restore {undo}" in out
    read = {"path": "/home/sprite/notes.txt"}
    assert http.get(f"/v1/sprites/{current}/fs/read", params=read).content == b"v1 state"

    ip.ok(f"%sprite restore {undo} --yes")
    assert http.get(f"/v1/sprites/{current}/fs/read", params=read).content == b"broken state"


def test_confirm_restore_can_be_switched_off_with_config(ip, current):
    ip.ok("%sprite checkpoint")
    ip.ok("%config SpriteMagics.confirm_restore = False")
    ip.ok("%sprite restore v1")


def test_auto_checkpoints_are_listed_on_request(ip, current):
    ip.ok("%sprite checkpoint")
    ip.ok("%sprite restore v1 --yes")
    assert not ip.ok("%sprite checkpoints")["is_auto"].any()
    with_auto = ip.ok("%sprite checkpoints --auto")
    assert with_auto["is_auto"].any()
    assert all(i.startswith("auto-") for i in with_auto.index[with_auto["is_auto"]])


def test_restore_asks_at_a_terminal(ip, current, http, monkeypatch):
    ip.ok("%sprite checkpoint")
    _write(http, current, "/home/sprite/after.txt", b"later")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    questions = []
    answers = iter(["n", "yes"])
    monkeypatch.setattr("builtins.input", lambda q: questions.append(q) or next(answers))
    assert ip.fails("%sprite restore v1") == "Cancelled: nothing was changed"
    assert http.get(f"/v1/sprites/{current}/fs/read",
                    params={"path": "/home/sprite/after.txt"}).status_code == 200
    ip.ok("%sprite restore v1")
    assert questions[0].startswith(f"Restore v1 on sprite {current}? ")
    assert "This replaces the sprite's filesystem" in questions[0]
    assert questions[0].endswith("[y/N] ")
    assert http.get(f"/v1/sprites/{current}/fs/read",
                    params={"path": "/home/sprite/after.txt"}).status_code == 404
