"""The rest of the API surface through the client, against the real local server: create
options, ``private_access``, the organisation counters, HTTP exec, a TTY's size at start."""

from __future__ import annotations

import uuid

import pytest

from sprites_jupyter.client import (
    HttpExecResult,
    InvalidRequest,
    Sprite,
    SpriteCounts,
    SpriteInfo,
    SpritesClient,
)


def test_create_options_are_accepted_and_private_access_round_trips(
        client: SpritesClient) -> None:
    name = f"o-{uuid.uuid4().hex[:10]}"
    created = client.create_sprite(
        name, url_auth="sprite", private_access="admins", labels=["x"],
        config={"ram_mb": 2048, "cpus": 2, "region": None}, environment={"MODE": "test"},
        wait_for_capacity=True)
    try:
        assert (created.auth, created.private_access, created.labels) == (
            "sprite", "admins", ("x",))
        updated = client.update_sprite(name, url_auth="public", private_access="members")
        assert (updated.auth, updated.private_access) == ("public", "members")
    finally:
        client.delete_sprite(name)


def test_create_refuses_a_bad_url_auth_in_one_line(client: SpritesClient) -> None:
    with pytest.raises(InvalidRequest, match="auth must be 'sprite' or 'public'"):
        client.create_sprite(f"o-{uuid.uuid4().hex[:10]}", url_auth="everyone")


def test_sprite_info_reads_config_and_environment() -> None:
    info = SpriteInfo.from_json({
        "name": "a", "config": {"ram_mb": 1024, "cpus": 2}, "environment": {"K": 1},
        "url_settings": {"auth": "sprite", "private_access": "admins"}})
    assert info.config == {"ram_mb": 1024, "cpus": 2} and info.environment == {"K": "1"}
    assert info.private_access == "admins"
    tolerant = SpriteInfo.from_json({"name": "b", "config": None, "environment": [1]})
    assert (tolerant.config, tolerant.environment, tolerant.private_access) == ({}, {}, None)


def test_counters_follow_the_sprites_states(client: SpritesClient, sp: Sprite) -> None:
    before = client.sprite_counts()
    with sp.command("sleep", "30", stdin=False) as running:
        assert running.session_id
        during = client.sprite_counts()
    assert isinstance(before, SpriteCounts) and before.organization == "local"
    assert during.running is not None and during.running >= 1
    assert during.total == len(client.list_sprites())
    assert "running=" in repr(during)


def test_counters_tolerate_both_sdk_shapes_and_absence() -> None:
    go = SpriteCounts.from_listing({"org": {"name": "o", "running": 1, "warm": 2, "cold": 3,
                                            "running_limit": 10, "warm_limit": 20}})
    py = SpriteCounts.from_listing({"running": 4, "warm": 0, "cold": 1})
    none = SpriteCounts.from_listing({"sprites": []})
    assert (go.total, go.running_limit, go.organization) == (6, 10, "o")
    assert (py.total, py.running_limit) == (5, None)
    assert none.total is None and "not reported" in repr(none)


def test_http_exec_separates_text_streams_and_reads_the_exit(sp: Sprite) -> None:
    result = sp.run_http("sh", "-c", "echo out; echo err >&2; cat; exit 4", stdin="fed\n",
                         env={"PATH": "/usr/bin:/bin"})
    assert isinstance(result, HttpExecResult)
    assert (result.exit_code, result.ok) == (4, False)
    assert result.stdout == "out\nfed\n" and result.stderr == "err\n"


def test_http_exec_missing_program_exits_127(sp: Sprite) -> None:
    result = sp.run_http("no-such-program-xyz")
    assert result.exit_code == 127 and "no-such-program-xyz" in result.stderr


def test_tty_size_at_start(sp: Sprite) -> None:
    with sp.command("stty", "size", tty=True, size=(132, 43)) as command:
        output = b"".join(chunk.data for chunk in command)
    assert b"43 132" in output and command.exit_code == 0
    with pytest.raises(ValueError, match="tty=True"):
        sp.command("true", size=(80, 24))
