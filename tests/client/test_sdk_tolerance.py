"""The client against fault servers that answer as the real service may (sprites-go is the
reference for each point): tolerant where the SDK is, strict where it must be."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import pytest
from websockets.http11 import Response
from websockets.sync.server import ServerConnection

from sprites_jupyter.client import (
    ConnectionFailed,
    InvalidRequest,
    ProtocolError,
    RateLimited,
    SpritesClient,
    StreamError,
)

from .misbehaving import Received, http_server, json_answer, ndjson_chunks, raw, ws_server

TOKEN = "secret-token-0123456789"
RESTORE = ("POST", "/v1/sprites/s/checkpoints/v1/restore")
CHECKPOINT = ("POST", "/v1/sprites/s/checkpoint")
LIST = ("GET", "/v1/sprites/s/checkpoints")
INFO = b'{"type":"info","data":"Restoring...","time":"2026-01-05T10:30:00Z"}\n'
COMPLETE = b'{"type":"complete","data":"Restored to v1","time":"2026-01-05T10:30:00Z"}\n'
ERROR = b'{"type":"error","error":"Restore failed: disk full","time":"2026-01-05T10:30:00Z"}\n'


# 1. NDJSON streams --------------------------------------------------------------------


def test_fault_server_stream_that_ends_without_complete_is_a_success() -> None:
    with http_server({RESTORE: ndjson_chunks(INFO, b"\n\n", INFO)}) as url, \
            SpritesClient(TOKEN, url) as client:
        stream = client.sprite("s").restore_checkpoint("v1")
        assert [e.type for e in stream] == ["info", "info"]
        assert stream.wait() is None and stream.closed


def test_fault_server_lines_after_complete_and_without_a_type_are_kept() -> None:
    late = b'{"type":"info","data":"cleanup done"}\n'
    untyped = b'{"data":"no type here"}\n'
    with http_server({RESTORE: ndjson_chunks(INFO, untyped, COMPLETE, late)}) as url, \
            SpritesClient(TOKEN, url) as client:
        events = list(client.sprite("s").restore_checkpoint("v1"))
    assert [e.type for e in events] == ["info", "", "complete", "info"]
    assert events[1].data == "no type here" and events[3].data == "cleanup done"


def test_fault_server_an_error_event_fails_the_operation_even_when_complete_follows() -> None:
    with http_server({RESTORE: ndjson_chunks(INFO, ERROR, COMPLETE)}) as url, \
            SpritesClient(TOKEN, url) as client:
        quiet = client.sprite("s").restore_checkpoint("v1", raise_on_error=False)
        with pytest.raises(StreamError, match="disk full"):
            quiet.wait()
        loud = client.sprite("s").restore_checkpoint("v1")
        with pytest.raises(StreamError, match="disk full"):
            list(loud)


def test_fault_server_stream_cut_mid_chunk_says_it_broke() -> None:
    with http_server({RESTORE: ndjson_chunks(INFO, b'{"type":"in', finish=False)}) as url, \
            SpritesClient(TOKEN, url) as client:
        stream = client.sprite("s").restore_checkpoint("v1")
        with pytest.raises(ProtocolError, match="broke mid-stream"):
            stream.wait()


def test_fault_server_stream_ending_mid_line_says_it_was_cut() -> None:
    def respond(handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                            b"Connection: close\r\n\r\n" + INFO + b'{"type":"inf')
        handler.close_connection = True

    with http_server({RESTORE: respond}) as url, SpritesClient(TOKEN, url) as client, \
            pytest.raises(ProtocolError, match="cut off in the middle of line 2"):
        client.sprite("s").restore_checkpoint("v1").wait()


def test_fault_server_stream_reset_mid_way_is_a_connection_failure() -> None:
    def respond(handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(INFO), INFO))
        handler.wfile.flush()
        time.sleep(0.2)
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    with http_server({RESTORE: respond}) as url, SpritesClient(TOKEN, url) as client:
        stream = client.sprite("s").restore_checkpoint("v1")
        assert next(stream).type == "info"
        with pytest.raises((ConnectionFailed, ProtocolError), match=r"stream|connection"):
            next(stream)


# 2. exec exit without a code means 0 ---------------------------------------------------


def _exec(script) -> ws_server:
    def handler(connection: ServerConnection) -> None:
        script(connection)
        connection.close()

    return ws_server(handler)


@pytest.mark.parametrize("exit_message", [b"\x03", json.dumps({"type": "exit"})])
def test_fault_server_exit_without_a_code_means_zero(exit_message: bytes | str) -> None:
    def script(connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "session_info", "session_id": "7"}))
        connection.send(b"\x01hi\n")
        connection.send(exit_message)

    with _exec(script) as url, SpritesClient(TOKEN, url) as client:
        result = client.sprite("s").run("anything")
    assert (result.exit_code, result.stdout) == (0, "hi\n")


# 3. attach ----------------------------------------------------------------------------


def test_fault_server_attach_falls_back_to_the_legacy_form_and_needs_no_session_info() -> None:
    paths: list[str] = []

    def refuse_path_form(connection: ServerConnection, request) -> Response | None:
        paths.append(request.path)
        if request.path.startswith("/v1/sprites/s/exec/"):
            return connection.respond(404, "no such route\n")
        return None

    def handler(connection: ServerConnection) -> None:
        connection.send(b"replayed history\r\n")  # TTY bytes before any session_info
        connection.send(json.dumps({"type": "session_info", "session_id": "42", "tty": True}))
        connection.send(json.dumps({"type": "exit", "exit_code": 5}))
        connection.close()

    with ws_server(handler, process_request=refuse_path_form) as url, \
            SpritesClient(TOKEN, url) as client:
        attached = client.sprite("s").attach(42)
        assert b"".join(c.data for c in attached) == b"replayed history\r\n"
        assert attached.exit_code == 5 and attached.session_id == "42"
    assert paths[0] == "/v1/sprites/s/exec/42?stdin=false"
    assert paths[1] == "/v1/sprites/s/exec?id=42&stdin=false"


# 4, 6, 7. what is sent ------------------------------------------------------------------


def test_fault_server_receives_what_sprites_go_sends() -> None:
    sprite_json = {"name": "s", "id": "sprite-1"}
    service_done = ndjson_chunks(b'{"type":"complete"}\n')
    routes = {
        ("PUT", "/v1/sprites/s"): raw("200 OK", "application/json", b""),
        ("GET", "/v1/sprites/s"): json_answer("200 OK", sprite_json),
        ("POST", "/v1/sprites"): json_answer("201 Created", sprite_json),
        ("PUT", "/v1/sprites/s/services/web"): service_done,
        ("POST", "/v1/sprites/s/services/web/start"): service_done,
        ("POST", "/v1/sprites/s/services/web/stop"): service_done,
        ("DELETE", "/v1/sprites/s/fs/delete"): raw("200 OK", "application/json", b"{}"),
        ("POST", "/v1/sprites/s/fs/chmod"): raw("200 OK", "application/json", b"{}"),
    }
    received: list[Received] = []
    with http_server(routes, received) as url, SpritesClient(TOKEN, url) as client:
        sprite = client.sprite("s")
        assert client.update_sprite("s", labels=[]).id == "sprite-1"
        client.create_sprite("s", labels=[])
        sprite.create_service("web", "python3").wait()
        sprite.start_service("web").wait()
        sprite.stop_service("web").wait()
        sprite.delete("/tmp/x")
        sprite.chmod("/tmp/x", "0755")
    sent = {(r.method, r.path): r for r in received}
    assert sent["PUT", "/v1/sprites/s"].json() == {"clear_labels": True}
    assert sent["POST", "/v1/sprites"].json() == {"name": "s"}
    service = sent["PUT", "/v1/sprites/s/services/web"]
    assert service.json() == {"cmd": "python3"} and service.query == {}
    assert sent["POST", "/v1/sprites/s/services/web/start"].query == {}
    assert sent["POST", "/v1/sprites/s/services/web/stop"].query == {}
    assert "recursive" not in sent["DELETE", "/v1/sprites/s/fs/delete"].query
    assert "recursive" not in sent["POST", "/v1/sprites/s/fs/chmod"].json()


def test_fault_server_exec_query_has_tty_and_size_only_when_asked() -> None:
    paths: list[str] = []

    def note(connection: ServerConnection, request) -> None:
        paths.append(request.path)

    def handler(connection: ServerConnection) -> None:
        connection.send(b"\x03\x00")
        connection.close()

    with ws_server(handler, process_request=note) as url, SpritesClient(TOKEN, url) as client:
        client.sprite("s").run("ls", "-l")
    assert paths == ["/v1/sprites/s/exec?cmd=ls&cmd=-l&path=ls&stdin=false"]


def test_fault_server_policy_is_sent_as_given_and_its_400_shown_in_one_line() -> None:
    refusal = json_answer("400 Bad Request", {"error": "invalid_request",
                                              "message": "rule 0: action is required"})
    received: list[Received] = []
    rules = [{"domain": "a.com"}, {"domain": "b.com", "action": "allow", "note": "x"}]
    with http_server({("POST", "/v1/sprites/s/policy/network"): refusal}, received) as url, \
            SpritesClient(TOKEN, url) as client, \
            pytest.raises(InvalidRequest, match="rule 0: action is required") as caught:
        client.sprite("s").set_network_policy(rules)
    assert received[0].json() == {"rules": rules}
    assert "\n" not in str(caught.value)


# 5. checkpoint listings and the new checkpoint's id ----------------------------------


def test_fault_server_listing_keeps_every_entry_whatever_its_id() -> None:
    listing = [{"id": "Current"}, {"id": "cp-7f3a", "comment": "odd"}, {"id": "v2"},
               {"id": "auto-17"}, {"id": "snapshot 2026-01-05"}]
    with http_server({LIST: json_answer("200 OK", listing)}) as url, \
            SpritesClient(TOKEN, url) as client:
        ids = [c.id for c in client.sprite("s").list_checkpoints()]
    assert ids == ["cp-7f3a", "v2", "auto-17", "snapshot 2026-01-05"]


def _checkpoint_service(complete: bytes | None) -> dict:
    """A sprite whose listing gains ``cp-new`` (the newest) once the checkpoint was created."""
    created: list[bool] = []
    old = {"id": "v9", "create_time": "2026-01-05T10:00:00Z"}
    new = {"id": "cp-new", "create_time": "2026-01-05T10:30:00Z", "comment": "c"}

    def listing(handler) -> None:
        json_answer("200 OK", [{"id": "Current"}, *([new] if created else []), old])(handler)

    def create(handler) -> None:
        created.append(True)
        lines = [b'{"type":"info","data":"Creating checkpoint..."}\n']
        ndjson_chunks(*lines, *([complete] if complete else []))(handler)

    def get(handler) -> None:
        json_answer("200 OK", new)(handler)

    return {LIST: listing, CHECKPOINT: create, ("GET", "/v1/sprites/s/checkpoints/cp-new"): get}


@pytest.mark.parametrize("complete", [None, b'{"type":"complete","data":"Done"}\n',
                                      b'{"type":"complete","data":"Checkpoint v10 created"}\n'],
                         ids=["no-complete", "no-id", "unknown-id"])
def test_fault_server_new_checkpoint_is_found_as_the_newest_listed(
        complete: bytes | None) -> None:
    with http_server(_checkpoint_service(complete)) as url, SpritesClient(TOKEN, url) as client:
        assert client.sprite("s").create_checkpoint("c").wait().id == "cp-new"


def test_fault_server_new_checkpoint_id_from_the_complete_event() -> None:
    routes = _checkpoint_service(b'{"type":"complete","data":"made","id":"cp-new"}\n')
    received: list[Received] = []
    with http_server(routes, received) as url, SpritesClient(TOKEN, url) as client:
        assert client.sprite("s").create_checkpoint("c").wait().comment == "c"
    gets = [r.path for r in received if r.method == "GET"]
    assert gets == ["/v1/sprites/s/checkpoints/cp-new"], "one GET: nothing listed"


@pytest.mark.parametrize(("sent", "gets"), [
    ({"id": "cp-new", "create_time": "2026-01-05T10:30:00Z", "comment": "sent"}, []),
    ({"id": "cp-old", "create_time": "2026-01-05T10:30:00Z", "comment": "sent"},
     ["/v1/sprites/s/checkpoints/cp-new"]),
    ("not an object", ["/v1/sprites/s/checkpoints/cp-new"]),
], ids=["same-id", "other-id", "not-an-object"])
def test_fault_server_new_checkpoint_taken_from_the_complete_event_when_it_carries_it(
        sent: object, gets: list[str]) -> None:
    complete = {"type": "complete", "data": "Checkpoint cp-new created", "id": "cp-new",
                "checkpoint": sent}
    routes = _checkpoint_service(json.dumps(complete).encode() + b"\n")
    received: list[Received] = []
    with http_server(routes, received) as url, SpritesClient(TOKEN, url) as client:
        made = client.sprite("s").create_checkpoint("c").wait()
    assert made.id == "cp-new"
    assert made.comment == ("sent" if not gets else "c")
    assert [r.path for r in received if r.method == "GET"] == gets


# 8. rate limits and slow upgrades ------------------------------------------------------


@pytest.mark.parametrize(("answer", "shown"), [
    (json_answer("429 Too Many Requests", {"error": "sprite_creation_rate_limited",
                                           "message": "Rate limit exceeded",
                                           "retry_after_seconds": 30}), "retry in 30 s"),
    (json_answer("429 Too Many Requests", {"error": "concurrent_sprite_limit_exceeded",
                                           "message": "Too many running sprites"},
                 {"Retry-After": "12"}), "retry in 12 s"),
    (raw("429 Too Many Requests", "text/plain", b"slow down"), "retry later"),
], ids=["body", "header", "bare"])
def test_fault_server_rate_limits_are_one_line_with_the_wait(answer, shown: str) -> None:
    with http_server({("POST", "/v1/sprites"): answer}) as url, \
            SpritesClient(TOKEN, url) as client, pytest.raises(RateLimited) as caught:
        client.create_sprite("x")
    message = str(caught.value)
    assert "rate limited" in message and shown in message and "\n" not in message


def test_fault_server_a_cold_sprite_may_take_longer_than_the_timeout_to_wake() -> None:
    notices: list[str] = []

    def slow_wake(connection: ServerConnection, request) -> None:
        # awake only once the notice (due after 3 s) was given: past the 2 s timeout
        deadline = time.monotonic() + 60
        while not notices and time.monotonic() < deadline:
            time.sleep(0.05)

    def handler(connection: ServerConnection) -> None:
        connection.send(b"\x01awake\n")
        connection.send(b"\x03\x00")
        connection.close()

    with ws_server(handler, process_request=slow_wake) as url, \
            SpritesClient(TOKEN, url, timeout=2, on_wait=notices.append) as client:
        assert client.sprite("s").run("true").stdout == "awake\n"
    assert notices and "waking" in notices[0]


# 9. downloads never trust the server's names or modes ----------------------------------


def _fs_service(entries: list[dict]) -> dict:
    def listing(handler) -> None:
        path = handler.path.split("path=", 1)[1].split("&", 1)[0]
        if path.endswith("%2Fhome%2Fsprite") or path.endswith("/home/sprite"):
            found = [{"name": "tree", "path": "/home/sprite/tree", "isDir": True}]
        else:
            found = entries
        json_answer("200 OK", {"path": "/", "entries": found, "count": len(found)})(handler)

    return {("GET", "/v1/sprites/s/fs/list"): listing,
            ("GET", "/v1/sprites/s/fs/read"): raw("200 OK", "application/octet-stream", b"x")}


@pytest.mark.parametrize("name", ["../../escaped", "/abs/escaped", "..", "a/b", "nul\x00"])
def test_fault_server_download_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    entries = [{"name": name, "path": f"/home/sprite/tree/{name}", "size": 1, "mode": "0644"}]
    target = tmp_path / "deep" / "down" / "dest"
    with http_server(_fs_service(entries)) as url, SpritesClient(TOKEN, url) as client, \
            pytest.raises(ProtocolError, match="unsafe name"):
        client.sprite("s").download("/home/sprite/tree", target)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_fault_server_download_never_applies_setuid_or_world_writable(tmp_path: Path) -> None:
    entries = [{"name": "tool", "path": "/home/sprite/tree/tool", "size": 1, "mode": "4777"},
               {"name": "open", "path": "/home/sprite/tree/open", "size": 1, "mode": "0666"}]
    with http_server(_fs_service(entries)) as url, SpritesClient(TOKEN, url) as client:
        assert client.sprite("s").download("/home/sprite/tree", tmp_path / "out") == 2
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o7777 == 0o775
    assert (tmp_path / "out" / "open").stat().st_mode & 0o7777 == 0o664
