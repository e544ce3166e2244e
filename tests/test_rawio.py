"""trioproxy.rawio over real socket pairs: full buffers, EOF, resets, closes, cancels."""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from trioproxy import rawio


async def pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """Two connected TCP sockets on loopback, as the proxy has them."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    a = trio.socket.socket()
    await a.connect(listener.getsockname())
    b, _ = await listener.accept()
    listener.close()
    return a, b


async def test_a_write_larger_than_the_buffers_waits_and_arrives_whole() -> None:
    a, b = await pair()
    data = bytes(range(256)) * 4096 * 16  # 16 MiB: more than the kernel takes at once
    received = bytearray()

    async def read_all() -> None:
        while len(received) < len(data):
            chunk = await rawio.receive_some(b, 65536)
            assert chunk
            received.extend(chunk)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await rawio.send_all(a, data)
            read_meanwhile = len(received)
    assert read_meanwhile > 0  # the write waited for the reader to make room
    assert bytes(received) == data
    a.close()
    b.close()


async def test_receive_waits_for_data_and_returns_empty_at_eof() -> None:
    a, b = await pair()
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await rawio.receive_some(b, 100))
        got.append(await rawio.receive_some(b, 100))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # nothing sent yet: it waits
        await rawio.send_all(a, b"hello")
        await trio.testing.wait_all_tasks_blocked()
        a.close()
    assert got == [b"hello", b""]
    b.close()


async def test_a_reset_peer_is_a_broken_resource() -> None:
    a, b = await pair()
    await rawio.send_all(b, b"unread")
    await trio.testing.wait_all_tasks_blocked()
    a.close()  # with unread data: TCP sends a reset, not a FIN
    with pytest.raises(trio.BrokenResourceError):
        await rawio.receive_some(b, 100)
    with pytest.raises(trio.BrokenResourceError):
        await rawio.send_all(b, b"x")
    b.close()


async def test_closing_the_socket_wakes_a_waiting_reader_with_closed_resource() -> None:
    a, b = await pair()
    raised: list[type[BaseException]] = []

    async def reader() -> None:
        try:
            await rawio.receive_some(b, 100)
        except trio.ClosedResourceError as exc:
            raised.append(type(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        b.close()
    assert raised == [trio.ClosedResourceError]
    with pytest.raises(trio.ClosedResourceError):
        await rawio.receive_some(b, 100)
    with pytest.raises(trio.ClosedResourceError):
        await rawio.send_all(b, b"x")
    a.close()


async def test_both_are_cancellation_points() -> None:
    a, b = await pair()
    with trio.CancelScope() as scope:
        scope.cancel()
        await rawio.send_all(a, b"never")
    assert scope.cancelled_caught  # and nothing was written
    await rawio.send_all(a, b"x")
    with trio.move_on_after(0) as scope:
        await rawio.receive_some(b, 100)  # data is there, but a cancelled wait never reads
    assert scope.cancelled_caught
    assert await rawio.receive_some(b, 100) == b"x"  # so the byte is still there
    a.close()
    b.close()


async def test_a_read_after_yield_takes_what_the_other_tasks_let_arrive() -> None:
    a, b = await pair()
    got: list[bytes] = []

    async def answer() -> None:
        await rawio.send_all(a, b"answer")  # runs while the reader yields

    async def reader() -> None:
        got.append(await rawio.receive_some_after_yield(b, 100))
        got.append(await rawio.receive_some_after_yield(b, 100))  # nothing there: waits

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(answer)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"answer"]
        a.close()
    assert got == [b"answer", b""]
    with trio.CancelScope() as scope:
        scope.cancel()
        await rawio.receive_some_after_yield(b, 100)
    assert scope.cancelled_caught  # a cancellation point like the others
    b.close()
    with pytest.raises(trio.ClosedResourceError):
        await rawio.receive_some_after_yield(b, 100)


async def test_read_now_takes_what_is_there_and_never_waits() -> None:
    a, b = await pair()
    with trio.testing.assert_no_checkpoints():
        assert rawio.read_now(b, 100) is None  # nothing yet
    await rawio.send_all(a, b"hello")
    await trio.testing.wait_all_tasks_blocked()
    with trio.testing.assert_no_checkpoints():
        assert rawio.read_now(b, 100) == b"hello"
        assert rawio.read_now(b, 100) is None
    a.close()
    assert rawio.read_now(b, 100) == b""  # EOF
    b.close()
    assert rawio.read_now(b, 100) is None  # closed: nothing to read


async def test_read_now_on_a_reset_socket_is_a_broken_resource() -> None:
    a, b = await pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.BrokenResourceError):
        rawio.read_now(b, 100)
    b.close()


async def test_on_wait_is_called_before_a_wait_and_only_then() -> None:
    a, b = await pair()
    calls: list[str] = []
    with trio.fail_after(10):
        # Data already there (loopback delivers before send returns): no wait, no call.
        await a.send(b"ready")
        assert await rawio.receive_some_after_yield(b, 100, lambda: calls.append("r")) == b"ready"
        assert calls == []
        # Nothing there: called once, before the reader waits.
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await rawio.receive_some_after_yield(b, 100, lambda: calls.append("r")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert (calls, got) == (["r"], [])
            await a.send(b"later")
        assert got == [b"later"]
        # A write the kernel takes whole does not call it; one that must wait does.
        await rawio.send_all(a, b"x" * 100, lambda: calls.append("w"))
        assert calls == ["r"]
        big = b"y" * (16 << 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rawio.send_all, a, big, lambda: calls.append("w"))
            await trio.testing.wait_all_tasks_blocked()
            assert calls[1:2] == ["w"]
            nursery.cancel_scope.cancel()
    a.close()
    b.close()
