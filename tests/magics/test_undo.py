"""Per-cell checkpoints, %sprite undo and %sprite redo — a real shell on the local server."""

from __future__ import annotations

from sprites_jupyter.magic_commands.cell_checkpoints import cell_comment, cell_tag, untagged


def _exists(ip, path: str) -> bool:
    ip.ok(f"%sprite exec -o probe --no-raise test -e {path}")
    return ip.shell.user_ns["probe"].exit_code == 0


def _listed(ip) -> list[tuple[str, str]]:
    frame = ip.ok("%sprite checkpoints --auto")
    return [(i, c) for i, c in zip(frame.index, frame["comment"], strict=True)
            if not i.startswith("auto-")]


def test_cell_comment_round_trips_through_its_tag():
    comment = cell_comment(12, "\n  rm -rf data.txt  \nls\n", "analysis.ipynb")
    assert comment == "cell [12] of analysis.ipynb: rm -rf data.txt"
    tag = cell_tag(comment)
    assert (tag.execution_count, tag.notebook, tag.first_line) == (
        12, "analysis.ipynb", "rm -rf data.txt")
    assert cell_tag(cell_comment(3, "x" * 200, "")).first_line == "x" * 59 + "…"
    assert cell_tag("before the big change") is None


def test_untagged_agrees_with_cell_tag_for_a_whole_listing():
    plain = ["before the big change", "", "see\ncell [3]: not a tag here", "cell [x]: no"]
    tagged = [cell_comment(4, "ls", "a.ipynb"), cell_comment(5, "", "")]
    for comments in (plain, plain + tagged, tagged[:1]):
        assert untagged(comments) == [cell_tag(c) is None for c in comments]
    assert untagged(plain) == [True] * 4 and untagged([]) == []


def test_undo_brings_back_a_deleted_file_and_removes_a_new_venv(ip, current, capsys):
    ip.ok("%sprite exec echo keep-me > /home/sprite/data.txt")
    ip.ok("%sprite undo on")
    assert ip.magics.checkpoint_cells is True
    ip.ok("%%sprite_exec\nrm /home/sprite/data.txt\npython3 -m venv --without-pip /home/sprite/env")
    assert not _exists(ip, "/home/sprite/data.txt")
    assert _exists(ip, "/home/sprite/env/bin/python")
    capsys.readouterr()

    ip.ok("%sprite undo")

    out = capsys.readouterr().out
    assert "Undid cell [" in out and "(rm /home/sprite/data.txt) on sprite " + current in out
    assert _exists(ip, "/home/sprite/data.txt")
    assert not _exists(ip, "/home/sprite/env")
    ip.ok("%sprite exec -o text cat /home/sprite/data.txt")
    assert ip.shell.user_ns["text"].stdout == "keep-me\n"


def test_undo_twice_then_redo_walks_back_and_forth(ip, current, capsys):
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_exec\ntouch /home/sprite/one")
    ip.ok("%%sprite_exec\ntouch /home/sprite/two")
    ip.ok("%sprite undo")
    assert _exists(ip, "/home/sprite/one") and not _exists(ip, "/home/sprite/two")
    ip.ok("%sprite undo")
    assert not _exists(ip, "/home/sprite/one")
    capsys.readouterr()

    ip.ok("%sprite redo")

    assert "Redid 1 cell on sprite" in capsys.readouterr().out
    assert _exists(ip, "/home/sprite/one") and not _exists(ip, "/home/sprite/two")
    ip.ok("%sprite redo")
    assert _exists(ip, "/home/sprite/two")
    message = ip.fails("%sprite redo")
    assert message.startswith(f"Nothing to redo on sprite {current}")


def test_undo_n_takes_back_several_cells_and_says_what_is_left(ip, current):
    ip.ok("%sprite undo on")
    for name in ("a", "b", "c"):
        ip.ok(f"%%sprite_exec\ntouch /home/sprite/{name}")
    assert ip.fails("%sprite undo 4") == (
        f"Only 3 cell(s) can be undone on sprite {current}: try %sprite undo 3")
    ip.ok("%sprite undo 2")
    assert _exists(ip, "/home/sprite/a") and not _exists(ip, "/home/sprite/b")
    ip.ok("%sprite undo")
    assert ip.fails("%sprite undo").startswith(f"Nothing to undo on sprite {current}")
    assert "not 'x'" in ip.fails("%sprite undo x")


def test_a_cell_after_an_undo_drops_the_redo(ip, current):
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_exec\ntouch /home/sprite/one")
    ip.ok("%sprite undo")
    ip.ok("%%sprite_exec\ntouch /home/sprite/other")
    assert ip.fails("%sprite redo").startswith("Nothing to redo")
    ip.ok("%sprite undo")
    assert not _exists(ip, "/home/sprite/other") and not _exists(ip, "/home/sprite/one")


def test_no_checkpoints_when_off_and_a_hint_to_turn_them_on(ip, current):
    ip.ok("%%sprite_exec\ntrue")
    assert all(cell_tag(c) is None for _, c in _listed(ip))
    assert ip.fails("%sprite undo").endswith("turn per-cell checkpoints on with %sprite undo on")


def test_pruning_keeps_the_last_k_cells_and_every_user_checkpoint(ip, current):
    ip.ok("%sprite checkpoint -m mine")
    ip.ok("%config SpriteMagics.cell_checkpoints_kept = 2")
    ip.ok("%sprite undo on")
    for number in range(4):
        ip.ok(f"%%sprite_exec\necho {number}")
    ip.ok("%sprite checkpoint -m also-mine")

    listed = _listed(ip)

    cells = [c for _, c in listed if cell_tag(c)]
    assert [cell_tag(c).first_line for c in cells] == ["echo 3", "echo 2"]
    assert {"mine", "also-mine"} <= {c for _, c in listed}
    plain = ip.ok("%sprite checkpoints")
    assert not any(cell_tag(c) for c in plain["comment"])
    assert {"mine", "also-mine"} <= set(plain["comment"])


def test_python_cells_are_checkpointed_too(library_ip):
    ip = library_ip
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_python\nimport os; open(os.path.expanduser('~/made-by-cell'), 'w').close()")
    assert _exists(ip, "~/made-by-cell")
    ip.ok("%sprite undo")
    assert not _exists(ip, "~/made-by-cell")


def test_undo_of_a_python_cell_brings_its_variables_back(ip, current):
    from .python_helpers import run_captured

    ip.ok("%%sprite_python\nrows = [1, 2]\nlabel = 'before'\n")
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_python\nrows.append(3)\nlabel = 'after'\ndel rows\n")

    ip.ok("%sprite undo")

    result, shown, out, _ = run_captured(ip, "%%sprite_python\n(rows, label)\n")
    assert result.success, result.error_in_exec
    assert out.startswith("restored 2 variables from ")
    assert shown == [{"text/plain": "([1, 2], 'before')"}]
