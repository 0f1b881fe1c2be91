"""A missing service, session, file or Python session: one line that says what to do,
not a bare "(HTTP 404)"; through a real shell and the local server."""

from __future__ import annotations


def test_missing_things_come_with_what_to_do(ip, current, tmp_path):
    assert ip.fails("%sprite logs nosuch") == (
        "logs of service nosuch: service not found: nosuch (%sprite services lists this "
        "sprite's services)")
    assert ip.fails("%sprite service restart nosuch").endswith(
        "(%sprite services lists this sprite's services)")
    assert ip.fails("%sprite kill 999").endswith("(%sprite sessions lists the running sessions)")
    missing = ip.fails(f"%sprite get /home/sprite/nope.txt {tmp_path / 'nope.txt'}")
    assert missing.endswith("(%sprite ls DIRECTORY lists what is there)"), missing
    assert not (tmp_path / "nope.txt").exists()
    listed = ip.fails("%sprite ls nowhere")
    assert listed.endswith("relative paths start at /home/sprite)"), listed
    for message in (missing, listed):
        assert "(HTTP 404)" not in message


def test_attach_without_a_session_reads_well(ip, current):
    assert ip.fails("%sprite python attach") == (
        f"Sprite {current} has no running Python session to attach to: a %%sprite_python "
        "cell starts a new one")
    assert ip.fails("%sprite python attach 12ab").startswith(
        f"Sprite {current} has no Python session 12ab running to attach to")
