"""permessage-deflate (RFC 7692) against the real gateway: negotiation answers, compressed
traffic both ways with python3-websockets (an independent implementation) on /echo and /ws,
and raw frames for the failure cases: RSV1 where it is not allowed (1002), data that is not
deflate (1007), and a deflate bomb (1009)."""

import asyncio
import json
import os
import zlib

import pytest
import websockets

from gwtest import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, ws_connect

pytestmark = pytest.mark.hostile


def deflate(data, wbits=15, strip=True):
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -wbits)
    z = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return z[:-4] if strip and z.endswith(b"\x00\x00\xff\xff") else z


def offer(port, value, path="/echo"):
    return ws_connect(port, path, extra=[("Sec-WebSocket-Extensions", value)])


NEGOTIATION = [
    # (offer, expected answer or None)
    ("permessage-deflate", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"),
    ("permessage-deflate; client_max_window_bits=9",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"),
    ("permessage-deflate; client_max_window_bits=\"15\"",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
    ("permessage-deflate; client_no_context_takeover; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    # Invalid offers are declined; a later valid one is taken.
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate",
     "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; foo=1, permessage-deflate; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=08", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; client_no_context_takeover=1", None),
    ("x-webkit-deflate-frame", None),
    ("", None),
]


@pytest.mark.parametrize("value,want", NEGOTIATION)
def test_negotiation(gw, value, want):
    with offer(gw.port, value) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") == want


def test_off_switch(make_gateway):
    g = make_gateway("--deflate", "off")
    with offer(g.port, "permessage-deflate") as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") is None


def test_python_websockets_compressed_echo_and_chat(gw):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/echo", max_size=1 << 20) as ws:
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
            for i in range(30):  # the client keeps its context across messages
                text = f"message {i} " + "all work and no play " * (i + 1)
                await ws.send(text)
                assert await ws.recv() == text
            blob = os.urandom(65000)  # incompressible: sent as is, or slightly bigger
            await ws.send(blob)
            assert await ws.recv() == blob
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ws") as a, \
                websockets.connect(f"ws://127.0.0.1:{gw.port}/ws") as b:
            wa, wb = json.loads(await a.recv()), json.loads(await b.recv())
            text = "compressible " * 200
            await a.send(json.dumps({"type": "message", "room": "lobby", "message": text}))
            for ws in (a, b):
                for _ in range(20):
                    m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if m["type"] == "message":
                        assert m["message"] == text and m["from"] == wa["id"]
                        break
                else:
                    pytest.fail("the room message did not arrive")
    asyncio.run(go())


def test_server_frames_are_compressed(gw):
    with offer(gw.port, "permessage-deflate") as ws:
        text = b"abcdefgh" * 200
        ws.send_frame(OP_TEXT, deflate(text), rsv=4)
        f = ws.recv_frame()
        assert f.opcode == OP_TEXT and f.rsv == 4 and len(f.payload) < len(text) / 10
        assert zlib.decompressobj(-15).decompress(f.payload + b"\x00\x00\xff\xff") == text
        ws.send_frame(OP_TEXT, b"short", rsv=0)  # uncompressed messages stay allowed
        f = ws.recv_frame()
        assert (f.opcode, f.rsv, f.payload) == (OP_TEXT, 0, b"short")


def test_compressed_fragments_and_context_takeover(gw):
    with offer(gw.port, "permessage-deflate") as ws:
        c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        first = b"the same words again and again " * 20
        z1 = c.compress(first) + c.flush(zlib.Z_SYNC_FLUSH)
        ws.send_frame(OP_TEXT, z1[:-4][:10], fin=False, rsv=4)
        ws.send_frame(OP_CONT, z1[:-4][10:])
        assert ws.recv_message()[1] == first
        z2 = c.compress(first) + c.flush(zlib.Z_SYNC_FLUSH)  # refers back into message 1
        assert len(z2) < 20
        ws.send_frame(OP_TEXT, z2[:-4], rsv=4)
        assert ws.recv_message()[1] == first


@pytest.mark.parametrize("case,frames,code", [
    ("rsv1 without negotiation", None, 1002),
    ("rsv1 on a ping", [(OP_PING, b"x", True, 4)], 1002),
    ("rsv1 on a continuation",
     [(OP_TEXT, deflate(b"ab" * 50)[:5], False, 4), (OP_CONT, deflate(b"ab" * 50)[5:], True, 4)],
     1002),
    ("not deflate data", [(OP_BINARY, b"\xff\xfe\xfd\xfc" * 10, True, 4)], 1007),
    ("inflates to invalid UTF-8", [(OP_TEXT, deflate(b"\xff\xfe ok"), True, 4)], 1007),
    ("deflate bomb", [(OP_BINARY, deflate(b"\0" * 10_000_000), True, 4)], 1009),
])
def test_failures(gw, case, frames, code):
    if frames is None:
        with ws_connect(gw.port, "/echo") as ws:
            ws.send_frame(OP_TEXT, deflate(b"hello"), rsv=4)
            assert ws.expect_close()[0] == code
        return
    with offer(gw.port, "permessage-deflate") as ws:
        for op, payload, fin, rsv in frames:
            ws.send_frame(op, payload, fin=fin, rsv=rsv)
        assert ws.expect_close()[0] == code, case
