"""%sprite diff, show and ls A:PATH — through a real shell, the local server and the
read-only checkpoint views it mounts inside each sprite at /.sprite/checkpoints/<id>/."""

from __future__ import annotations

import re
import sys

import pandas as pd
import pytest

from sprites_jupyter.widgets.browser import CheckpointBrowser

HOME = "/home/sprite"


def _sh(ip, script: str) -> str:
    """Run a bash script in the sprite's home (relative paths only: see _mounted)."""
    result = ip.magics.context.sprite().run("bash", "-c", f"cd ~ && {script}", timeout=300)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _py(ip, code: str) -> None:
    result = ip.magics.context.sprite().run("python3", "-c", code, dir=HOME, timeout=300)
    assert result.exit_code == 0, result.stderr


def _checkpoint(ip, comment: str = "") -> str:
    return ip.ok(f"%sprite checkpoint -m '{comment}'").id


@pytest.fixture
def mounted(ip, current):
    """The current sprite, once its checkpoints show up at /.sprite/checkpoints/<id>/."""
    _checkpoint(ip, "probe")
    views = "/.sprite/checkpoints"  # a view announced (.building-v1) is waited for
    probe = ip.magics.context.sprite().run("sh", "-c", (
        f"until [ -d {views}/v1 ] || [ ! -d {views}/.building-v1 ]; do sleep 0.05; done; "
        f"test -d {views}/v1/home"))
    if probe.exit_code != 0:
        pytest.skip("this local server does not mount checkpoints inside sprites "
                    "(unsandboxed, or no checkpoint views yet)")
    return current


@pytest.fixture
def history(ip, mounted):
    """v2 and v3 on top of the probe checkpoint v1, differing in every way there is."""
    _sh(ip, "printf 'same\\n' > keep.txt && printf 'line 1\\nline 2\\n' > edit.txt "
            "&& printf 'bye\\n' > gone.txt && printf 'echo hi\\n' > run.sh "
            "&& printf 'a file\\n' > retype && printf 'x' > 'with space.txt' "
            "&& printf '\\x00\\x01\\x02\\x03' > blob.bin")
    assert _checkpoint(ip, "before") == "v2"
    _sh(ip, "printf 'line 1\\nline two\\nline 3\\n' > edit.txt && rm gone.txt "
            "&& chmod 755 run.sh && rm retype && mkdir retype && printf 'in\\n' > retype/inner "
            "&& mkdir 'dir with space' && printf 'é\\n' > 'dir with space/données é.txt' "
            "&& printf '\\x00\\xff\\x00\\xff\\x00\\xff' > blob.bin")
    assert _checkpoint(ip, "after") == "v3"
    _sh(ip, "printf 'later\\n' > later.txt")
    return mounted


CHANGES_V2_V3 = {
    f"{HOME}/blob.bin": "modified",
    f"{HOME}/dir with space": "added",
    f"{HOME}/dir with space/données é.txt": "added",
    f"{HOME}/edit.txt": "modified",
    f"{HOME}/gone.txt": "removed",
    f"{HOME}/retype": "type-changed",
    f"{HOME}/retype/inner": "added",
    f"{HOME}/run.sh": "mode-changed",
}


def _changes(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["path"], frame["change"].astype(str), strict=True))


def test_diff_between_two_checkpoints(ip, history):
    frame = ip.ok(f"%sprite diff v2 v3 -- {HOME}")
    assert isinstance(frame, pd.DataFrame)
    assert _changes(frame) == CHANGES_V2_V3
    assert list(frame["path"]) == sorted(CHANGES_V2_V3)
    edit = frame.set_index("path").loc[f"{HOME}/edit.txt"]
    assert (edit["size_a"], edit["size_b"]) == (14, 23)
    assert edit["mtime_b"] >= edit["mtime_a"]
    assert str(frame["mtime_a"].dtype) == "datetime64[ns, UTC]"


def test_diff_against_now_and_across_the_whole_filesystem(ip, history):
    assert _changes(ip.ok(f"%sprite diff v2 -- {HOME}")) == {
        **CHANGES_V2_V3, f"{HOME}/later.txt": "added"}
    assert _changes(ip.ok(f"%sprite diff v3 -- {HOME}")) == {f"{HOME}/later.txt": "added"}
    everywhere = ip.ok("%sprite diff v3")
    assert f"{HOME}/later.txt" in set(everywhere["path"])
    assert not everywhere["path"].str.match(r"^/(proc|sys|dev|\.sprite)(/|$)").any()
    restricted = ip.ok(f"%sprite diff v2 v3 -- '{HOME}/dir with space' {HOME}/run.sh")
    assert list(restricted["path"]) == [f"{HOME}/dir with space",
                                        f"{HOME}/dir with space/données é.txt",
                                        f"{HOME}/run.sh"]


# Other tests' useradd/userdel rewrite these backups in the host's /etc (the sprite's base)
# at any moment; a view of the sprite's own layer cannot tell them from the sprite's files.
HOST_ACCOUNT_BACKUPS = ("/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",
                        "/etc/subuid-", "/etc/subgid-")


def _without_host_account_backups(changes: pd.DataFrame) -> pd.DataFrame:
    return changes[~changes["path"].isin(HOST_ACCOUNT_BACKUPS)]


def test_a_fresh_sprites_checkpoint_diffed_against_the_unchanged_sprite_is_empty(ip, mounted):
    """What the platform generates or mounts (/etc/hosts, masked host files, /run, the
    merged-/usr links) and the extension's own session files are never changes."""
    checkpoint_id = _checkpoint(ip, "fresh")
    assert _without_host_account_backups(ip.ok(f"%sprite diff {checkpoint_id}")).empty
    assert ip.ok(f"%sprite diff v0 {checkpoint_id}").empty
    ip.ok("%%sprite_python\nanswer = 42\n")
    _sh(ip, "test -d .sprites_jupyter && mkdir proj && echo hi > proj/text.txt")
    assert _changes(_without_host_account_backups(ip.ok(f"%sprite diff {checkpoint_id}"))) == {
        f"{HOME}/proj": "added", f"{HOME}/proj/text.txt": "added"}
    ip.ok("%sprite python stop")


def test_paths_relative_to_the_home_directory(ip, history, capsys):
    assert _changes(ip.ok("%sprite diff v2 v3 -- run.sh 'dir with space'")) == {
        f"{HOME}/run.sh": "mode-changed", f"{HOME}/dir with space": "added",
        f"{HOME}/dir with space/données é.txt": "added"}
    ip.ok("%sprite diff v2 v3 --file edit.txt")
    assert f"+++ v3:{HOME}/edit.txt" in capsys.readouterr().out


def test_diff_stat_prints_a_summary_and_counts_by_directory(ip, history, capsys):
    counts = ip.ok(f"%sprite diff v2 v3 --stat -- {HOME}")
    assert capsys.readouterr().out.splitlines()[0] == (
        "v2 → v3: 8 files differ: 3 added, 1 removed, 2 modified, 1 changed type, "
        "1 changed mode (+6 bytes)")
    assert counts.loc[f"{HOME}/retype", "type-changed"] == 1
    assert counts.loc[f"{HOME}/retype", "total"] == 2
    assert counts.loc[f"{HOME}/dir with space", "added"] == 2
    assert int(counts["total"].sum()) == 8
    assert counts.loc[HOME, "size_change"] == 2 + 9 - 4, "blob.bin, edit.txt, gone.txt"


VENV_TREE = r"""
import os
site = "env/lib/python3.11/site-packages"
for package, files in (("numpy", 3000), ("scipy", 4000), ("sklearn", 2500), ("joblib", 500)):
    for index in range(files):
        folder = f"{site}/{package}/part{index % 7}"
        os.makedirs(folder, exist_ok=True)
        open(f"{folder}/m{index}.py", "w").write("x" * 100)
    os.makedirs(f"{site}/{package}-1.0.dist-info")
    open(f"{site}/{package}-1.0.dist-info/RECORD", "w").write("")
os.makedirs("env/bin")
for index in range(20):
    open(f"env/bin/tool{index}", "w").write("#!/bin/sh")
open("train.py", "w").write("print(1)\n")
"""


def test_diff_stat_of_a_big_install_names_packages_and_directories(ip, mounted, capsys):
    """Paths relative to the home; only these, since the host's own /etc may change
    meanwhile (another test's useradd), which a view of the sprite's layer cannot tell."""
    start = _checkpoint(ip, "before install")
    _py(ip, VENV_TREE)
    capsys.readouterr()
    counts = ip.ok(f"%sprite diff {start} --stat -- env train.py")
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"{start} → now: 10066 files differ: 10066 added (+1.0 MB)"), line
    site = f"{HOME}/env/lib/python3.11/site-packages"
    assert len(counts) <= 12
    assert counts.loc[f"{site}/scipy", "added"] == 4000 + 7 + 1 + 2
    assert counts.loc[f"{site}/numpy", "size_change"] == 3000 * 100
    assert counts.loc[f"{HOME}/env/bin", "total"] == 21
    assert counts.loc[f"{HOME}/train.py", "added"] == 1
    assert int(counts["total"].sum()) == 10066


def test_diff_of_one_text_file_and_one_binary_file(ip, history, capsys):
    ip.ok(f"%sprite diff v2 v3 --file {HOME}/edit.txt")
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"--- v2:{HOME}/edit.txt", f"+++ v3:{HOME}/edit.txt"]
    assert "-line 2" in out and "+line two" in out and "+line 3" in out
    ip.ok(f"%sprite diff v2 --file {HOME}/blob.bin")
    assert capsys.readouterr().out.strip() == (
        f"Binary file {HOME}/blob.bin differs: 4 bytes in v2, 6 bytes in now")
    ip.ok(f"%sprite diff v3 --file {HOME}/keep.txt")
    assert capsys.readouterr().out.strip() == f"{HOME}/keep.txt: no differences between v3 " \
                                              "and now"
    ip.ok(f"%sprite diff v2 --file '{HOME}/dir with space/données é.txt'")
    assert "+é" in capsys.readouterr().out
    assert "is a directory" in ip.fails(f"%sprite diff v2 --file {HOME}/retype")


def test_show_and_ls_of_a_past_state(ip, history, capsys):
    ip.ok(f"%sprite show v2:{HOME}/gone.txt")
    assert capsys.readouterr().out == "bye\n"
    ip.ok("%sprite show v2:edit.txt")
    assert capsys.readouterr().out == "line 1\nline 2\n"
    ip.ok(f"%sprite show 'v3:{HOME}/dir with space/données é.txt'")
    assert capsys.readouterr().out == "é\n"
    ip.ok(f"%sprite show v2:{HOME}/blob.bin")
    assert capsys.readouterr().out.startswith(f"v2:{HOME}/blob.bin: binary, 4 bytes")
    ip.ok(f"%sprite show v3:{HOME}/blob.bin -o blob")
    assert ip.shell.user_ns["blob"] == b"\x00\xff\x00\xff\x00\xff"
    assert "is a directory: list it with %sprite ls" in ip.fails(f"%sprite show v3:{HOME}")
    assert "no such file" in ip.fails(f"%sprite show v3:{HOME}/gone.txt")
    listing = ip.ok(f"%sprite ls v2:{HOME}")
    assert {"gone.txt", "retype", "edit.txt"} <= set(listing.index)
    assert listing.loc["retype", "type"] == "file" and not listing.loc["retype", "is_dir"]
    assert ip.ok(f"%sprite ls v3:{HOME}").loc["retype", "is_dir"]
    assert "later.txt" not in set(listing.index)
    assert "later.txt" in set(ip.ok(f"%sprite ls {HOME}").index), "plain ls is the sprite now"


def test_a_checkpoint_outside_the_mounted_set_gets_one_line(ip, mounted):
    for _ in range(6):
        _checkpoint(ip)
    message = ip.fails("%sprite diff v1")
    assert message.startswith(f"Checkpoint v1 is not mounted in sprite {mounted}")
    assert message.endswith("these can be compared: v3, v4, v5, v6, v7")
    assert ip.fails("%sprite show v1:/etc/hostname") == message
    assert ip.fails("%sprite diff v99").startswith(f"Checkpoint v99 not found on sprite {mounted}")


def test_unmounted_checkpoint_on_any_server_is_one_line(ip, current):
    _checkpoint(ip)
    for _ in range(6):
        _checkpoint(ip)
    assert ip.fails("%sprite diff v1").startswith(f"Checkpoint v1 is not mounted in sprite "
                                                  f"{current}")
    assert "not found" in ip.fails("%sprite ls v42:/etc")


def test_browser_changes_and_restore_confirmation(ip, history):
    ip.ok("%config SpriteMagics.widgets = 'on'")
    browser = ip.ok("%sprite browse")
    assert isinstance(browser, CheckpointBrowser)
    row = browser.changes_rows["v3"]
    row.button.click()
    browser.wait(120)
    assert re.match(r"^\d+ files? differs?: \d+ added", row.button.description), \
        row.button.description
    assert f"{HOME}/later.txt" in row.table.value
    browser.restore_buttons["v2"].click()
    browser.wait(120)
    undo = browser.undo_text.value
    assert undo.startswith("<b>Restoring v2 will undo ") and "1 removed" in undo, undo
    browser.confirm_button.click()
    browser.wait(120)
    assert "Restored <code>v2</code>" in browser.message.value, browser.message.value
    assert _sh(ip, "cat gone.txt") == "bye\n"


def test_terminal_restore_prints_what_it_would_undo(ip, history, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    questions = []
    monkeypatch.setattr("builtins.input", lambda q: questions.append(q) or "n")
    assert ip.fails("%sprite restore v3") == "Cancelled: nothing was changed"
    assert len(questions) == 1
    assert questions[0].startswith("Restore v3 (after) on sprite ")
    assert "Restoring v3 will undo " in questions[0]
    assert "This replaces the sprite's filesystem" in questions[0]


def test_a_sprite_with_20000_files(ip, mounted, http):
    _py(ip, "import os\nos.makedirs('many')\nfor i in range(20000):\n"
            "    open(f'many/f{i:05}.txt', 'w').write(f'{i}\\n')")
    assert _checkpoint(ip, "many") == "v2"
    _py(ip, "import os\nfor i in range(0, 20000, 100):\n"
            "    open(f'many/f{i:05}.txt', 'w').write(f'changed {i}\\n')\n"
            "os.remove('many/f00001.txt')")
    assert _checkpoint(ip, "some changed") == "v3"
    frame = ip.ok(f"%sprite diff v2 v3 -- {HOME}/many")
    assert len(frame) == 201
    assert (frame["change"] == "modified").sum() == 200
    assert frame.set_index("path").loc[f"{HOME}/many/f00001.txt", "change"] == "removed"
    deleted = http.delete(f"/v1/sprites/{mounted}", timeout=600)  # 60,000 names to unlink
    assert deleted.status_code == 204, deleted.text


def test_a_diff_right_after_checkpointing_a_large_file_waits_for_its_view(ip, mounted):
    """A file large enough to be stored in chunks is assembled whole for its view in the
    background; a diff asked for at once waits for the view instead of refusing."""
    _sh(ip, "head -c 24M /dev/urandom > big.bin")
    first = _checkpoint(ip, "big")
    _sh(ip, "printf 'edited' | dd of=big.bin bs=1 seek=1000 conv=notrunc status=none")
    second = _checkpoint(ip, "big edited")
    frame = ip.ok(f"%sprite diff {first} {second} -- {HOME}")
    assert _changes(frame) == {f"{HOME}/big.bin": "modified"}
