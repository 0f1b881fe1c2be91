"""A checkpoint named by its comment, wherever a magic takes a checkpoint: through a real
shell and the local server (diff and show also through the views mounted in the sprite)."""

from __future__ import annotations

from IPython.core.completer import provisionalcompleter

HOME = "/home/sprite"


def _sh(ip, script: str) -> None:
    result = ip.magics.context.sprite().run("bash", "-c", f"cd ~ && {script}")
    assert result.exit_code == 0, result.stderr


def _complete(ip, line: str) -> list[str]:
    with provisionalcompleter():
        return [c.text for c in ip.shell.Completer.completions(line, len(line))]


def test_restore_and_history_by_a_unique_comment(ip, current, capsys):
    _sh(ip, "echo one > notes.txt")
    assert ip.ok("%sprite checkpoint -m baseline").id == "v1"
    _sh(ip, "echo two > notes.txt")
    ip.ok("%sprite checkpoint -m 'after tuning'")
    capsys.readouterr()
    ip.ok("%sprite restore baseline --yes")
    assert "Restored v1 on sprite" in capsys.readouterr().out
    assert ip.magics.context.sprite().run("cat", f"{HOME}/notes.txt").stdout == "one\n"
    assert ip.ok("%sprite checkpoints --history baseline").index.tolist() == ["v2"]
    assert ip.ok("%sprite checkpoints --history 'after tuning'").empty
    ip.ok("%sprite checkpoint delete 'after tuning' --yes")
    assert "after tuning" not in set(ip.ok("%sprite checkpoints")["comment"])


def test_an_id_wins_over_a_comment_and_an_unknown_name_lists_the_ids(ip, current):
    ip.ok("%sprite checkpoint -m v0")
    assert ip.ok("%sprite checkpoints --history v0").index.tolist() == ["v1"], \
        "v0 is the id of the first checkpoint, not the comment of v1"
    assert ip.fails("%sprite restore nothing-like-it --yes") == (
        f"Checkpoint nothing-like-it not found on sprite {current} (have v0, v1)")


def test_an_ambiguous_comment_lists_its_checkpoints_in_one_line(ip, current):
    ip.ok("%sprite checkpoint -m trial")
    ip.ok("%sprite checkpoint -m trial")
    message = ip.fails("%sprite restore trial --yes")
    assert message.startswith(f"2 checkpoints of sprite {current} have the comment 'trial': "
                              "v2 (2"), "newest first, with the time each was taken"
    assert ", v1 (2" in message and message.endswith(" UTC); give the id of the one you mean")
    assert ip.fails("%sprite diff trial") == message


def test_diff_show_and_ls_by_comment(ip, current, capsys):
    probe = ip.ok("%sprite checkpoint -m probe")
    views = "/.sprite/checkpoints"  # a view announced (.building-<id>) is waited for
    mounted = ip.magics.context.sprite().run("sh", "-c", (
        f"until [ -d {views}/{probe.id} ] || [ ! -d {views}/.building-{probe.id} ]; "
        f"do sleep 0.05; done; test -d {views}/{probe.id}"))
    _sh(ip, "mkdir proj && echo first > proj/text.txt")
    ip.ok("%sprite checkpoint -m baseline")
    _sh(ip, "echo second > proj/text.txt")
    if mounted.exit_code != 0:
        assert "not mounted" in ip.fails("%sprite diff baseline")
        return
    changes = ip.ok("%sprite diff baseline -- proj")  # not /etc: other tests' useradd
    assert dict(zip(changes["path"], changes["change"].astype(str), strict=True)) == {
        f"{HOME}/proj/text.txt": "modified"}
    assert ip.ok("%sprite diff probe baseline -- proj")["path"].tolist() == [
        f"{HOME}/proj", f"{HOME}/proj/text.txt"]
    capsys.readouterr()
    ip.ok("%sprite diff baseline --file proj/text.txt")
    assert "-first\n+second" in capsys.readouterr().out
    ip.ok("%sprite show baseline:proj/text.txt")
    assert capsys.readouterr().out == "first\n"
    assert ip.ok("%sprite ls baseline:proj").index.tolist() == ["text.txt"]


def test_completion_offers_ids_and_the_comments_that_name_one_checkpoint(ip, current):
    ip.ok("%sprite checkpoint -m baseline")
    ip.ok("%sprite checkpoint -m 'two words'")
    ip.ok("%sprite checkpoint -m twice")
    ip.ok("%sprite checkpoint -m twice")
    offered = set(_complete(ip, "%sprite restore "))
    assert {"v0", "v1", "v2", "v3", "v4", "baseline", "'two words'"} <= offered
    assert "twice" not in offered
    assert "baseline" in _complete(ip, "%sprite diff v1 ba")
