"""%sprite history survives a kernel: kept per sprite and notebook, read by the next one."""

from __future__ import annotations

from sprites_jupyter.journal import decode_entries


def _new_kernel(ip):
    """Unload and load the extension: new magics, an empty in-memory journal."""
    ip.shell.run_line_magic("unload_ext", "sprites_jupyter")
    ip.shell.run_line_magic("load_ext", "sprites_jupyter")


def test_a_new_kernel_shows_what_earlier_ones_did_in_a_directory(ip, current, tmp_path):
    ip.ok(f"%config SpriteMagics.journal_location = {str(tmp_path)!r}")
    ip.ok("%sprite exec echo before-the-restart")
    ip.ok("%sprite checkpoint -m kept")
    _new_kernel(ip)
    ip.ok(f"%config SpriteMagics.journal_location = {str(tmp_path)!r}")
    ip.ok(f"%sprite use {current}")
    ip.ok("%sprite exec echo after-the-restart")

    frame = ip.ok("%sprite history")

    rows = list(zip(frame["operation"], frame["target"], strict=True))
    assert rows.index(("exec", "echo before-the-restart")) < rows.index(
        ("checkpoint", "kept")) < rows.index(("exec", "echo after-the-restart"))
    _new_kernel(ip)  # the journal is saved in the background; a kernel that goes waits for it
    saved = decode_entries((tmp_path / current / "ipython.jsonl").read_bytes())
    assert [e.target for e in saved if e.operation == "exec"] == [
        "echo before-the-restart", "echo after-the-restart"]


def test_kept_on_the_sprite_it_survives_an_undo(ip, current):
    ip.ok("%config SpriteMagics.journal_location = 'sprite'")
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_exec\necho undone-later")
    ip.ok("%sprite undo")
    _new_kernel(ip)
    ip.ok("%config SpriteMagics.journal_location = 'sprite'")
    ip.ok(f"%sprite use {current}")

    frame = ip.ok("%sprite history")

    assert list(frame["operation"]) == ["use", "exec", "checkpoint", "undo", "use"]
    assert frame["target"].tolist()[1] == "echo undone-later"


def test_none_keeps_nothing_for_the_next_kernel(ip, current, tmp_path):
    ip.ok("%config SpriteMagics.journal_location = 'none'")
    ip.ok("%sprite exec true")
    _new_kernel(ip)
    ip.ok(f"%sprite use {current}")
    assert list(ip.ok("%sprite history")["operation"]) == ["use"]


def test_a_run_of_quick_cells_is_saved_whole(ip, current, tmp_path):
    """One background saver writes for a run of cells (coalescing their saves); a kernel
    that goes still leaves every entry in the file."""
    ip.ok(f"%config SpriteMagics.journal_location = {str(tmp_path)!r}")
    for index in range(30):
        ip.ok(f"%sprite exec echo quick-{index}")
    _new_kernel(ip)
    saved = decode_entries((tmp_path / current / "ipython.jsonl").read_bytes())
    assert [e.target for e in saved if e.operation == "exec"] == [
        f"echo quick-{index}" for index in range(30)]
