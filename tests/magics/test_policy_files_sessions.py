"""%sprite policy, put/get/ls, sessions/kill — through a real shell and server."""

from __future__ import annotations

import threading

import pandas as pd

from tests.waiting import eventually


def test_policy_allow_deny_set_reset(ip, current, http):
    assert ip.ok("%sprite policy").empty
    ip.ok("%sprite policy allow pypi.org")
    frame = ip.ok("%sprite policy deny example.com")
    assert frame[["domain", "action"]].values.tolist() == [["pypi.org", "allow"],
                                                            ["example.com", "deny"]]
    frame = ip.ok("%sprite policy deny pypi.org")
    assert frame[["domain", "action"]].values.tolist() == [["example.com", "deny"],
                                                            ["pypi.org", "deny"]]
    ip.shell.user_ns["rules"] = [{"include": "defaults"},
                                 {"domain": "*.github.com", "action": "allow"}]
    frame = ip.ok("%sprite policy set rules")
    assert frame["include"].tolist() == ["defaults", ""]
    stored = http.get(f"/v1/sprites/{current}/policy/network").json()["rules"]
    assert {"domain": "*.github.com", "action": "allow"} in stored
    assert ip.ok("%sprite policy reset").empty


def test_policy_errors_are_one_line(ip, current):
    assert "No variable named nothing" in ip.fails("%sprite policy set nothing")
    ip.shell.user_ns["bad"] = "allow everything"
    assert "must be a list of rule dicts" in ip.fails("%sprite policy set bad")
    ip.shell.user_ns["bad"] = [{"domain": "x.com", "action": "maybe"}]
    assert "action must be" in ip.fails("%sprite policy set bad")  # the server's 400


def test_put_ls_get_round_trip(ip, current, tmp_path, capsys):
    local = tmp_path / "data.csv"
    local.write_text("a,b\n1,2\n")
    ip.ok(f"%sprite put {local} /home/sprite/data.csv")
    assert f"Uploaded {local} to {current}:/home/sprite/data.csv" in capsys.readouterr().out
    frame = ip.ok("%sprite ls")
    assert isinstance(frame, pd.DataFrame) and "data.csv" in frame.index
    assert frame.loc["data.csv", "size"] == 8 and not frame.loc["data.csv", "is_dir"]
    assert str(frame["size"].dtype) == "Int64"
    assert str(frame["mod_time"].dtype) == "datetime64[ns, UTC]"
    back = tmp_path / "back.csv"
    ip.ok(f"%sprite get /home/sprite/data.csv {back}")
    assert back.read_text() == "a,b\n1,2\n"


def test_file_errors_are_one_line(ip, current, tmp_path):
    assert "No local file or folder" in ip.fails(f"%sprite put {tmp_path}/nope /home/sprite/x")
    message = ip.fails(f"%sprite get /home/sprite/missing {tmp_path}/m")
    assert "/home/sprite/missing" in message and "no such file" in message


def test_sessions_and_kill(ip, current, http):
    worker = threading.Thread(
        target=ip.magics.context.sprite().run, args=("sleep", "30"), daemon=True)
    worker.start()
    eventually(lambda: not ip.ok("%sprite sessions").empty, "the session to be listed")
    frame = ip.ok("%sprite sessions")
    assert frame.index.name == "id" and len(frame) == 1
    assert "sleep" in frame["command"].iloc[0]
    assert frame["is_active"].dtype == bool
    ip.ok(f"%sprite kill {frame.index[0]}")
    worker.join(60)
    assert not worker.is_alive()
    assert http.get(f"/v1/sprites/{current}/exec").json()["sessions"] == []
    assert ip.fails("%sprite kill 999999").endswith("(%sprite sessions lists the running sessions)")
