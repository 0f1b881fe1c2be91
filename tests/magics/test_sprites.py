"""%sprite status, use, list, create, destroy, history, help — through a real shell."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import LocalServer


def terminal_ipython(cell: str, server: LocalServer, ipython_dir: Path) -> str:
    """What a user sees typing ``cell`` in terminal IPython with the extension loaded.

    Long help goes through IPython's pager (``$PAGER``, which writes to the terminal, not
    to ``sys.stdout``), so it runs in a real IPython whose terminal is our pipe."""
    env = {key: value for key, value in os.environ.items() if key not in ("LINES", "COLUMNS")}
    env.update(IPYTHONDIR=str(ipython_dir), PAGER="cat", TERM="xterm-256color",
               SPRITES_API_URL=server.url, SPRITES_TOKEN=server.token)
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--ext", "sprites_jupyter",
         "-c", cell],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def sprite_question_mark(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return terminal_ipython("%sprite?", server, tmp_path_factory.mktemp("ipython"))


def test_status_without_sprite_names_backend_and_how_to_select(ip, server, capsys):
    ip.ok("%sprite")
    out = capsys.readouterr().out
    assert f"Backend: local server at {server.url}" in out
    assert "none selected (run %sprite use NAME)" in out
    with server.http() as http:
        sandboxed = http.head("/v1/sprites").headers["sprite-local-isolation"] == "sandbox"
    assert ("Limits: processes " in out) == sandboxed, out


def test_commands_needing_a_sprite_say_how_to_select_one(ip):
    assert ip.fails("%sprite checkpoints") == "No sprite selected: run %sprite use NAME"


def test_use_unknown_sprite_says_how_to_create_it(ip):
    message = ip.fails("%sprite use no-such-sprite")
    assert message.startswith("Sprite no-such-sprite not found: add --create")


def test_use_create_list_status_destroy(ip, http, capsys):
    name = f"t-{uuid.uuid4().hex[:10]}"
    ip.ok(f"%sprite use {name} --create")
    assert ip.magics.sprite == name
    assert http.get(f"/v1/sprites/{name}").status_code == 200
    assert ip.magics.journal.entries[-1].outcome == "ok: created"
    ip.ok("%sprite")
    assert f"Sprite: {name} (" in capsys.readouterr().out

    frame = ip.ok("%sprite list")
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.name == "name" and name in frame.index
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"

    message = ip.fails(f"%sprite destroy {name}")
    assert "add --yes" in message
    assert http.get(f"/v1/sprites/{name}").status_code == 200
    ip.ok(f"%sprite destroy {name} --yes")
    assert http.get(f"/v1/sprites/{name}").status_code == 404
    assert ip.magics.sprite == ""


def test_create_then_use_and_duplicate_is_one_line(ip, http):
    name = f"t-{uuid.uuid4().hex[:10]}"
    try:
        ip.ok(f"%sprite create {name}")
        assert ip.magics.sprite == ""
        assert "409" in ip.fails(f"%sprite create {name}")
    finally:
        http.delete(f"/v1/sprites/{name}")


def test_unknown_sprite_via_s_option_is_reported_as_missing_sprite(ip):
    message = ip.fails("%sprite checkpoints -s no-such-sprite")
    assert message.startswith("Sprite no-such-sprite not found: create it with")


def test_history_journals_every_operation(ip, current):
    ip.fails("%sprite restore v99 --yes")
    ip.ok("%sprite checkpoints")
    journal = ip.ok("%sprite history")
    assert list(journal.columns) == ["time", "sprite", "operation", "target", "outcome",
                                     "duration"]
    assert str(journal["time"].dtype) == "datetime64[ns, UTC]"
    assert journal["duration"].dtype == "float64"
    rows = journal[journal["sprite"] == current]
    assert rows["operation"].tolist() == ["use", "restore", "checkpoints"]
    assert rows["outcome"].iloc[1].startswith("error: Checkpoint v99 not found")
    assert rows["outcome"].iloc[2] == "ok"


def test_unknown_subcommand_and_option_suggest_the_nearest(ip):
    assert "did you mean 'checkpoint'?" in ip.fails("%sprite chekpoint")
    assert "did you mean '--follow'?" in ip.fails("%sprite logs web --folow")
    assert "did you mean 'restart'?" in ip.fails("%sprite service restrat web")


def test_help_and_question_mark_print_real_help(ip, capsys, server, sprite_question_mark,
                                                tmp_path):
    ip.ok("%sprite help restore")
    out = capsys.readouterr().out
    assert "usage: %sprite restore" in out and "--yes" in out
    ip.ok("%sprite help")
    assert "checkpoints" in capsys.readouterr().out
    assert "%sprite help SUBCOMMAND" in sprite_question_mark and "browse" in sprite_question_mark
    assert "--rollback-on-error" in terminal_ipython("%%sprite_exec?", server, tmp_path)


def test_create_exist_ok_says_so_and_succeeds(ip, http, capsys):
    name = f"t-{uuid.uuid4().hex[:10]}"
    try:
        ip.ok(f"%sprite create {name} --exist-ok")
        ip.ok(f"%sprite create {name} --exist-ok")
        out = capsys.readouterr().out
        assert f"Created sprite {name}" in out
        assert f"Sprite {name} already exists; select it with %sprite use {name}" in out
        outcomes = [e.outcome for e in ip.magics.journal.entries if e.sprite == name]
        assert outcomes == ["ok", "ok: already existed"]
    finally:
        http.delete(f"/v1/sprites/{name}")


def test_status_says_token_rejected_and_picks_up_a_new_token(ip, server, monkeypatch,
                                                               capsys):
    ip.ok("%sprite")
    monkeypatch.setenv("SPRITES_TOKEN", "not-the-token")
    message = ip.fails("%sprite")
    assert message.startswith(f"Backend {server.url}: token rejected (")
    assert message.endswith("check SPRITES_TOKEN")
    monkeypatch.setenv("SPRITES_TOKEN", server.token)
    capsys.readouterr()
    ip.ok("%sprite")
    assert f"Backend: local server at {server.url}" in capsys.readouterr().out


def test_status_says_when_the_url_cannot_be_reached(ip, monkeypatch):
    import socket

    with socket.socket() as unused:  # a port nothing listens on: bound, never listening
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        monkeypatch.setenv("SPRITES_API_URL", url)
        message = ip.fails("%sprite")
    assert message.startswith(f"Backend {url}: cannot reach {url}")


def test_question_mark_shows_every_subcommand_with_its_options(ip, capsys,
                                                              sprite_question_mark):
    out = sprite_question_mark
    for usage in ("usage: %sprite restore", "usage: %sprite service create",
                  "usage: %sprite logs", "usage: %sprite policy allow"):
        assert usage in out
    assert "--exist-ok" in out and "--rollback-on-error" in out and "--follow" in out
    ip.ok("%sprite help")
    assert "api_url" in capsys.readouterr().out


def test_list_shows_the_useful_columns_and_all_of_them_on_request(ip, current):
    frame = ip.ok("%sprite list")
    assert list(frame.columns) == ["status", "url", "created_at", "labels"]
    assert current in frame.index
    every = ip.ok("%sprite list --all")
    assert {"id", "organization", "updated_at"} <= set(every.columns)
