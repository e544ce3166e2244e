"""The relay's deadline: the limit it keeps, and when it gives it to its cancel scope."""

from __future__ import annotations

import math

import trio
import trio.testing

from trioproxy.config import TimeoutsConfig
from trioproxy.relay import _Deadline


class FakeClient:
    """Counts watch() calls, as ClientConnection.watch is called by on_wait."""

    def __init__(self) -> None:
        self.watched = 0

    def watch(self) -> None:
        self.watched += 1


TIMEOUTS = TimeoutsConfig(first_byte=600.0, idle=300.0, total=3600.0)


async def test_the_scope_gets_a_limit_only_before_a_wait(autojump_clock) -> None:
    client = FakeClient()
    started = trio.current_time()
    deadline = _Deadline(started, TIMEOUTS, client)  # type: ignore[arg-type]
    assert deadline.scope.deadline == math.inf  # nothing waits yet: no deadline in trio
    deadline.on_wait()  # the response head is awaited
    assert deadline.scope.deadline == started + 600
    assert client.watched == 1
    await trio.sleep(10)
    deadline.wait_client()  # the head arrived: the idle limit replaces first_byte...
    assert deadline.scope.deadline == started + 600  # ...but only when a wait comes
    deadline.apply()  # a write to the client is about to wait
    assert deadline.scope.deadline == started + 10 + 300
    assert "client read nothing for 300s" in deadline.expired().message


async def test_a_scope_that_expires_names_the_wait_it_was_in(autojump_clock) -> None:
    client = FakeClient()
    deadline = _Deadline(trio.current_time(), TIMEOUTS, client)  # type: ignore[arg-type]
    with deadline.scope:
        deadline.wait_upstream()
        deadline.on_wait()
        await trio.sleep_forever()
    assert deadline.scope.cancelled_caught
    assert trio.current_time() == 300
    assert "upstream sent nothing for 300s" in deadline.expired().message


async def test_the_total_limit_wins_when_it_is_nearer(autojump_clock) -> None:
    timeouts = TimeoutsConfig(first_byte=600.0, idle=300.0, total=100.0)
    deadline = _Deadline(trio.current_time(), timeouts, FakeClient())  # type: ignore[arg-type]
    with deadline.scope:
        deadline.on_wait()
        await trio.sleep_forever()
    assert trio.current_time() == 100
    assert "timeouts.total" in deadline.expired().message
