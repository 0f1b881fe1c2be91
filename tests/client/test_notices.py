"""The client's one notice timer: each action runs at its time, whatever the order the
notices were set in, and a cancelled one never runs."""

from __future__ import annotations

import threading

from sprites_jupyter.client.notices import NoticeTimer


def test_an_earlier_notice_set_after_a_later_one_runs_first() -> None:
    timer = NoticeTimer()
    far, near = threading.Event(), threading.Event()
    timer.after(60, far.set)
    timer.after(0.05, near.set)  # the thread sleeps toward the far one: this must wake it
    assert near.wait(10)
    assert not far.is_set()


def test_a_later_notice_runs_after_the_earlier_and_cancelled_ones_do_not() -> None:
    timer = NoticeTimer()
    order: list[str] = []
    done = threading.Event()
    timer.after(0.05, lambda: order.append("first"))
    timer.after(0.1, lambda: order.append("cancelled")).cancel()
    timer.after(0.15, lambda: (order.append("second"), done.set()))
    assert done.wait(10)
    assert order == ["first", "second"]
