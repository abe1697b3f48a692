"""Echo on /echo driven by an independent client (python3-websockets).
(/ws carries the chat protocol; only its handshake is tested here, in test_handshake.py.)"""

import asyncio
import os
import random

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 64 * 1024


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(port, path="/echo", **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", 4 * 1024 * 1024)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(f"ws://127.0.0.1:{port}{path}", **kw)


def close_code(exc):
    return exc.rcvd.code if exc.rcvd is not None else None


async def echo_once(port, msg, path="/echo", **kw):
    async with connect(port, path, **kw) as ws:
        await ws.send(msg)
        return await asyncio.wait_for(ws.recv(), 10)


@pytest.mark.parametrize("path", ["/echo", "/echo?q=1"])
@pytest.mark.parametrize("msg", ["hello", "", "héllo wörld ✓ 🚀", "\x00nul inside"],
                         ids=["ascii", "empty", "unicode", "nul"])
def test_text(gw, path, msg):
    assert run(echo_once(gw.port, msg, path)) == msg


@pytest.mark.parametrize("path", ["/echo", "/echo?q=1"])
@pytest.mark.parametrize("msg", [b"\x00\x01\x02", b"", bytes(range(256)), b"\xff\xfe invalid utf8"],
                         ids=["small", "empty", "all-bytes", "not-utf8"])
def test_binary(gw, path, msg):
    got = run(echo_once(gw.port, msg, path))
    assert isinstance(got, bytes) and got == msg


@pytest.mark.parametrize("size", [125, 126, 127, 128, 65535, MAX_MESSAGE])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_sizes_up_to_limit(gw, size, kind):
    if kind == "text":
        msg = "".join(random.choice("abcdefghij") for _ in range(size))
    else:
        msg = os.urandom(size)
    assert run(echo_once(gw.port, msg)) == msg


def test_multibyte_text_at_limit(gw):
    msg = "é" * (MAX_MESSAGE // 2)  # exactly MAX_MESSAGE bytes of UTF-8
    assert run(echo_once(gw.port, msg)) == msg


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_over_limit_1009(gw, kind):
    msg = "a" * (MAX_MESSAGE + 1) if kind == "text" else b"b" * (MAX_MESSAGE + 1)

    async def go():
        async with connect(gw.port) as ws:
            await ws.send(msg)
            with pytest.raises(ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), 10)
            return close_code(ei.value)

    assert run(go()) == 1009


def test_fragmented_send_reassembled(gw):
    parts = [os.urandom(16 * 1024) for _ in range(4)]

    async def go():
        async with connect(gw.port) as ws:
            await ws.send(parts)  # one message in 4 frames
            return await asyncio.wait_for(ws.recv(), 10)

    assert run(go()) == b"".join(parts)


def test_fragmented_text_send(gw):
    parts = ["κό", "σμε ", "✓" * 100, ""]

    async def go():
        async with connect(gw.port) as ws:
            await ws.send(parts)
            return await asyncio.wait_for(ws.recv(), 10)

    assert run(go()) == "".join(parts)


def test_fragmented_over_limit_1009(gw):
    parts = [b"x" * 40000, b"y" * 40000]

    async def go():
        async with connect(gw.port) as ws:
            await ws.send(parts)
            with pytest.raises(ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), 10)
            return close_code(ei.value)

    assert run(go()) == 1009


def test_many_messages_in_order(gw):
    async def go():
        async with connect(gw.port) as ws:
            for i in range(300):
                await ws.send(f"msg {i}")
                assert await asyncio.wait_for(ws.recv(), 5) == f"msg {i}"

    run(go())


def test_burst_then_read_in_order(gw):
    n = 1000

    async def go():
        async with connect(gw.port, max_queue=None) as ws:
            for i in range(n):
                await ws.send(f"burst {i}" if i % 2 else f"burst {i}".encode())
            for i in range(n):
                got = await asyncio.wait_for(ws.recv(), 10)
                assert got == (f"burst {i}" if i % 2 else f"burst {i}".encode())

    run(go())


def test_concurrent_clients(gw):
    nclients, nmsgs = 50, 20

    async def client(c):
        async with connect(gw.port, "/echo") as ws:
            for i in range(nmsgs):
                msg = f"client {c} message {i} " + "z" * (c * 37 % 500)
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 10) == msg
        return c

    async def go():
        return await asyncio.gather(*(client(c) for c in range(nclients)))

    assert sorted(run(go(), timeout=60)) == list(range(nclients))


def test_concurrent_clients_independent(gw):
    """Messages never cross between sessions."""
    async def go():
        a = await connect(gw.port)
        b = await connect(gw.port)
        try:
            await a.send("for a")
            await b.send("for b")
            ra = await asyncio.wait_for(a.recv(), 5)
            rb = await asyncio.wait_for(b.recv(), 5)
            return ra, rb
        finally:
            await a.close()
            await b.close()

    assert run(go()) == ("for a", "for b")


def test_library_ping(gw):
    async def go():
        async with connect(gw.port) as ws:
            waiter = await ws.ping(b"are you there")
            await asyncio.wait_for(waiter, 5)
            await ws.send("after ping")
            return await asyncio.wait_for(ws.recv(), 5)

    assert run(go()) == "after ping"


@pytest.mark.parametrize("code,reason", [(1000, "bye"), (1001, ""), (4000, "custom"),
                                         (3000, "é" * 20)])
def test_close_code_echoed(gw, code, reason):
    async def go():
        ws = await connect(gw.port)
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), 5)
        await ws.close(code, reason)
        return ws.close_code

    assert run(go()) == code


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_compression_offer(gw, compression):
    msg = "compress me " * 100
    assert run(echo_once(gw.port, msg, compression=compression)) == msg


def test_origin_header_from_library(gw):
    msg = "same origin"
    got = run(echo_once(gw.port, msg, origin=f"http://127.0.0.1:{gw.port}"))
    assert got == msg


def test_abrupt_disconnects(gw):
    """Clients vanishing mid-message or mid-handshake do not hurt the gateway."""
    import socket
    from gwtest import OP_TEXT, frame, handshake_request

    for i in range(30):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        try:
            s.sendall(handshake_request("/echo", host=f"127.0.0.1:{gw.port}"))
            if i % 3 == 0:
                s.sendall(frame(OP_TEXT, b"a" * 1000)[:500])  # half a frame
            elif i % 3 == 1:
                s.sendall(frame(OP_TEXT, b"abc", fin=False))  # half a message
            else:
                s.sendall(frame(OP_TEXT, b"z" * 60000))  # echo pending as we leave
        finally:
            s.close()
    assert run(echo_once(gw.port, "still here")) == "still here"
