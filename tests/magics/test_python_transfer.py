"""%sprite push / pull and --push / --pull against the real local server."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from sprites_jupyter.magic_commands.python import transfer as python_transfer
from sprites_jupyter.magic_commands.python.lifecycle import sessions_of

from .python_helpers import run_captured, sprite_has


def test_bytes_and_a_dict_round_trip(ip, current, capsys, http):
    ip.shell.user_ns.update(blob=bytes(range(256)) * 3, config={"a": [1, 2.5], "b": None})
    ip.ok("%sprite push blob config")
    assert "Pushed blob (bytes, 768 bytes as raw)" in capsys.readouterr().out
    _, shown, _, _ = run_captured(ip, "%%sprite_python\ntype(blob).__name__, len(blob), "
                                      "config['a']\n")
    assert shown == [{"text/plain": "('bytes', 768, [1, 2.5])"}]
    ip.ok("%sprite pull blob --as blob2")
    ip.ok("%sprite pull config --as config2")
    assert ip.shell.user_ns["blob2"] == ip.shell.user_ns["blob"]
    assert ip.shell.user_ns["config2"] == {"a": [1, 2.5], "b": None}
    # the agent replies as soon as the last part is written and removes it at the
    # kernel's end, which reaches it before any later request
    ip.ok("%%sprite_python\npass\n")
    assert _leftovers(http, current) == []


def test_round_trips_on_a_sprite_python_with_only_the_standard_library(ip, current,
                                                                        stdlib_python):
    ip.shell.user_ns.update(blob=b"\x00\xff" * 1000, nested={"k": (1, {2, 3})})
    ip.ok("%%sprite_python --push blob,nested --pull size\nsize = len(blob), nested['k']\n")
    assert ip.shell.user_ns["size"] == (2000, (1, {2, 3}))
    ip.ok("%sprite pull blob --as blob_back")
    assert ip.shell.user_ns["blob_back"] == b"\x00\xff" * 1000


def test_cell_push_and_pull_options(ip, current):
    ip.shell.user_ns["numbers"] = [3, 1, 2]
    ip.ok("%%sprite_python --push numbers --pull ordered,total\n"
          "ordered = sorted(numbers)\ntotal = sum(numbers)\n")
    assert ip.shell.user_ns["ordered"] == [1, 2, 3] and ip.shell.user_ns["total"] == 6
    ops = [(e.operation, e.target, e.outcome) for e in ip.magics.journal.entries
           if e.operation in ("push", "pull")]
    assert ops[-3:] == [("push", "numbers", "ok"), ("pull", "ordered", "ok"),
                        ("pull", "total", "ok")]


def test_a_dataframe_round_trip_keeps_dtypes(library_ip):
    ip = library_ip
    import pandas as pd

    frame = pd.DataFrame({"i": pd.array([1, 2, 3], dtype="int32"),
                          "f": [0.5, 1.5, None], "s": ["a", "b", "c"],
                          "t": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"],
                                              utc=True),
                          "c": pd.Categorical(["x", "y", "x"])}, index=[10, 20, 30])
    ip.shell.user_ns["frame"] = frame
    ip.ok("%sprite push frame --as remote_frame")
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nstr(remote_frame.dtypes['i']), "
                                      "remote_frame.shape\n")
    assert shown == [{"text/plain": "('int32', (3, 5))"}]
    ip.ok("%sprite pull remote_frame --as back")
    back = ip.shell.user_ns["back"]
    pd.testing.assert_frame_equal(back, frame)
    assert back.dtypes.to_dict() == frame.dtypes.to_dict()


def test_dataframes_go_as_arrow_and_fall_back_to_pickle_when_arrow_cannot_hold_them(
        library_ip, capsys):
    ip = library_ip
    pytest.importorskip("pyarrow")
    ip.ok("%%sprite_python\npass\n")
    (sprite,) = sessions_of(ip.magics.context)
    if not sprite_has(ip, sprite, "pyarrow"):
        pytest.skip("the sprite's python has no pyarrow, so DataFrames go by pickle")
    import pandas as pd

    ip.shell.user_ns.update(plain=pd.DataFrame({"x": [1.5, 2.5]}, index=["a", "b"]),
                            mixed=pd.DataFrame({"m": [1, "a", 2.5]}))
    ip.ok("%sprite push plain mixed")
    out = capsys.readouterr().out
    assert "plain (pandas.DataFrame" in out and "as arrow)" in out
    assert "as pickle)" in out or "as cloudpickle)" in out
    ip.ok("%%sprite_python\nmixed2 = mixed.copy()\n")
    ip.ok("%sprite pull plain --as plain_back")
    ip.ok("%sprite pull mixed2")
    pd.testing.assert_frame_equal(ip.shell.user_ns["plain_back"], ip.shell.user_ns["plain"])
    pd.testing.assert_frame_equal(ip.shell.user_ns["mixed2"], ip.shell.user_ns["mixed"])


def test_numeric_frames_move_as_their_array_and_come_back_equal(library_ip, capsys):
    """A frame that is one numeric array under string labels and a RangeIndex moves as
    that array (from its own memory, rebuilt around the received one); a frame with
    another index or mixed dtypes does not."""
    ip = library_ip
    import numpy as np
    import pandas as pd

    frames = {
        "block": pd.DataFrame(np.arange(30.0).reshape(10, 3), columns=list("abc")),
        "ints": pd.DataFrame({"x": np.arange(5), "y": np.arange(5) * 2}),
        "named": pd.DataFrame(np.arange(20, dtype=complex).reshape(10, 2),
                              columns=pd.Index(["re", "im"], name="field"),
                              index=pd.RangeIndex(5, 25, 2, name="row")),
        "strided": pd.DataFrame(np.arange(40.0).reshape(20, 2), columns=["p", "q"]).iloc[::3],
        "no_rows": pd.DataFrame(np.empty((0, 2), dtype=bool), columns=["p", "q"]),
    }
    ip.shell.user_ns.update(frames, labelled=pd.DataFrame({"v": [1.0]}, index=["k"]))
    for name, frame in frames.items():
        ip.ok(f"%sprite push {name}")
        assert f"{name} (pandas.DataFrame" in (out := capsys.readouterr().out), out
        assert "as npy-frame)" in out, out
        ip.ok(f"%sprite pull {name} --as {name}_back")
        assert "as npy-frame)" in capsys.readouterr().out
        back = ip.shell.user_ns[f"{name}_back"]
        pd.testing.assert_frame_equal(back, frame)
        if len(back):
            back.iloc[0, 0] = back.iloc[-1, -1]  # a frame of its own, writable
    ip.ok("%sprite push labelled")
    assert "as npy-frame" not in capsys.readouterr().out


def test_a_push_asks_what_the_session_has_again_only_when_the_value_could_use_it(
        library_ip, capsys):
    """What the session could not import is asked again before a push that could use it
    (a package installed mid-session is used), not before one of bytes, which always
    go raw."""
    ip = library_ip
    import numpy as np

    ip.ok("%%sprite_python\npass\n")
    (session,) = sessions_of(ip.magics.context).values()
    session.info["has"] = {**session.info["has"], "numpy": False}  # as if installed since
    ip.shell.user_ns.update(blob=b"abc", grid=np.arange(6.0))
    ip.ok("%sprite push blob")
    assert session.info["has"]["numpy"] is False
    ip.ok("%sprite push grid")
    assert "as npy)" in capsys.readouterr().out
    assert session.info["has"]["numpy"] is True


def test_a_numpy_array_round_trip(library_ip, capsys):
    ip = library_ip
    import numpy as np

    ip.shell.user_ns["grid"] = np.arange(12, dtype="float32").reshape(3, 4)
    ip.ok("%sprite push grid")
    assert "as npy" in capsys.readouterr().out
    ip.ok("%%sprite_python\ngrid2 = grid * 2\n")
    ip.ok("%sprite pull grid2")
    back = ip.shell.user_ns["grid2"]
    assert back.dtype == np.float32 and back.shape == (3, 4)
    assert (back == np.arange(12, dtype="float32").reshape(3, 4) * 2).all()


def test_arrays_of_every_layout_pull_back_equal(library_ip):
    """Pulled arrays are read straight into their memory: Fortran order, a structured
    dtype, non-ASCII field names (format 3.0, read by numpy), an empty array, a scalar."""
    ip = library_ip
    import numpy as np

    values = {
        "fortran": np.asfortranarray(np.arange(24, dtype=">i4").reshape(2, 3, 4)),
        "records": np.array([(1, 2.5), (3, -1.0)], dtype=[("n", "<i8"), ("x", "<f4")]),
        "empty": np.zeros((0, 5)),
        "scalar": np.array(7.25),
        "unicode_fields": np.zeros(3, dtype=[("größe", "<f8"), ("n", "<i2")]),
    }
    ip.shell.user_ns.update(values)
    for name in values:
        ip.ok(f"%sprite push {name}")
        ip.ok(f"%sprite pull {name} --as {name}_back")
        back = ip.shell.user_ns[f"{name}_back"]
        assert back.dtype == values[name].dtype and back.shape == values[name].shape, name
        assert np.array_equal(back, values[name]), name
    assert ip.shell.user_ns["fortran_back"].flags.f_contiguous


def test_pushing_pandas_to_a_sprite_without_pandas_is_one_line(ip, current, stdlib_python):
    if sprite_has(ip, current, "pandas"):
        pytest.skip("the sprite's python3 has pandas, so there is nothing to refuse")
    import pandas as pd

    ip.shell.user_ns["frame"] = pd.DataFrame({"a": [1]})
    message = ip.fails("%sprite push frame")
    assert message == (f"Cannot push frame (pandas.DataFrame): the sprite's {stdlib_python} "
                       f"cannot import pandas; install it there (%sprite exec {stdlib_python} "
                       "-m pip install pandas)")


def _leftovers(http, sprite: str) -> list[str]:
    """What transfers left in the sprite's transfer folder."""
    response = http.get(f"/v1/sprites/{sprite}/fs/list",
                        params={"path": "/home/sprite/.sprites_jupyter/python/transfer",
                                "workingDir": "/"})
    return [] if response.status_code == 404 else [e["name"] for e in response.json()["entries"]]


def test_values_that_cannot_be_serialised_fail_with_one_line_naming_the_type(ip, current,
                                                                               http):
    ip.shell.user_ns["lock"] = threading.Lock()
    message = ip.fails("%sprite push lock")
    assert message.startswith("Cannot push lock: a _thread.lock cannot be serialised")
    ip.ok("%%sprite_python\nnumbers = (n for n in range(3))\n")
    message = ip.fails("%sprite pull numbers")
    assert message.startswith("Cannot pull numbers: a generator that cannot be serialised")
    assert ip.fails("%sprite pull missing") == (f"No variable missing in the Python session "
                                                f"on sprite {current}")
    assert ip.fails("%sprite push missing") == "No variable missing in this kernel"
    assert _leftovers(http, current) == []


def test_a_push_that_fails_midway_leaves_the_old_value_and_no_parts(ip, current, http,
                                                                     monkeypatch):
    """Parts already announced (and read by the agent) are dropped when the rest cannot
    be sent: the session keeps its old value, the sprite keeps no parts, and the next
    push works."""
    monkeypatch.setattr(python_transfer, "SERIALISED_PART", 70_000)
    ip.ok("%%sprite_python\nhalf = 'old'\n")
    ip.shell.user_ns["half"] = [bytes(100_000), bytes(100_000), threading.Lock()]
    message = ip.fails("%sprite push half")
    assert message.startswith("Cannot push half: a list cannot be serialised")
    assert _leftovers(http, current) == []
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nhalf\n")
    assert shown == [{"text/plain": "'old'"}]
    ip.shell.user_ns["half"] = [bytes(100_000), bytes(100_000)]
    ip.ok("%sprite push half")
    _, shown, _, _ = run_captured(ip, "%%sprite_python\n[len(b) for b in half]\n")
    assert shown == [{"text/plain": "[100000, 100000]"}]


def test_a_pull_whose_value_fails_midway_is_one_line_and_leaves_nothing(ip, current, http,
                                                                        monkeypatch):
    """The agent announces parts as it writes them; when its serialiser fails after some
    were read here, the pull is one line, no variable is set, no parts stay, and a
    value this kernel cannot load (read while the agent still writes) stops it too."""
    monkeypatch.setattr(python_transfer, "PART_SIZE", 100_000)
    ip.ok("%%sprite_python\nimport threading\n"
          "halfway = [bytes(350_000), threading.Lock()]\n"
          "class Local:\n    pass\n"
          "unknown = [Local() for _ in range(3)] + [bytes(500_000)]\n")
    message = ip.fails("%sprite pull halfway")
    assert message.startswith("Cannot pull halfway: a list that cannot be serialised "
                              "(TypeError:")
    assert "\n" not in message and "halfway" not in ip.shell.user_ns
    message = ip.fails("%sprite pull unknown")
    assert message.startswith("Cannot pull unknown (list): its class was defined in a ")
    assert "unknown" not in ip.shell.user_ns
    assert _leftovers(http, current) == []
    ip.ok("%%sprite_python\nwhole = bytes(250_000)\n")
    ip.ok("%sprite pull whole")
    assert ip.shell.user_ns["whole"] == bytes(250_000)


def test_a_session_of_an_older_agent_is_asked_to_restart_before_a_push(ip, current):
    """An agent started by an older sprites_jupyter (its hello lacks ``transfers``) moves
    values another way: one line says what to do, nothing is sent."""
    ip.ok("%%sprite_python\npass\n")
    session = sessions_of(ip.magics.context)[current]
    session.info.pop("transfers")
    ip.shell.user_ns["value"] = b"x"
    assert ip.fails("%sprite push value") == (
        f"Cannot push value: the Python session on sprite {current} was started by an "
        "older sprites_jupyter; restart it (%sprite python stop, then run a cell) and "
        "push again")
    assert ip.fails("%sprite pull value").startswith("Cannot pull value: the Python session")


@pytest.mark.timeout(600)
def test_a_200_mb_value_round_trips_with_bounded_memory(ip, current):
    size = 200 * 1024 * 1024
    ip.shell.user_ns["big"] = bytes(range(256)) * (size // 256)
    ip.ok("%%sprite_python\npass\n")
    tracemalloc.start()
    try:
        ip.ok("%sprite push big")
        _, pushed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        ip.ok("%sprite pull big --as big_back")
        _, pulled_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # bytes go up from their own memory, and come back into one buffer
    assert pushed_peak < 8 << 20, f"push held {pushed_peak} bytes at once"
    assert pulled_peak < size * 1.2, f"pull held {pulled_peak} bytes at once"
    assert ip.shell.user_ns["big_back"] == ip.shell.user_ns["big"]
    status = ip.ok("%sprite python")
    assert status["memory"] < 2 * size, "the agent held the value twice"
    assert sessions_of(ip.magics.context)[current].alive


def test_values_in_many_parts_round_trip(library_ip, monkeypatch):
    """Parts cut anywhere (inside an array's header, between header and data, inside
    the data; a serialised value across parts; the halving parts that end a push) are
    read back as one stream."""
    ip = library_ip
    import numpy as np
    import pandas as pd

    monkeypatch.setattr(python_transfer, "PART_SIZE", 100_000)
    monkeypatch.setattr(python_transfer, "SERIALISED_PART", 70_000)
    monkeypatch.setattr(python_transfer, "TAIL_PART", 9_000)
    values = {
        "tiny_parts": np.arange(50_000, dtype="<f8").reshape(500, 100),
        "fortran": np.asfortranarray(np.arange(60_000, dtype=">i4").reshape(300, 200)),
        "strided": np.arange(90_000, dtype="f4")[::3],  # not contiguous: serialised
        "blob": bytes(range(256)) * 1000,
        "frame": pd.DataFrame({"x": np.arange(40_000), "y": np.arange(40_000) / 7}),
        "listing": list(range(30_000)),
    }
    ip.shell.user_ns.update(values)
    for name, value in values.items():
        ip.ok(f"%sprite push {name}")
        ip.ok(f"%sprite pull {name} --as {name}_back")
        back = ip.shell.user_ns[f"{name}_back"]
        if isinstance(value, np.ndarray):
            assert back.dtype == value.dtype and np.array_equal(back, value), name
        elif isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(back, value)
        else:
            assert back == value, name
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nfloat(tiny_parts.sum()), "
                                      "fortran.flags.f_contiguous, len(blob)\n")
    assert shown == [{"text/plain": f"({float(values['tiny_parts'].sum())!r}, True, 256000)"}]
