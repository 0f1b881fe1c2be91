"""%sprite labels, upgrade, checkpoint delete and attach — through a real shell and server."""

from __future__ import annotations

import sys

import pytest
from IPython.core.completer import provisionalcompleter


def _labels(http, sprite):
    return http.get(f"/v1/sprites/{sprite}").json().get("labels") or []


def test_labels_add_remove_clear_and_in_list(ip, current, http, capsys):
    ip.ok("%sprite labels add exp gpu exp")
    assert _labels(http, current) == ["exp", "gpu"]
    ip.ok("%sprite labels add team")
    ip.ok("%sprite labels remove gpu")
    assert _labels(http, current) == ["exp", "team"]
    frame = ip.ok(f"%sprite list --prefix {current}")
    assert frame.loc[current, "labels"] == "exp, team"
    ip.ok("%sprite labels")
    assert capsys.readouterr().out.splitlines()[-1] == f"Labels of sprite {current}: exp, team"
    ip.ok("%sprite labels clear")
    assert _labels(http, current) == []


def test_labels_mistakes_are_one_line(ip, current, http):
    ip.ok("%sprite labels add keep")
    assert ip.fails("%sprite labels remove nope") == (
        f"Sprite {current} has no label nope (its labels: keep)")
    assert "required: LABEL" in ip.fails("%sprite labels add")
    assert "unrecognized arguments: keep" in ip.fails("%sprite labels clear keep")
    assert "too many or too long labels" in ip.fails(f"%sprite labels add {'x' * 200}")
    assert _labels(http, current) == ["keep"]


def test_upgrade(ip, current, capsys):
    ip.ok("%sprite upgrade")
    assert f"Upgraded sprite {current}" in capsys.readouterr().out
    assert "not found" in ip.fails("%sprite upgrade -s no-such-sprite-x")


def test_checkpoint_delete(ip, current, http, capsys):
    ip.ok("%sprite checkpoint -m one")
    ip.ok("%sprite checkpoint -m two")
    ip.ok("%sprite checkpoint delete v1 --yes")
    assert f"Deleted checkpoint v1 of sprite {current}" in capsys.readouterr().out
    ids = [c["id"] for c in http.get(f"/v1/sprites/{current}/checkpoints").json()]
    assert "v1" not in ids and "v2" in ids


def test_checkpoint_delete_refuses_the_live_state_and_the_active_one(ip, current, http):
    ip.ok("%sprite checkpoint")
    ip.ok("%sprite restore v1 --yes")
    assert ip.fails("%sprite checkpoint delete Current --yes") == (
        f"Current is sprite {current}'s live state, not a checkpoint: it cannot be deleted")
    assert ip.fails("%sprite checkpoint delete v1 --yes") == (
        f"Checkpoint v1 is the one sprite {current} runs on: restore another checkpoint "
        "first, then delete it")
    assert ip.fails("%sprite checkpoint delete v7 --yes").startswith(
        f"Checkpoint v7 not found on sprite {current}")
    assert "required: id" in ip.fails("%sprite checkpoint delete")
    assert "v1" in [c["id"] for c in http.get(f"/v1/sprites/{current}/checkpoints").json()]


def test_checkpoint_delete_confirms_as_restore_does(ip, current, http, monkeypatch):
    ip.ok("%sprite checkpoint -m precious")
    ip.ok("%sprite checkpoint")
    ip.ok("%sprite checkpoint")  # v3 is the active one: v1 and v2 may go
    assert "add --yes" in ip.fails("%sprite checkpoint delete v1")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    questions = []
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda q: questions.append(q) or next(answers))
    assert ip.fails("%sprite checkpoint delete v1") == "Cancelled: nothing was changed"
    ip.ok("%sprite checkpoint delete v1")
    assert questions[0] == (f"Delete checkpoint v1 (precious) of sprite {current}? It cannot "
                            "be restored afterwards. [y/N] ")
    ids = [c["id"] for c in http.get(f"/v1/sprites/{current}/checkpoints").json()]
    assert "v1" not in ids
    ip.ok("%config SpriteMagics.confirm_restore = False")
    ip.ok("%sprite checkpoint delete v2")


@pytest.fixture
def session(ip, current):
    """Start a command that outlives its connection; its session id."""
    def start(script: str) -> str:
        command = ip.magics.context.sprite().command("sh", "-c", script, stdin=False,
                                                     max_run_after_disconnect=0)
        sid = command.session_id
        command.detach()
        return sid
    return start


def test_attach_replays_then_follows_to_the_exit(ip, session, capsys):
    sid = session("echo early; sleep 1; echo late; exit 3")
    message = ip.fails(f"%sprite attach {sid}")
    out = capsys.readouterr().out
    assert "early" in out and "late" in out
    assert message.endswith("exited with code 3") and sid in message


def test_attach_timeout_detaches_and_leaves_it_running(ip, current, session, http):
    sid = session("echo hi; sleep 30")
    ip.ok(f"%sprite attach {sid} --timeout 1")
    assert sid in [s["id"] for s in http.get(f"/v1/sprites/{current}/exec").json()["sessions"]]
    ip.ok(f"%sprite kill {sid} --signal KILL")
    assert "999999" in ip.fails("%sprite attach 999999")


def test_completion_of_the_new_words(ip, current, session):
    def complete(line):
        with provisionalcompleter():
            return {c.text for c in ip.shell.Completer.completions(line, len(line))}

    ip.ok("%sprite checkpoint")
    assert {"labels", "upgrade", "attach"} <= complete("%sprite ")
    assert complete("%sprite checkpoint d") == {"delete"}
    assert complete("%sprite checkpoint delete v") == {"v0", "v1"}
    assert complete("%sprite labels r") == {"remove"}
    sid = session("sleep 30")
    assert sid in complete("%sprite attach ")
    ip.ok(f"%sprite kill {sid} --signal KILL")
