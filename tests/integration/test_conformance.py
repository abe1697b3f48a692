"""RFC 6455 conformance on raw sockets with hand-built masked frames.

Modelled on Autobahn|Testsuite: 1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes,
5 fragmentation, 6 UTF-8, 7 close handling, 9 sizes. Each failure case expects its exact close
code, then that the server closes TCP once the close handshake is done. After every test the
shared gateway must be alive and echo on a fresh connection (see conftest).
"""

import os
import select
import socket
import struct
import time

import pytest

from gwtest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, close_payload,
                    frame, ws_connect)

MAX_MESSAGE = 64 * 1024


@pytest.fixture
def ws(gw):
    c = ws_connect(gw.port, "/echo")
    yield c
    c.close()


def expect_failure(ws, code):
    got, reason, before = ws.fail_with()
    assert got == code, f"expected close {code}, got {got} reason={reason!r} after {before!r}"
    return before


def assert_echo(ws, opcode, payload, timeout=10):
    op, data = ws.recv_message(timeout=timeout)
    assert op == opcode, f"echo opcode {op} != {opcode}"
    assert data == payload, f"echo differs: {len(data)} bytes vs {len(payload)}"


# --- 1: framing -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 128, 1000, 65535, 65536])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_1_sizes_echoed(ws, opcode, size):
    payload = (b"*" * size) if opcode == OP_TEXT else os.urandom(size)
    ws.send_frame(opcode, payload)
    assert_echo(ws, opcode, payload)
    assert ws.close_handshake(1000) == 1000


@pytest.mark.parametrize("size", [125, 65536])
def test_1_chopped_into_single_bytes(ws, size):
    """Autobahn 1.1.7/1.2.7-style: the frame arrives in tiny writes."""
    payload = os.urandom(size)
    data = frame(OP_BINARY, payload)
    # The header (2 + 8 + 4 bytes at most) and the first bytes always go one at a time.
    cuts = list(range(0, min(len(data), 300))) + list(range(300, len(data), 997))
    for a, b in zip(cuts, cuts[1:] + [len(data)]):
        ws.send(data[a:b])
        if a < 300:
            time.sleep(0.0005)
    assert_echo(ws, OP_BINARY, payload)


def test_1_zero_mask_key(ws):
    ws.send_frame(OP_TEXT, b"mask of zeros", mask_key=b"\0\0\0\0")
    assert_echo(ws, OP_TEXT, b"mask of zeros")


def test_1_many_frames_one_write(ws):
    msgs = [(OP_TEXT if i % 2 else OP_BINARY, f"m{i}".encode() * (i % 50)) for i in range(200)]
    ws.send(b"".join(frame(op, p) for op, p in msgs))
    for op, p in msgs:
        assert_echo(ws, op, p)


def test_1_mixed_stream_order(ws):
    """Data echoes keep their order; the pong may come anywhere (RFC 6455 5.5.2 does not
    order control replies against data)."""
    ws.send(frame(OP_TEXT, b"one") + frame(OP_BINARY, b"\x02two") + frame(OP_PING, b"p")
            + frame(OP_TEXT, b"three"))
    frames = [ws.recv_frame() for _ in range(4)]
    got = [(f.opcode, f.payload) for f in frames]
    assert [x for x in got if x[0] != OP_PONG] == [
        (OP_TEXT, b"one"), (OP_BINARY, b"\x02two"), (OP_TEXT, b"three")], got
    assert (OP_PONG, b"p") in got, got


# --- 2: pings and pongs -----------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125)), b"\xff" * 125],
                         ids=["empty", "text", "125-binary", "125-ff"])
def test_2_ping_pong_same_payload(ws, payload):
    ws.send_frame(OP_PING, payload)
    f = ws.recv_frame()
    assert (f.opcode, f.payload) == (OP_PONG, payload), f


def test_2_unsolicited_pong_ignored(ws):
    ws.send_frame(OP_PONG, b"unsolicited")
    ws.send_frame(OP_TEXT, b"after pong")
    f = ws.recv_frame()
    assert (f.opcode, f.payload) == (OP_TEXT, b"after pong"), f


def test_2_ten_pings(ws):
    payloads = [f"ping {i}".encode() for i in range(10)]
    ws.send(b"".join(frame(OP_PING, p) for p in payloads))
    got = []
    for _ in range(10):
        f = ws.recv_frame()
        assert f.opcode == OP_PONG, f
        got.append(f.payload)
        if f.payload == payloads[-1]:
            break
    # RFC 6455 5.5.3 allows answering only the latest ping; order must hold.
    assert got[-1] == payloads[-1]
    assert got == sorted(got, key=payloads.index)


@pytest.mark.hostile
@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
@pytest.mark.parametrize("size", [126, 1000])
def test_2_control_too_long_1002(ws, opcode, size):
    payload = close_payload(1000, b"r" * (size - 2)) if opcode == OP_CLOSE else b"p" * size
    ws.send_frame(opcode, payload)
    before = expect_failure(ws, 1002)
    assert not [f for f in before if f.opcode == OP_PONG], "answered an oversized ping"


@pytest.mark.hostile
@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_5_fragmented_control_1002(ws, opcode):
    payload = close_payload(1000) if opcode == OP_CLOSE else b"frag"
    ws.send(frame(opcode, payload[:2], fin=False) + frame(OP_CONT, payload[2:]))
    before = expect_failure(ws, 1002)
    assert not [f for f in before if f.opcode == OP_PONG]


# --- 3: reserved bits -------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING], ids=["text", "binary", "ping"])
def test_3_rsv_bits_1002(ws, rsv, opcode):
    ws.send_frame(opcode, b"rsv", rsv=rsv)
    before = expect_failure(ws, 1002)
    assert not before, f"answered a frame with RSV bits: {before!r}"


@pytest.mark.hostile
def test_3_rsv_after_good_frame(ws):
    """Autobahn 3.2: the good frame before is echoed, the bad one closes, nothing after."""
    ws.send(frame(OP_TEXT, b"good") + frame(OP_TEXT, b"bad", rsv=2) + frame(OP_PING, b"late"))
    before = expect_failure(ws, 1002)
    assert [(f.opcode, f.payload) for f in before] == [(OP_TEXT, b"good")], before


@pytest.mark.hostile
def test_3_rsv_on_continuation(ws):
    ws.send(frame(OP_TEXT, b"ab", fin=False) + frame(OP_CONT, b"cd", rsv=4))
    expect_failure(ws, 1002)


# --- 4: opcodes -------------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
@pytest.mark.parametrize("payload", [b"", b"reserved opcode"], ids=["empty", "payload"])
def test_4_reserved_opcode_1002(ws, opcode, payload):
    ws.send_frame(opcode, payload)
    before = expect_failure(ws, 1002)
    assert not before


@pytest.mark.hostile
def test_4_reserved_opcode_after_good(ws):
    ws.send(frame(OP_TEXT, b"fine") + frame(5, b"") + frame(OP_PING, b"late"))
    before = expect_failure(ws, 1002)
    assert [(f.opcode, f.payload) for f in before] == [(OP_TEXT, b"fine")]


# --- masking ----------------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("opcode,payload", [(OP_TEXT, b"unmasked"), (OP_BINARY, b"\x01"),
                                            (OP_PING, b"p"), (OP_CLOSE, b"\x03\xe8")],
                         ids=["text", "binary", "ping", "close"])
def test_unmasked_client_frame_1002(ws, opcode, payload):
    ws.send_frame(opcode, payload, mask=False)
    before = expect_failure(ws, 1002)
    assert not before


# --- 5: fragmentation -------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("nfrag", [2, 3, 10, 100])
def test_5_fragments_reassembled(ws, opcode, nfrag):
    chunks = [f"<{i:03d}>".encode() * 3 for i in range(nfrag)]
    data = b"".join(frame(OP_CONT if i else opcode, c, fin=(i == nfrag - 1))
                    for i, c in enumerate(chunks))
    ws.send(data)
    assert_echo(ws, opcode, b"".join(chunks))


def test_5_fragments_in_separate_writes(ws):
    ws.send_frame(OP_TEXT, b"frag-1 ", fin=False)
    time.sleep(0.05)
    ws.send_frame(OP_CONT, b"frag-2 ", fin=False)
    time.sleep(0.05)
    ws.send_frame(OP_CONT, b"frag-3")
    assert_echo(ws, OP_TEXT, b"frag-1 frag-2 frag-3")


def test_5_empty_fragments(ws):
    ws.send(frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, b"", fin=False)
            + frame(OP_CONT, b"abc", fin=False) + frame(OP_CONT, b"", fin=True))
    assert_echo(ws, OP_TEXT, b"abc")


def test_5_all_empty_fragments(ws):
    ws.send(frame(OP_BINARY, b"", fin=False) + frame(OP_CONT, b"", fin=False)
            + frame(OP_CONT, b""))
    assert_echo(ws, OP_BINARY, b"")


def test_5_ping_between_fragments_one_write(ws):
    ws.send(frame(OP_TEXT, b"fragment1 ", fin=False) + frame(OP_PING, b"mid")
            + frame(OP_CONT, b"fragment2"))
    got = [ws.recv_frame(), ws.recv_frame()]
    assert sorted((f.opcode, f.payload) for f in got) == [
        (OP_TEXT, b"fragment1 fragment2"), (OP_PONG, b"mid")], got


def test_5_ping_answered_while_message_open(ws):
    """The pong must come before the message is finished (Autobahn 5.7/5.8)."""
    ws.send_frame(OP_BINARY, b"start", fin=False)
    ws.send_frame(OP_PING, b"are you there")
    f = ws.recv_frame(timeout=3)
    assert (f.opcode, f.payload) == (OP_PONG, b"are you there"), f
    ws.send_frame(OP_CONT, b"-end")
    assert_echo(ws, OP_BINARY, b"start-end")


def test_5_many_pings_between_many_fragments(ws):
    """Autobahn 5.19/5.20-style."""
    parts = []
    out = b""
    for i in range(10):
        chunk = f"[{i}]".encode()
        parts.append(chunk)
        out += frame(OP_CONT if i else OP_TEXT, chunk, fin=(i == 9))
        if i < 9:
            out += frame(OP_PING, f"ping{i}".encode())
    ws.send(out)
    frames = []
    for _ in range(10):  # the message and up to 9 pongs (only the last one is required)
        frames.append(ws.recv_frame())
        if {OP_TEXT, OP_PONG} <= {f.opcode for f in frames} and \
                any(f.opcode == OP_PONG and f.payload == b"ping8" for f in frames):
            break
    msgs = [(f.opcode, f.payload) for f in frames if f.opcode != OP_PONG]
    pongs = [f.payload for f in frames if f.opcode == OP_PONG]
    assert msgs == [(OP_TEXT, b"".join(parts))], frames
    assert pongs and pongs[-1] == b"ping8", pongs
    assert pongs == sorted(pongs), pongs


def test_5_pong_between_fragments(ws):
    ws.send(frame(OP_TEXT, b"a", fin=False) + frame(OP_PONG, b"x") + frame(OP_CONT, b"b"))
    assert_echo(ws, OP_TEXT, b"ab")


@pytest.mark.hostile
@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_5_continuation_without_start_1002(ws, fin):
    ws.send(frame(OP_CONT, b"orphan", fin=fin) + frame(OP_CONT, b"more"))
    before = expect_failure(ws, 1002)
    assert not before


@pytest.mark.hostile
@pytest.mark.parametrize("first,second", [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY),
                                          (OP_BINARY, OP_BINARY), (OP_BINARY, OP_TEXT)],
                         ids=["text-text", "text-binary", "binary-binary", "binary-text"])
@pytest.mark.parametrize("second_fin", [True, False], ids=["fin", "nofin"])
def test_5_new_message_while_open_1002(ws, first, second, second_fin):
    ws.send(frame(first, b"open", fin=False) + frame(second, b"intruder", fin=second_fin)
            + frame(OP_CONT, b"end"))
    before = expect_failure(ws, 1002)
    assert not [f for f in before if f.opcode in (OP_TEXT, OP_BINARY)], before


@pytest.mark.hostile
def test_5_continuation_after_complete_message_1002(ws):
    ws.send(frame(OP_TEXT, b"complete") + frame(OP_CONT, b"late"))
    before = expect_failure(ws, 1002)
    assert [(f.opcode, f.payload) for f in before] == [(OP_TEXT, b"complete")]


# --- 6: UTF-8 ---------------------------------------------------------------------------------

VALID_UTF8 = {
    "ascii": b"Hello-\x7f",
    "autobahn-6.2": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "kosme": "κόσμε".encode(),
    "nul": b"\x00",
    "u+0080": "\u0080".encode(),
    "u+07ff": "\u07ff".encode(),
    "u+0800": "\u0800".encode(),
    "u+d7ff": "\ud7ff".encode(),
    "u+e000": "\ue000".encode(),
    "u+fffd": "\ufffd".encode(),
    "u+fffe-nonchar": b"\xef\xbf\xbe",
    "u+ffff-nonchar": b"\xef\xbf\xbf",
    "u+10000": "\U00010000".encode(),
    "u+10ffff": "\U0010ffff".encode(),
    "bom": b"\xef\xbb\xbf",
    "emoji": "🚀✓".encode(),
}

INVALID_UTF8 = {
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "kosme-surrogate": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    "overlong-nul-2": b"\xc0\x80",
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-c1": b"\xc1\xbf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-7ff-3": b"\xe0\x9f\xbf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-ffff-4": b"\xf0\x8f\xbf\xbf",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f5-lead": b"\xf5\x80\x80\x80",
    "five-byte": b"\xf8\x88\x80\x80\x80",
    "six-byte": b"\xfc\x84\x80\x80\x80\x80",
    "ff": b"\xff",
    "fe": b"\xfe",
    "lone-continuation": b"a\x80b",
    "truncated-2-at-end": b"abc\xc2",
    "truncated-3-at-end": b"abc\xe2\x82",
    "truncated-4-at-end": b"abc\xf0\x9f\x9a",
    "truncated-then-ascii": b"\xe2\x82a",
    "bad-second-byte": b"\xe2\x28\xa1",
}


@pytest.mark.parametrize("payload", VALID_UTF8.values(), ids=VALID_UTF8.keys())
def test_6_valid_utf8_echoed(ws, payload):
    ws.send_frame(OP_TEXT, payload)
    assert_echo(ws, OP_TEXT, payload)


@pytest.mark.parametrize("payload", VALID_UTF8.values(), ids=VALID_UTF8.keys())
def test_6_valid_utf8_byte_per_fragment(ws, payload):
    """Codepoints split across fragment boundaries are valid (Autobahn 6.2.4/6.4)."""
    n = len(payload)
    if n == 1:
        data = frame(OP_TEXT, payload)
    else:
        data = b"".join(frame(OP_CONT if i else OP_TEXT, payload[i:i + 1], fin=(i == n - 1))
                        for i in range(n))
    ws.send(data)
    assert_echo(ws, OP_TEXT, payload)


def test_6_codepoint_split_across_two_fragments(ws):
    euro = "€".encode()  # e2 82 ac
    ws.send(frame(OP_TEXT, b"price " + euro[:1], fin=False) + frame(OP_CONT, euro[1:] + b"5"))
    assert_echo(ws, OP_TEXT, b"price " + euro + b"5")


@pytest.mark.hostile
@pytest.mark.parametrize("payload", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_6_invalid_utf8_1007(ws, payload):
    ws.send_frame(OP_TEXT, payload)
    before = expect_failure(ws, 1007)
    assert not before, f"echoed invalid UTF-8: {before!r}"


@pytest.mark.hostile
@pytest.mark.parametrize("payload", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_6_invalid_utf8_split_in_fragments_1007(ws, payload):
    """Bad sequences cut across fragment boundaries (and byte per fragment)."""
    mid = len(payload) // 2
    ws.send(frame(OP_TEXT, payload[:mid], fin=False) + frame(OP_CONT, payload[mid:], fin=False)
            + frame(OP_CONT, b"", fin=True))
    before = expect_failure(ws, 1007)
    assert not [f for f in before if f.opcode == OP_TEXT]


@pytest.mark.hostile
def test_6_invalid_in_first_fragment_valid_rest(ws):
    ws.send(frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90", fin=False)
            + frame(OP_CONT, b"\x80\x80edited"))
    expect_failure(ws, 1007)


@pytest.mark.hostile
def test_6_truncated_codepoint_at_end_of_fragmented_message(ws):
    ws.send(frame(OP_TEXT, b"ok ", fin=False) + frame(OP_CONT, b"\xe2\x82"))
    expect_failure(ws, 1007)


def test_6_invalid_utf8_in_binary_is_fine(ws):
    payload = b"".join(INVALID_UTF8.values())
    ws.send_frame(OP_BINARY, payload)
    assert_echo(ws, OP_BINARY, payload)


def test_6_good_message_then_bad(ws):
    ws.send(frame(OP_TEXT, "κόσμε".encode()) + frame(OP_TEXT, b"\xed\xa0\x80"))
    before = expect_failure(ws, 1007)
    assert [(f.opcode, f.payload) for f in before] == [(OP_TEXT, "κόσμε".encode())]


# --- 7: close ---------------------------------------------------------------------------------


def test_7_close_1000_with_reason(ws):
    ws.send_frame(OP_TEXT, b"before close")
    assert_echo(ws, OP_TEXT, b"before close")
    ws.send_close(1000, b"normal bye")
    code, reason, before = ws.expect_close()
    assert code == 1000 and not before
    assert ws.expect_eof(3) == b""


def test_7_close_empty_payload(ws):
    ws.send_close()
    code, reason, before = ws.expect_close()
    assert code in (None, 1000), code
    assert ws.expect_eof(3) == b""


def test_7_close_max_reason(ws):
    reason = b"r" * 123
    ws.send_close(1000, reason)
    code, _, _ = ws.expect_close()
    assert code == 1000
    ws.expect_eof(3)


def test_7_close_utf8_reason(ws):
    ws.send_close(1000, "κόσμε – ✓".encode())
    code, _, _ = ws.expect_close()
    assert code == 1000
    ws.expect_eof(3)


def test_7_nothing_after_close(ws):
    """Frames after the client's close are ignored (Autobahn 7.1.2-7.1.4)."""
    ws.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"after close")
            + frame(OP_PING, b"after close"))
    code, _, before = ws.expect_close()
    assert code == 1000 and not before
    rest = ws.expect_eof(3)
    assert rest == b"", f"server sent {rest!r} after its close"


def test_7_close_after_fragment_start(ws):
    """Autobahn 7.1.6-ish: close in the middle of a fragmented message."""
    ws.send(frame(OP_TEXT, b"unfinished", fin=False) + frame(OP_CLOSE, close_payload(1000)))
    code, _, before = ws.expect_close()
    assert code == 1000 and not before
    ws.expect_eof(3)


def test_7_client_sends_close_then_closes_tcp(gw):
    for _ in range(10):
        c = ws_connect(gw.port)
        c.send_close(1000)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()


@pytest.mark.hostile
def test_7_close_one_byte_1002(ws):
    ws.send_frame(OP_CLOSE, b"\x03")
    expect_failure(ws, 1002)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_7_valid_close_code_echoed(ws, code):
    ws.send_close(code, b"reason")
    got, _, before = ws.expect_close()
    assert got == code and not before
    assert ws.expect_eof(3) == b""


@pytest.mark.hostile
@pytest.mark.parametrize("code", INVALID_CODES)
def test_7_invalid_close_code_1002(ws, code):
    ws.send_close(code, b"")
    expect_failure(ws, 1002)


@pytest.mark.hostile
@pytest.mark.parametrize("reason", [b"\xed\xa0\x80", b"\xff", b"ok\xc0\x80", b"abc\xe2\x82"],
                         ids=["surrogate", "ff", "overlong", "truncated"])
def test_7_invalid_utf8_close_reason_1007(ws, reason):
    ws.send_close(1000, reason)
    expect_failure(ws, 1007)


def test_7_server_closes_tcp_after_handshake(ws):
    ws.send_close(1000)
    ws.expect_close()
    t0 = time.monotonic()
    ws.expect_eof(5)
    assert time.monotonic() - t0 < 2.0, "server kept TCP open long after the close handshake"


# --- 9: sizes against max-message ------------------------------------------------------------


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_9_exactly_max_message(ws, opcode):
    payload = b"m" * MAX_MESSAGE
    ws.send_frame(opcode, payload)
    assert_echo(ws, opcode, payload)


@pytest.mark.parametrize("nfrag", [64, 4096])
def test_9_exactly_max_in_fragments(ws, nfrag):
    size = MAX_MESSAGE // nfrag
    payload = os.urandom(MAX_MESSAGE)
    ws.send(b"".join(frame(OP_CONT if i else OP_BINARY, payload[i * size:(i + 1) * size],
                           fin=(i == nfrag - 1)) for i in range(nfrag)))
    assert_echo(ws, OP_BINARY, payload, timeout=20)


@pytest.mark.hostile
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_9_single_frame_over_max_1009(ws, opcode):
    ws.send_frame(opcode, b"o" * (MAX_MESSAGE + 1))
    before = expect_failure(ws, 1009)
    assert not before


@pytest.mark.hostile
@pytest.mark.parametrize("parts", [[40000, 40000], [MAX_MESSAGE, 1], [1024] * 65,
                                   [1, MAX_MESSAGE]],
                         ids=["2x40000", "max+1", "65x1KiB", "1+max"])
def test_9_fragments_sum_over_max_1009(ws, parts):
    data = b"".join(frame(OP_CONT if i else OP_BINARY, b"f" * n, fin=(i == len(parts) - 1))
                    for i, n in enumerate(parts))
    ws.send(data)
    before = expect_failure(ws, 1009)
    assert not [f for f in before if f.opcode == OP_BINARY]


@pytest.mark.hostile
@pytest.mark.parametrize("length", [MAX_MESSAGE + 1, 2 ** 32, 2 ** 40, 2 ** 62],
                         ids=["max+1", "4GiB", "1TiB", "2^62"])
def test_9_declared_huge_length_1009(ws, length):
    """Only the header is sent: the server must refuse from the length, not wait or allocate."""
    head = frame(OP_BINARY, b"", length=length)
    ws.send(head + b"\0" * 16)
    before = expect_failure(ws, 1009)
    assert not before


@pytest.mark.hostile
def test_9_length_with_top_bit_set(ws):
    head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 2 ** 63 + 5) + os.urandom(4)
    ws.send(head + b"12345")
    code, _, _ = ws.fail_with()
    assert code in (1002, 1009), code


def test_9_large_text_validated_across_frames(ws):
    """Autobahn 9.x-ish: a 64 KiB UTF-8 text message in 1 KiB frames, codepoints cut anywhere."""
    text = ("ä€😀" * 10000).encode()[:MAX_MESSAGE]
    text = text[:len(text.decode("utf-8", "ignore").encode())]
    size = 1000
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    ws.send(b"".join(frame(OP_CONT if i else OP_TEXT, c, fin=(i == len(chunks) - 1))
                     for i, c in enumerate(chunks)))
    assert_echo(ws, OP_TEXT, text, timeout=20)


@pytest.mark.hostile
def test_ping_flood_without_reading(gw):
    """Pongs for a client that never reads count against the output cap like any output: the
    gateway must close it (1008) or stop reading it, not queue pongs without bound. Kernel
    socket buffers on loopback hold about 10 MB; 32 MB of pings accepted means user space
    holds the pongs."""
    ws = ws_connect(gw.port, rcvbuf=4096)
    with ws:
        batch = frame(OP_PING, b"f" * 125, mask_key=b"abcd") * 500  # 65500 bytes
        ws.sock.setblocking(False)
        accepted, pending, dropped = 0, b"", False
        deadline = time.monotonic() + 8
        while accepted < 48 * 1024 * 1024 and time.monotonic() < deadline:
            if not pending:
                pending = batch
            try:
                n = ws.sock.send(pending)
            except BlockingIOError:
                select.select([], [ws.sock], [], 0.2)
                continue
            except OSError:
                dropped = True
                break
            accepted += n
            pending = pending[n:]
        assert dropped or accepted < 32 * 1024 * 1024, (
            f"gateway answered {accepted // 131} pings from a client that reads nothing "
            f"({accepted >> 20} MiB in, about as much pong output queued in user space)")


# --- seeded mutation fuzz (the sanitizers judge; the hook checks health afterwards) ----------


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(5)
        if kind == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            del data[rng.randrange(len(data)):]
        elif kind == 2:
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 3 and len(data) > 2:
            i = rng.randrange(len(data) - 1)
            data[i], data[i + 1] = data[i + 1], data[i]
        else:
            data.extend(bytes(data[:rng.randint(0, 64)]))
    return bytes(data)


def seed_stream(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        op = rng.choice([OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE, OP_CONT])
        n = rng.choice([0, 1, 2, 5, 125, 126, 300, 70000])
        if op >= 8:
            n = min(n, 125)
        payload = "é€😀a".encode() * (n // 10 + 1)
        payload = payload[:n]
        if op == OP_CLOSE and n >= 2:
            payload = close_payload(rng.choice([1000, 1002, 1005, 3000, 999]), payload[2:])
        parts.append(frame(op, payload, fin=rng.random() < 0.7))
    return b"".join(parts)


@pytest.mark.hostile
@pytest.mark.parametrize("seed", range(6))
def test_fuzz_mutated_frames(gw, seed):
    import random
    rng = random.Random(seed)
    for _ in range(40):
        ws = ws_connect(gw.port)
        with ws:
            data = mutate(rng, seed_stream(rng))
            try:
                ws.send(data)
                if rng.random() < 0.5:
                    ws.sock.shutdown(socket.SHUT_WR)
                ws.sock.settimeout(0.3)
                for _ in range(1000):
                    if not ws.sock.recv(1 << 16):
                        break
            except OSError:
                pass
