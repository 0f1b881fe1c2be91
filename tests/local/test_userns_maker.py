"""The user-namespace maker of a root server (``host_ids``) ends with its server: one
whose server went before it mapped the set-up namespace exits instead of waiting for
ever, which pinned the server's private mount namespace and its sprites' loop disks."""

from __future__ import annotations

import subprocess

from sprites_jupyter.local.runtime.sandbox import host_ids


def test_a_maker_whose_server_went_before_mapping_exits() -> None:
    maker = subprocess.Popen(host_ids.maker_argv(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert maker.stdout is not None and maker.stdin is not None
        first = maker.stdout.readline().strip()
        maker.stdin.close()  # the server is gone: nobody writes the maps
        code = maker.wait(60)
    finally:
        maker.kill()
        maker.wait()
    assert maker.stderr is not None
    if first != "setup":  # no user namespaces here at all: the maker said why and ended
        assert code != 0
        return
    assert code != 0
    assert "went before it mapped" in maker.stderr.read()
