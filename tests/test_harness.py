"""The test harness (tests/conftest.py) keeps runs from hanging, also when started in the
background by a script (SIGINT ignored, no TTY, no stdin): checked on small test files run
by a real pytest in a subprocess with the harness loaded as a plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a test file under pytest with SIGINT ignored, as a background job
    of a non-interactive shell starts it, with no stdin."""
    (tmp_path / "test_subject.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "test_subject.py"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def test_ctrl_c_reaches_tests_of_a_run_started_in_the_background(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, """
import os, signal, time, pytest

def test_ctrl_c_raises_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
""")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_a_test_that_swallows_its_timeout_still_ends_the_run(tmp_path: Path) -> None:
    """As IPython's run_cell swallows pytest-timeout's exception: the backstop ends the run
    at twice the timeout, naming where the test was."""
    done = _run_pytest(tmp_path, """
import time, pytest

@pytest.mark.timeout(1)
def test_runs_on_after_its_timeout():
    while True:
        try:
            time.sleep(30)
        except BaseException:
            pass
""")
    assert done.returncode == 1
    assert "Timeout (0:00:02)!" in done.stderr
    assert "in test_runs_on_after_its_timeout" in done.stderr
