"""Spares a sandbox start used up are made again once, by whoever asks first: the first
command, the sandbox's stop, or the timer when nothing else comes."""

from __future__ import annotations

import asyncio

from sprites_jupyter.local.runtime.sandbox.refills import REFILL_GRACE, Refills


def test_the_first_command_makes_them_once_and_the_timer_then_does_nothing() -> None:
    made: list[str] = []

    async def scenario() -> None:
        refills = Refills()
        refills.schedule([lambda: made.append("namespaces"), lambda: made.append("bridge")])
        assert made == []
        refills.run()
        assert made == ["namespaces", "bridge"]
        refills.run()
        await asyncio.sleep(REFILL_GRACE * 2)

    asyncio.run(scenario())
    assert made == ["namespaces", "bridge"]


def test_without_a_command_the_timer_makes_them() -> None:
    made: list[str] = []

    async def scenario() -> None:
        refills = Refills()
        refills.schedule([lambda: made.append("bridge")])
        for _ in range(200):
            if made:
                return
            await asyncio.sleep(REFILL_GRACE / 10)

    asyncio.run(scenario())
    assert made == ["bridge"]


def test_a_new_start_first_makes_what_the_last_one_left_due() -> None:
    made: list[str] = []

    async def scenario() -> None:
        refills = Refills()
        refills.schedule([lambda: made.append("first")])
        refills.schedule([lambda: made.append("second")])
        assert made == ["first"]
        refills.run()

    asyncio.run(scenario())
    assert made == ["first", "second"]
