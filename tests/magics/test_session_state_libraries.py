"""DataFrames and numpy arrays ride the checkpoint too: the unsandboxed server's sprites
run this interpreter, which has pandas and numpy (a sandbox's system python3 may not)."""

from __future__ import annotations

from .python_helpers import run_captured


def test_dataframes_and_arrays_come_back_after_restore(library_ip):
    library_ip.ok("%%sprite_python\nimport numpy as np, pandas as pd\n"
                  "frame = pd.DataFrame({'a': range(1000), 'b': [str(i) for i in range(1000)]})\n"
                  "array = np.arange(12.0).reshape(3, 4)\n"
                  "view = {'frame': frame}\n")
    result, _, out, _ = run_captured(library_ip, "%sprite checkpoint -m data")
    assert result.success
    checkpoint = result.result.id
    assert "saved 3 variables" in out
    library_ip.ok("%%sprite_python\nframe.loc[0, 'a'] = -1\narray *= 0\ndel view\n")
    library_ip.ok(f"%sprite restore {checkpoint} --yes")
    result, shown, out, _ = run_captured(
        library_ip, "%%sprite_python\n(int(frame.loc[0, 'a']), frame.shape, float(array.sum()), "
                    "view['frame'] is frame, np.__name__)\n")
    assert result.success, result.error_in_exec
    assert out.startswith(f"restored 3 variables from {checkpoint}")
    assert shown[-1]["text/plain"] == "(0, (1000, 2), 66.0, True, 'numpy')"
