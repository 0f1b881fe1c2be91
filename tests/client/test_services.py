"""Services through the client: definitions, lifecycle streams, signals, logs."""

from __future__ import annotations

import threading

import pytest

from sprites_jupyter.client import (
    Conflict,
    EventStream,
    InvalidRequest,
    NotFound,
    Service,
    ServiceLogEvent,
    Sprite,
    StreamError,
)
from tests.waiting import eventually, interrupt_once_running, threads_running

PY = "python3"  # the sprite's own Python (the server's is not visible inside)
TICKER = "import time\nfor i in range(1000):\n    print('tick', i, flush=True); time.sleep(0.2)"


def test_create_streams_events_as_they_happen(sp: Sprite) -> None:
    """The first output arrives while the service still waits for a file we write."""
    script = ("import os, time\nprint('waiting', flush=True)\n"
              "while not os.path.exists('go'): time.sleep(0.05)\nprint('went', flush=True)\n"
              "time.sleep(60)")
    with sp.create_service("gate", PY, ["-c", script], dir="/tmp", duration=30) as events:
        assert next(events).type == "started"
        first = next(events)
        assert (first.type, first.data) == ("stdout", "waiting\n")
        assert first.timestamp is not None and first.timestamp.tzinfo
        sp.write_file("/tmp/go", b"")
        assert next(events).data == "went\n"
    assert events.closed
    list(sp.stop_service("gate", timeout=5))


def test_service_lifecycle(sp: Sprite) -> None:
    events = list(sp.create_service("web", PY, ["-c", TICKER], env={"MODE": "x"}, duration=0.5))
    assert events[0].type == "started" and events[-1].type == "complete"
    assert all(isinstance(e, ServiceLogEvent) for e in events)
    assert events[-1].log_files and all(p.startswith("/") for p in events[-1].log_files.values())

    service = sp.get_service("web")
    assert isinstance(service, Service)
    assert (service.cmd, service.args, service.env) == (PY, ("-c", TICKER), {"MODE": "x"})
    assert service.state is not None and service.state.status == "running"
    assert service.state.pid and service.state.started_at.tzinfo
    assert [s.name for s in sp.list_services()] == ["web"]

    stopped = list(sp.stop_service("web", timeout=5))
    assert stopped[0].type == "stopping" and stopped[-1].type == "complete"
    assert any(e.type == "stopped" for e in stopped)
    assert sp.get_service("web").state.status in ("stopped", "failed")
    with pytest.raises(Conflict):
        sp.stop_service("web")

    started = list(sp.start_service("web", duration=0.3))
    assert started[0].type == "started"
    restarted = [e.type for e in sp.restart_service("web", duration=0.3)]
    assert "stopping" in restarted and "started" in restarted and restarted[-1] == "complete"

    logs = list(sp.service_logs("web", lines=2))
    assert logs[-1].type == "complete"
    assert 1 <= len([e for e in logs if e.type == "stdout"]) <= 2
    sp.delete_service("web")
    with pytest.raises(NotFound):
        sp.get_service("web")
    assert sp.list_services() == []


def test_logs_follow_for_a_while(sp: Sprite) -> None:
    list(sp.create_service("tick", PY, ["-c", TICKER], duration=0))
    followed = [e for e in sp.service_logs("tick", lines=0, follow=0.7) if e.type == "stdout"]
    assert followed and all(e.data.startswith("tick") for e in followed)
    with sp.service_logs("tick", follow=float("inf")) as forever:
        assert next(forever).type == "stdout"
    list(sp.stop_service("tick", timeout=5))


def test_signal_service(sp: Sprite) -> None:
    script = ("import os, signal, time\n"
              "signal.signal(signal.SIGHUP, lambda *a: os.write(1, b'hup\\n'))\n"
              "os.write(1, b'ready\\n')\ntime.sleep(60)")
    with sp.create_service("hup", PY, ["-c", script], duration=30) as events:
        assert [next(events).type, next(events).data] == ["started", "ready\n"]
        sp.signal_service("hup", "HUP")
        assert next(events).data == "hup\n"
    with pytest.raises(InvalidRequest):
        sp.signal_service("hup", "NOPE")
    with pytest.raises(NotFound):
        sp.signal_service("ghost", "TERM")
    list(sp.stop_service("hup", timeout=5))


def test_dependencies_are_validated_and_started_first(sp: Sprite) -> None:
    with pytest.raises(InvalidRequest, match="db"):
        sp.create_service("app", PY, ["-c", TICKER], needs=["db"])
    list(sp.create_service("db", PY, ["-c", TICKER], duration=0))
    list(sp.stop_service("db", timeout=5))
    list(sp.create_service("app", PY, ["-c", TICKER], needs=["db"], duration=0.2))
    assert sp.get_service("db").state.status == "running"
    with pytest.raises(Conflict):
        sp.delete_service("db")
    with pytest.raises(Conflict):
        sp.stop_service("db")
    list(sp.stop_service("app", timeout=5))
    list(sp.stop_service("db", timeout=5))


def test_one_http_port_per_sprite(sp: Sprite) -> None:
    list(sp.create_service("a", PY, ["-c", TICKER], http_port=18081, duration=0))
    with pytest.raises(Conflict):
        sp.create_service("b", PY, ["-c", TICKER], http_port=18082)
    assert sp.get_service("a").http_port == 18081
    list(sp.stop_service("a", timeout=5))


def test_a_service_that_cannot_launch(sp: Sprite) -> None:
    stream = sp.create_service("broken", "/no/such/binary", duration=1)
    with pytest.raises(StreamError) as caught:
        for _event in stream:
            pass
    assert caught.value.event.type == "error" and stream.closed
    events = list(sp.create_service("broken", "/no/such/binary", duration=1,
                                    raise_on_error=False))
    assert events[0].type == "error" and events[-1].type == "complete"


def test_bad_arguments_are_refused_locally(sp: Sprite) -> None:
    with pytest.raises(ValueError, match="cmd"):
        sp.create_service("x", "")
    with pytest.raises(ValueError, match="list"):
        sp.create_service("x", "python3", "-m http.server")
    with pytest.raises(ValueError, match="service name"):
        sp.get_service("signal")


def test_keyboard_interrupt_while_waiting_for_an_event_closes_the_response(sp: Sprite) -> None:
    list(sp.create_service("quiet", PY, ["-c", "import time; time.sleep(600)"], duration=0))
    stream = sp.service_logs("quiet", follow=float("inf"))
    timer = interrupt_once_running(EventStream._lines.__code__)
    with pytest.raises(KeyboardInterrupt):
        next(stream)
    timer.join()
    assert stream.closed
    list(sp.stop_service("quiet", timeout=5))


def test_close_from_another_thread_ends_a_blocked_follow(sp: Sprite) -> None:
    """What a log panel's Stop button does while its reader thread waits for a line."""
    list(sp.create_service("quiet", PY, ["-c", "import time; time.sleep(600)"], duration=0))
    stream = sp.service_logs("quiet", follow=float("inf"))
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.extend(stream)
            outcome.append("ended")
        except Exception as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    eventually(lambda: reader.ident in threads_running(EventStream._lines.__code__),
               "the reader to wait for a line")
    stream.close()
    reader.join(60)
    assert not reader.is_alive()
    assert outcome[-1] == "ended"
    assert stream.closed
    list(sp.stop_service("quiet", timeout=5))
