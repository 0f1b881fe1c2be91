"""The in-sprite diff program, run as the sprite runs it (``python3 -``, source on stdin),
on checkpoint and "now" trees this test builds itself."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sprites_jupyter.magic_commands.diff import helper_source
from tests.oldest_python import python38

LARGE = 200 * 1024
OLDEST = python38()


def run_helper(request: dict, cwd: Path, python: str = "python3") -> tuple[int, list]:
    done = subprocess.run([python, "-", json.dumps(request)], input=helper_source().encode(),
                          capture_output=True, cwd=cwd, timeout=120, check=False)
    assert done.stderr == b"", done.stderr.decode()
    return done.returncode, [json.loads(line) for line in done.stdout.decode().splitlines()]


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    """Checkpoint v1 and the tree "now" (a copy of v1 changed in every way there is)."""
    checkpoints = tmp_path / "checkpoints"
    v1 = checkpoints / "v1"
    now = tmp_path / "now"
    for root in (v1, now):
        (root / "home/sprite/data").mkdir(parents=True)
        (root / "home/sprite/keep.txt").write_text("same\n")
        (root / "home/sprite/edit.txt").write_text("line 1\nline 2\n")
        (root / "home/sprite/gone.txt").write_text("bye\n")
        (root / "home/sprite/run.sh").write_text("echo hi\n")
        (root / "home/sprite/becomes-dir").write_text("a file\n")
        (root / "home/sprite/data/big.bin").write_bytes(b"\0" * LARGE)
        (root / "home/sprite/link").symlink_to("keep.txt")
        (root / "home/sprite/same size.txt").write_text("aaaa")
        (root / ".sprite").mkdir()
        (root / "proc").mkdir()
    for path in ("home/sprite/keep.txt", "home/sprite/run.sh", "home/sprite/data/big.bin",
                 "home/sprite/same size.txt"):
        stamp = (v1 / path).stat()
        os.utime(now / path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    (now / "home/sprite/edit.txt").write_text("line 1\nline two\nline 3\n")
    (now / "home/sprite/gone.txt").unlink()
    (now / "home/sprite/né ça.txt").write_text("unicode\n")
    (now / "home/sprite/run.sh").chmod(0o755)
    (now / "home/sprite/becomes-dir").unlink()
    (now / "home/sprite/becomes-dir").mkdir()
    (now / "home/sprite/becomes-dir/inner").write_text("x\n")
    (now / "home/sprite/link").unlink()
    (now / "home/sprite/link").symlink_to("edit.txt")
    same_size = now / "home/sprite/same size.txt"
    stamp = same_size.stat()
    same_size.write_text("bbbb")
    os.utime(same_size, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    (now / ".sprite/noise").write_text("platform\n")
    (now / "proc/noise").write_text("kernel\n")
    (now / "etc").mkdir()
    (now / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (now / "etc/my.conf").write_text("the user's own\n")
    (now / "run").mkdir()
    (now / "run/app.pid").write_text("12\n")
    (now / "home/sprite/.tool/state").mkdir(parents=True)
    (now / "home/sprite/.tool/state/s.json").write_text("{}\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "2 1 0:5 / /proc rw,nosuid - proc proc rw\n"
        "3 1 0:6 / /run rw,nosuid - tmpfs tmpfs rw\n"
        "4 1 0:7 / /etc rw,relatime - overlay overlay rw,lowerdir=/etc\n"
        "5 4 8:1 /srv/hosts /etc/hosts ro,relatime - ext4 /dev/sda1 rw\n"
        "6 1 8:1 /srv/platform /.sprite ro,relatime - ext4 /dev/sda1 rw\n"
        "7 1 8:1 /srv/x /home/sprite/with\\040space ro,relatime - ext4 /dev/sda1 rw\n")
    return {"checkpoints": checkpoints, "v1": v1, "now": now, "tmp": tmp_path,
            "mountinfo": mountinfo}


def _diff(trees: dict[str, Path], **request: object) -> list:
    code, rows = run_helper({"op": "diff", "a": "v1", "b": None,
                             "checkpoints": str(trees["checkpoints"]),
                             "now": str(trees["now"]), "mountinfo": str(trees["mountinfo"]),
                             "own": ["/home/sprite/.tool"], **request}, trees["tmp"])
    assert code == 0, rows
    return rows


def test_every_kind_of_change_and_nothing_else(trees):
    rows = _diff(trees)
    changes = {path: change for path, change, *_ in rows}
    assert changes == {
        "/home/sprite/edit.txt": "modified",
        "/home/sprite/gone.txt": "removed",
        "/home/sprite/né ça.txt": "added",
        "/home/sprite/run.sh": "mode-changed",
        "/home/sprite/becomes-dir": "type-changed",
        "/home/sprite/becomes-dir/inner": "added",
        "/home/sprite/link": "modified",
        "/home/sprite/same size.txt": "modified",
        "/etc": "added",
        "/etc/my.conf": "added",
    }


def test_rows_carry_sizes_and_mtimes_of_both_sides(trees):
    rows = {row[0]: row for row in _diff(trees)}
    _, _, size_a, size_b, mtime_a, mtime_b = rows["/home/sprite/edit.txt"]
    assert (size_a, size_b) == (14, 23)
    assert mtime_a == (trees["v1"] / "home/sprite/edit.txt").stat().st_mtime_ns
    assert mtime_b == (trees["now"] / "home/sprite/edit.txt").stat().st_mtime_ns
    assert rows["/home/sprite/gone.txt"][3:6:2] == [None, None]
    assert rows["/home/sprite/né ça.txt"][2] is None and rows["/home/sprite/né ça.txt"][3] == 8
    assert rows["/home/sprite/becomes-dir"][2:4] == [7, None], "directories have no size"


def test_large_files_are_read_only_when_their_mtime_differs(trees):
    big = trees["now"] / "home/sprite/data/big.bin"
    stamp = big.stat()
    big.write_bytes(b"\1" * LARGE)
    os.utime(big, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert "/home/sprite/data/big.bin" not in {r[0] for r in _diff(trees)}
    os.utime(big, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    assert "/home/sprite/data/big.bin" in {r[0] for r in _diff(trees)}


def test_touched_but_identical_files_are_not_changes(trees):
    keep = trees["now"] / "home/sprite/keep.txt"
    os.utime(keep, ns=(0, keep.stat().st_mtime_ns + 5_000_000_000))
    assert "/home/sprite/keep.txt" not in {r[0] for r in _diff(trees)}


def test_paths_restrict_and_platform_directories_are_ignored(trees):
    rows = _diff(trees, paths=["/home/sprite/becomes-dir", "/home/sprite/run.sh", "/proc",
                               "/.sprite", "/etc/hosts"])
    assert [r[0] for r in rows] == ["/home/sprite/becomes-dir",
                                    "/home/sprite/becomes-dir/inner", "/home/sprite/run.sh"]


def test_what_the_platform_mounts_and_the_callers_own_files_are_never_changes(trees):
    """Read-only mounts (/etc/hosts, /.sprite), unkept filesystems (proc, a tmpfs /run)
    and the paths the request names as its own are skipped; a read-write overlay (/etc)
    is still compared, and mountinfo's escapes are decoded."""
    paths = {r[0] for r in _diff(trees)}
    assert {"/etc/my.conf", "/home/sprite/edit.txt"} <= paths
    assert not {p for p in paths if p.startswith(("/proc", "/.sprite", "/run", "/etc/hosts",
                                                  "/home/sprite/.tool"))}
    (trees["now"] / "home/sprite/with space").mkdir()
    assert "/home/sprite/with space" not in {r[0] for r in _diff(trees)}
    everything = {r[0] for r in _diff(trees, own=[], mountinfo=str(trees["tmp"] / "none"))}
    assert {"/run/app.pid", "/etc/hosts", "/home/sprite/.tool/state/s.json"} <= everything


def test_between_two_checkpoints(trees):
    v2 = trees["checkpoints"] / "v2"
    (v2 / "home/sprite").mkdir(parents=True)
    (v2 / "home/sprite/keep.txt").write_text("same\n")
    code, rows = run_helper({"op": "diff", "a": "v1", "b": "v2", "paths": ["/home"],
                             "checkpoints": str(trees["checkpoints"])}, trees["tmp"])
    assert code == 0
    removed = {r[0] for r in rows if r[1] == "removed"}
    assert "/home/sprite/data/big.bin" in removed and "/home/sprite/data" in removed
    assert "/home/sprite/keep.txt" not in {r[0] for r in rows}


def test_a_checkpoint_that_is_not_mounted_names_those_that_are(trees):
    (trees["checkpoints"] / "v7").mkdir()
    for missing in ("v3", "../now", ""):
        code, rows = run_helper({"op": "diff", "a": missing, "b": None,
                                 "checkpoints": str(trees["checkpoints"])}, trees["tmp"])
        assert code == 3
        assert rows == [{"error": "not-mounted", "id": missing, "mounted": ["v1", "v7"]}]
    code, rows = run_helper({"op": "diff", "a": "v1", "checkpoints": str(trees["tmp"] / "no")},
                            trees["tmp"])
    assert (code, rows[0]["mounted"]) == (3, [])


def _one(trees: dict[str, Path], **request: object) -> tuple[int, dict]:
    code, rows = run_helper({"checkpoints": str(trees["checkpoints"]),
                             "now": str(trees["now"]), "a": "v1", "b": None, **request},
                            trees["tmp"])
    assert len(rows) == 1
    return code, rows[0]


def test_file_diff_of_text_binary_and_missing_files(trees):
    code, text = _one(trees, op="file", path="/home/sprite/edit.txt")
    assert code == 0 and not text["binary"] and not text["same"]
    assert text["diff"].splitlines()[:2] == ["--- v1:/home/sprite/edit.txt",
                                             "+++ now:/home/sprite/edit.txt"]
    assert "-line 2" in text["diff"] and "+line two" in text["diff"]
    code, binary = _one(trees, op="file", path="home/sprite/data/big.bin")
    assert binary == {"size_a": LARGE, "size_b": LARGE, "same": True, "binary": True,
                      "diff": ""}
    _, added = _one(trees, op="file", path="/home/sprite/né ça.txt")
    assert added["diff"].startswith("--- /dev/null\n+++ now:/home/sprite/né ça.txt")
    code, refused = _one(trees, op="file", path="/home/sprite/nothing")
    assert code == 2 and "exists in neither v1 nor now" in refused["error"]
    code, refused = _one(trees, op="file", path="/home/sprite/data")
    assert code == 2 and "is a directory" in refused["error"]


def test_read_and_list_a_past_state(trees):
    _, file = _one(trees, op="read", path="/home/sprite/gone.txt")
    assert base64.b64decode(file["data"]) == b"bye\n" and file["type"] == "file"
    _, link = _one(trees, op="read", path="/home/sprite/link")
    assert (link["type"], link["target"]) == ("symlink", "keep.txt")
    code, missing = _one(trees, op="read", path="/home/sprite/né ça.txt")
    assert code == 2 and "no such file" in missing["error"]
    code, rows = run_helper({"op": "list", "a": "v1", "path": "/home/sprite",
                             "checkpoints": str(trees["checkpoints"])}, trees["tmp"])
    assert code == 0
    assert [r["name"] for r in rows] == ["becomes-dir", "data", "edit.txt", "gone.txt",
                                         "keep.txt", "link", "run.sh", "same size.txt"]
    data = next(r for r in rows if r["name"] == "data")
    assert data["isDir"] and data["type"] == "directory" and data["path"] == "/home/sprite/data"


@pytest.mark.skipif(OLDEST is None, reason="no Python 3.8 on this machine")
def test_runs_on_the_oldest_python_a_sprite_may_have(trees):
    assert OLDEST is not None
    code, rows = run_helper({"op": "diff", "a": "v1", "b": None,
                             "checkpoints": str(trees["checkpoints"]),
                             "now": str(trees["now"]), "mountinfo": str(trees["mountinfo"]),
                             "own": ["/home/sprite/.tool"]}, trees["tmp"], OLDEST)
    assert code == 0 and {r[0]: r[1] for r in rows} == {r[0]: r[1] for r in _diff(trees)}
    code, rows = run_helper({"op": "file", "a": "v1", "b": None, "path": "/home/sprite/edit.txt",
                             "checkpoints": str(trees["checkpoints"]),
                             "now": str(trees["now"])}, trees["tmp"], OLDEST)
    assert code == 0 and "+line two" in rows[0]["diff"]


def test_fifos_are_compared_by_type_and_never_opened(trees):
    os.mkfifo(trees["v1"] / "home/sprite/pipe")
    os.mkfifo(trees["now"] / "home/sprite/pipe")
    (trees["now"] / "home/sprite/keep.txt").unlink()
    os.mkfifo(trees["now"] / "home/sprite/keep.txt")
    changes = {r[0]: r[1] for r in _diff(trees)}
    assert changes["/home/sprite/keep.txt"] == "type-changed"
    assert "/home/sprite/pipe" not in changes
    code, refused = _one(trees, op="file", path="/home/sprite/keep.txt")
    assert code == 2 and refused["error"] == "/home/sprite/keep.txt is a fifo, not a regular file"


def test_a_view_of_the_sprites_own_layer_against_the_whole_filesystem_now(tmp_path):
    """Local views hold only what the sprite wrote; now also shows the base beneath."""
    view = tmp_path / "checkpoints" / "v1"
    now = tmp_path / "now"
    (view / "home/sprite").mkdir(parents=True)
    (view / "home/sprite/notes.txt").write_text("old\n")
    (view / "etc").mkdir()
    (view / "usr").mkdir()
    (view / "etc/hosts").write_text("127.0.0.1 sprite\n")
    for base in ("usr/bin/tool", "usr/local/lib/x.py", "etc/passwd", "etc/ssl/cert.pem"):
        (now / base).parent.mkdir(parents=True, exist_ok=True)
        (now / base).write_text("from the base image\n")
    (now / "home/sprite").mkdir(parents=True)
    (now / "home/sprite/notes.txt").write_text("old\n")
    (now / "etc/hosts").write_text("127.0.0.1 sprite\n")
    newest_base = max(p.stat().st_ctime_ns for p in now.rglob("*"))
    taken = tmp_path / "taken"
    while True:  # the moment v1 was taken: strictly after every base file changed
        taken.write_text("")
        if taken.stat().st_ctime_ns > newest_base:
            break
    (now / "home/sprite/new.txt").write_text("new\n")
    (now / "usr/local/bin").mkdir()
    (now / "usr/local/bin/added-tool").write_text("#!/bin/sh\n")
    request = {"op": "diff", "a": "v1", "b": None, "checkpoints": str(tmp_path / "checkpoints"),
               "now": str(now), "since": taken.stat().st_ctime_ns / 1e9}
    code, rows = run_helper(request, tmp_path)
    assert code == 0
    assert {r[0]: r[1] for r in rows} == {
        "/home/sprite/new.txt": "added",
        "/usr/local": "added",
        "/usr/local/bin": "added",
        "/usr/local/bin/added-tool": "added",
    }, "a base directory whose entries changed counts as a change"
    code, rows = run_helper({**request, "since": None}, tmp_path)
    assert "/usr/bin/tool" in {r[0] for r in rows}, "without since, every path of now counts"


def test_a_view_of_shared_objects_reports_the_modes_and_mtimes_it_records(trees):
    """Where a view's files are hard links to shared objects (the local server's), the
    view's .sprite/stat.json gives each entry's own mode and mtime."""
    v2 = trees["checkpoints"] / "v2"
    shutil.copytree(trees["v1"], v2, symlinks=True)
    for path in v2.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o600)
            os.utime(path, ns=(0, 5))
    entries = {}
    for path in trees["v1"].rglob("*"):
        rel = path.relative_to(trees["v1"]).as_posix()
        info = path.lstat()
        entries[rel] = [info.st_mode & 0o7777, info.st_mtime_ns]
    entries["home/sprite/run.sh"][0] = 0o755
    (v2 / ".sprite/stat.json").write_text(json.dumps({"entries": entries}))
    code, rows = run_helper({"op": "diff", "a": "v1", "b": "v2",
                             "checkpoints": str(trees["checkpoints"])}, trees["tmp"])
    assert code == 0 and [r[:2] for r in rows] == [["/home/sprite/run.sh", "mode-changed"]]
    code, listed = run_helper({"op": "list", "a": "v2", "path": "/home/sprite",
                               "checkpoints": str(trees["checkpoints"])}, trees["tmp"])
    keep = next(r for r in listed if r["name"] == "keep.txt")
    assert keep["mode"] == "0644"
    assert keep["modTime"] == pytest.approx(
        (trees["v1"] / "home/sprite/keep.txt").stat().st_mtime_ns / 1e9, abs=1e-6)
