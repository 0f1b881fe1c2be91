"""A checkpoint holds the ``%%sprite_python`` session's variables: checkpoint → change →
restore → the next cell has them back, through a real shell on the local server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from sprites_jupyter.magic_commands.python.lifecycle import sessions_of
from sprites_jupyter.magic_commands.session_state import STATE_ROOT

from .python_helpers import run_captured, sprite_has

KINDS = (
    "%%sprite_python\n"
    "import math\n"
    "from collections import OrderedDict as OD\n"
    "class Model:\n"
    "    def __init__(self, weight):\n"
    "        self.weight = weight\n"
    "    def fit(self, xs):\n"
    "        self.weight = sum(xs) / len(xs)\n"
    "        return self\n"
    "    def predict(self, x):\n"
    "        return x * self.weight\n"
    "def make_adder(n):\n"
    "    def add(x):\n"
    "        return x + n\n"
    "    return add\n"
    "count = 41\n"
    "text = 'hello'\n"
    "model = Model(0).fit([1, 2, 3])\n"
    "add3 = make_adder(3)\n"
    "shared = [1, 2]\n"
    "alias = shared\n"
    "holder = {'list': shared}\n"
    "ordered = OD(a=1)\n"
    "import socket, threading\n"
    "conn = socket.socket()\n"
    "gen = (i for i in range(3))\n"
)


def shown_value(ip, code: str, options: str = "") -> str:
    result, shown, _, _ = run_captured(ip, f"%%sprite_python {options}\n{code}\n")
    assert result.success, result.error_in_exec
    return shown[-1]["text/plain"]


def test_variables_of_many_kinds_come_back_after_restore(ip, current):
    ip.ok(KINDS)
    result, _, out, _ = run_captured(ip, "%sprite checkpoint -m kinds")
    assert result.success
    checkpoint = result.result.id
    assert "saved 11 variables" in out
    assert "not saveable: conn (socket.socket), gen (generator)" in out
    ip.ok("%%sprite_python\ncount = 0\nshared.append(3)\ndel model\n")
    ip.ok(f"%sprite restore {checkpoint} --yes")
    result, shown, out, _ = run_captured(
        ip, "%%sprite_python\n(count, text, model.predict(2), type(model) is Model, add3(1),"
            " alias is shared, holder['list'] is shared, shared, math.floor(2.5), ordered)\n")
    assert result.success, result.error_in_exec
    assert out.startswith(f"restored 11 variables from {checkpoint} (not restorable: conn, gen)")
    assert shown[-1]["text/plain"] == (
        "(41, 'hello', 4.0, True, 4, True, True, [1, 2], 2, OrderedDict([('a', 1)]))")
    # The resumed session goes on saving, checkpointing and restoring.
    ip.ok("%%sprite_python\ncount = 100\n")
    second = ip.ok("%sprite checkpoint -m second").id
    ip.ok("%%sprite_python\ncount = 5\n")
    ip.ok(f"%sprite restore {second} --yes")
    assert shown_value(ip, "count") == "100"


def _objects(ip, sprite: str) -> dict[str, object]:
    handle = ip.magics.context.sprite(sprite)
    session = sessions_of(ip.magics.context)[sprite]
    folder = f"{STATE_ROOT}/{session.session_id}"
    manifest = json.loads(handle.read_file(f"{folder}/manifest.json"))
    files = {entry.name: entry.mod_time for entry in handle.list_dir(f"{folder}/objects")}
    return {"manifest": manifest, "files": files}


def test_a_second_checkpoint_writes_only_the_variable_that_changed(ip, current):
    ip.ok("%%sprite_python\nimport os\n"
          "for i in range(10):\n    globals()[f'big{i}'] = os.urandom(2_000_000)\ndel i\n")
    ip.ok("%sprite checkpoint -m first")
    before = _objects(ip, current)
    assert len(before["files"]) == 10
    ip.ok("%%sprite_python\nbig3 = os.urandom(2_000_000)\n")
    result, _, out, _ = run_captured(ip, "%sprite checkpoint -m second")
    assert result.success
    assert "saved 10 variables (1 changed, 1.9 MB)" in out
    after = _objects(ip, current)
    objects = {v["name"]: v["object"] for v in after["manifest"]["variables"]}
    old_objects = {v["name"]: v["object"] for v in before["manifest"]["variables"]}
    changed = [name for name in objects if objects[name] != old_objects[name]]
    assert changed == ["big3"]
    new_files = set(after["files"]) - set(before["files"])
    assert new_files == {objects["big3"] + ".pickle"}
    kept = set(after["files"]) & set(before["files"])
    assert len(kept) == 9
    assert all(after["files"][name] == before["files"][name] for name in kept)


def test_a_mutated_list_is_never_missed(ip, current):
    ip.ok("%%sprite_python\nrows = [1, 2]\n")
    first = ip.ok("%sprite checkpoint -m two-rows").id
    ip.ok("%%sprite_python\nrows.append(3)\n")
    second = ip.ok("%sprite checkpoint -m three-rows").id
    ip.ok(f"%sprite restore {first} --yes")
    assert shown_value(ip, "rows") == "[1, 2]"
    ip.ok(f"%sprite restore {second} --yes")
    assert shown_value(ip, "rows") == "[1, 2, 3]"


def test_a_checkpoint_from_before_the_session_restores_as_before(ip, current):
    checkpoint = ip.ok("%sprite checkpoint -m empty").id
    ip.ok("%%sprite_python\nlate = 1\n")
    ip.ok("%sprite checkpoint -m with-late")
    ip.ok(f"%sprite restore {checkpoint} --yes")
    message = ip.fails("%%sprite_python\nlate\n")
    assert f"restored to {checkpoint}): its variables are gone" in message
    assert shown_value(ip, "'fresh'") == "'fresh'"


def test_new_after_a_restore_starts_an_empty_session(ip, current):
    ip.ok("%%sprite_python\nkept = 1\n")
    checkpoint = ip.ok("%sprite checkpoint -m kept").id
    ip.ok(f"%sprite restore {checkpoint} --yes")
    result = ip.shell.run_cell("%%sprite_python --new\nkept\n")
    assert result.error_in_exec.ename == "NameError"


def test_two_sprites_each_get_their_own_session_back(ip, current, http):
    other = f"t-{uuid.uuid4().hex[:10]}"
    assert http.post("/v1/sprites", json={"name": other}).status_code == 201
    try:
        _two_sprites(ip, other)
    finally:
        ip.shell.run_cell(f"%sprite python stop -s {other}")
        http.delete(f"/v1/sprites/{other}")


def _two_sprites(ip, other: str) -> None:
    ip.ok("%%sprite_python\nwhere = 'first'\n")
    ip.ok(f"%%sprite_python -s {other}\nwhere = 'second'\n")
    one = ip.ok("%sprite checkpoint -m one").id
    two = ip.ok(f"%sprite checkpoint -s {other} -m two").id
    ip.ok("%%sprite_python\nwhere = 'changed'\n")
    ip.ok(f"%%sprite_python -s {other}\nwhere = 'changed too'\n")
    ip.ok(f"%sprite restore {one} --yes")
    ip.ok(f"%sprite restore {two} -s {other} --yes")
    assert shown_value(ip, "where") == "'first'"
    assert shown_value(ip, "where", f"-s {other}") == "'second'"


def test_rollback_on_error_brings_the_variables_back(ip, current):
    ip.ok("%%sprite_python\nstep = 'before'\n")
    result = ip.shell.run_cell("%%sprite_exec --checkpoint-before risky --rollback-on-error "
                               "--no-raise\nexit 3\n")
    assert result.success
    result, shown, out, _ = run_captured(ip, "%%sprite_python\nstep\n")
    assert out.startswith("restored 1 variables from ")
    assert shown == [{"text/plain": "'before'"}]


def test_a_stopped_session_leaves_nothing_to_resume(ip, current):
    ip.ok("%%sprite_python\ngone = 1\n")
    ip.ok("%sprite checkpoint -m saved")
    ip.ok("%sprite python stop")
    result = ip.shell.run_cell("%%sprite_python\ngone\n")
    assert result.error_in_exec.ename == "NameError"


def test_a_pull_the_kernel_cannot_load_fails_in_one_line(ip, current):
    ip.ok("%%sprite_exec\nprintf 'class Fitted:\\n    pass\\n' > sprite_only_module.py\n")
    ip.ok("%%sprite_python\nimport sprite_only_module\nfitted = sprite_only_module.Fitted()\n")
    message = ip.fails("%sprite pull fitted")
    assert message == ("Cannot pull fitted (sprite_only_module.Fitted): the kernel has no "
                       "sprite_only_module: pip install sprite_only_module here, or pull a "
                       "plain form (e.g. a dict or list made from it)")
    ip.ok("%%sprite_python\nclass Local:\n    pass\nlocal = Local()\n")
    message = ip.fails("%sprite pull local")
    assert message.startswith("Cannot pull local (__main__.Local): its class was defined in a "
                              "%%sprite_python cell")


def test_a_package_made_importable_mid_session_is_used_by_the_next_push(ip, current,
                                                                        stdlib_python):
    import cloudpickle

    if sprite_has(ip, current, "cloudpickle"):
        pytest.skip("the sprite's python3 already has cloudpickle")
    ip.shell.user_ns["scale"] = lambda x: x * 3
    message = ip.fails("%sprite push scale")
    assert message.startswith("Cannot push scale: a function cannot be serialised")
    package = Path(cloudpickle.__file__).parent
    handle = ip.magics.context.sprite()
    for source in package.glob("*.py"):
        handle.write_file(f"/home/sprite/cloudpickle/{source.name}", source.read_bytes())
    result, _, out, _ = run_captured(ip, "%sprite push scale")
    assert result.success, result.error_in_exec
    assert "as cloudpickle" in out
    assert shown_value(ip, "scale(5)") == "15"


def test_python_runs_the_session_on_a_venv_and_status_names_it(ip, current):
    ip.ok("%%sprite_exec\npython3 -m venv --without-pip /home/sprite/venv\n")
    venv_python = "/home/sprite/venv/bin/python"
    assert shown_value(ip, "import sys\nsys.prefix", f"--python {venv_python}") == \
        "'/home/sprite/venv'"
    status = ip.ok("%sprite python")
    assert status["interpreter"].startswith("/home/sprite/venv/bin/python")
    message = ip.fails("%%sprite_python --python python3\npass\n")
    assert message == (f"The Python session on sprite {current} runs {venv_python}: add "
                       "--new to start one on python3")
    assert shown_value(ip, "import sys\nsys.prefix", "--new --python python3") != \
        "'/home/sprite/venv'"


def test_the_python_setting_chooses_the_interpreter(ip, current):
    ip.ok("%%sprite_exec\npython3 -m venv --without-pip /home/sprite/env2\n")
    ip.ok("%config SpriteMagics.python = '/home/sprite/env2/bin/python'")
    assert shown_value(ip, "import sys\nsys.prefix") == "'/home/sprite/env2'"
    message = ip.fails("%%sprite_python --new --python /home/sprite/nowhere/python\npass\n")
    assert message == (f"Sprite {current} has no /home/sprite/nowhere/python: give the path "
                       "of a Python 3.8 or newer there (e.g. --python "
                       "/home/sprite/.venv/bin/python)")


def test_the_restore_question_names_variables_services_and_sessions(ip, current):
    ip.ok("%%sprite_python\ncount = 1\nrows = [1, 2]\nmodel = {'w': 1}\n")
    checkpoint = ip.ok("%sprite checkpoint -m base").id
    ip.ok("%%sprite_python\ncount = 2\ntemp = [0] * 10\ndel model\n")
    ip.ok("%sprite service create web --duration 0.5 -- python3 -u -m http.server 0")
    message = ip.fails(f"%sprite restore {checkpoint}")
    assert ("Variables: 1 go back: count (int); 1 are dropped: temp (list); 1 come back: "
            "model (dict).") in message
    assert "Services that stop and restart: web." in message
    assert "Exec sessions that end: the Python session" in message
    assert message.endswith(f"Nobody can answer here: add --yes (%sprite restore {checkpoint} "
                            "--yes)")


def test_the_restore_question_says_when_the_checkpoint_holds_no_session(ip, current):
    checkpoint = ip.ok("%sprite checkpoint -m empty").id
    ip.ok("%%sprite_python\nlater = 1\n")
    message = ip.fails(f"%sprite restore {checkpoint}")
    assert (f"{checkpoint} holds no Python session: the session's variables are lost (the "
            "next cell starts afresh).") in message


def test_diff_vars_lists_the_variables_that_differ(ip, current):
    ip.ok("%%sprite_python\ncount = 1\nrows = list(range(100))\nold = 'x'\n")
    first = ip.ok("%sprite checkpoint -m one").id
    ip.ok("%%sprite_python\ncount = 2\nnew = {'a': 1}\ndel old\n")
    frame = ip.ok(f"%sprite diff {first} --vars")
    assert frame.to_dict("records") == [
        {"name": "count", "change": "changed", "type": "int", "size_a": "5 B",
         "size_b": "5 B"},
        {"name": "new", "change": "added", "type": "dict", "size_a": None,
         "size_b": "1 items, 21 B"},
        {"name": "old", "change": "removed", "type": "str", "size_a": "1, 16 B",
         "size_b": None},
    ]
    second = ip.ok("%sprite checkpoint -m two").id
    between = ip.ok(f"%sprite diff {first} {second} --vars")
    assert list(between["name"]) == ["count", "new", "old"]
    assert ip.ok(f"%sprite diff {second} --vars").empty


def test_the_browser_shows_variables_and_a_gone_sprite_disables_it(ip, current, http):
    from sprites_jupyter.widgets.browser import CheckpointBrowser

    ip.ok("%%sprite_python\ncount = 1\n")
    checkpoint = ip.ok("%sprite checkpoint -m base").id
    ip.ok("%%sprite_python\ncount = 2\nextra = [1]\n")
    ip.ok("%config SpriteMagics.widgets = 'on'")
    browser = ip.ok("%sprite browse")
    assert isinstance(browser, CheckpointBrowser)
    row = browser.changes_rows[checkpoint]
    row.button.click()
    browser.wait(120)
    assert "2 variables differ" in row.variables.value
    assert "<td>count</td>" in row.variables.value and "<td>extra</td>" in row.variables.value
    browser.restore_buttons[checkpoint].click()
    browser.wait(120)
    assert "Variables: 1 go back: count (int); 1 are dropped: extra (list)." in \
        browser.undo_text.value
    browser.cancel_button.click()
    ip.ok("%sprite python stop")
    assert http.delete(f"/v1/sprites/{current}").status_code in (200, 204)
    browser.restore_buttons[checkpoint].click()
    assert browser.message.value == (f"Sprite <code>{current}</code> is gone (it was "
                                     "destroyed): its checkpoints went with it.")
    assert all(button.disabled for button in browser.buttons)
    assert browser.confirm_box.layout.display == "none"
    browser.close()


def test_a_checkpoint_saves_the_session_another_kernel_left_running(ip, current):
    ip.ok("%%sprite_python\nleft = 'by an earlier kernel'\n")
    earlier = sessions_of(ip.magics.context)[current].session_id
    ip.shell.run_line_magic("unload_ext", "sprites_jupyter")  # the session keeps running
    ip.shell.run_line_magic("load_ext", "sprites_jupyter")
    ip.ok(f"%sprite use {current}")
    result, _, out, _ = run_captured(ip, "%sprite checkpoint -m other-kernel")
    assert result.success
    assert f"session {earlier}: saved 1 variables" in out
    checkpoint = result.result.id
    ip.ok(f"%sprite python attach {earlier}")
    ip.ok("%%sprite_python\nleft = 'changed'\n")
    ip.ok(f"%sprite restore {checkpoint} --yes")
    assert shown_value(ip, "left") == "'by an earlier kernel'"


def test_python_status_after_a_restore_resumes_the_session(ip, current):
    ip.ok("%%sprite_python\nkept = 41\n")
    checkpoint = ip.ok("%sprite checkpoint -m kept").id
    ip.ok(f"%sprite restore {checkpoint} --yes")
    result, _, out, _ = run_captured(ip, "%sprite python")
    assert result.success, result.error_in_exec
    assert out.startswith(f"restored 1 variables from {checkpoint}")
    assert result.result["alive"]
    assert shown_value(ip, "kept + 1") == "42"


def test_a_push_the_sprite_cannot_load_fails_in_one_line(ip, current, stdlib_python):
    from sprites_jupyter.client import Checkpoint

    ip.shell.user_ns["made_here"] = Checkpoint(id="v9")
    message = ip.fails("%sprite push made_here")
    assert message == (f"Cannot push made_here (sprites_jupyter.Checkpoint): the sprite's "
                       f"{stdlib_python} has no sprites_jupyter: install it there (%sprite exec "
                       f"{stdlib_python} -m pip install sprites_jupyter), or push a plain form")
