"""Session life cycle: server pings and pong timeout, close timeout, slow readers, drain."""

import asyncio
import select
import signal
import socket
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from gwtest import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, HttpConn, HttpError, frame,
                    http_get, ws_connect)


def frames_for(ws, seconds, answer_pings=True, limit=200):
    """Collect server frames for `seconds`; optionally answer pings."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(out) < limit:
        try:
            f = ws.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
        except socket.timeout:
            break
        out.append(f)
        if f.opcode == OP_PING and answer_pings:
            ws.send_frame(OP_PONG, f.payload)
        if f.opcode == OP_CLOSE:
            break
    return out


# --- server pings ---------------------------------------------------------------------------


def test_server_pings_and_answered_session_stays(make_gateway):
    g = make_gateway("--ping-interval", "300ms", "--pong-timeout", "300ms",
                     "--close-timeout", "1s")
    with ws_connect(g.port) as ws:
        got = frames_for(ws, 2.0, answer_pings=True)
        pings = [f for f in got if f.opcode == OP_PING]
        assert not [f for f in got if f.opcode == OP_CLOSE], got
        assert 3 <= len(pings) <= 10, f"{len(pings)} pings in 2 s at 300ms: {got!r}"
        ws.send_frame(OP_TEXT, b"still alive")
        assert ws.recv_message() == (OP_TEXT, b"still alive")
        assert ws.close_handshake(1000) == 1000


def test_pong_timeout_closes_1008(make_gateway):
    g = make_gateway("--ping-interval", "300ms", "--pong-timeout", "300ms",
                     "--close-timeout", "500ms")
    with ws_connect(g.port) as ws:
        t0 = time.monotonic()
        got = frames_for(ws, 3.0, answer_pings=False)
        assert got and got[0].opcode == OP_PING, got
        assert got[-1].opcode == OP_CLOSE, f"no close within 3 s: {got!r}"
        took = time.monotonic() - t0
        code, reason = got[-1].close_code()
        assert code == 1008, got[-1]
        assert b"pong" in reason.lower(), reason
        assert 0.4 <= took <= 2.5, f"closed after {took:.2f}s (ping 300ms + pong 300ms)"
        # No close reply from us: TCP must still go away (close timeout 500ms).
        ws.expect_eof(3)


def test_pong_timeout_with_websockets_client_not_triggered(make_gateway):
    """A normal client library answers the pings automatically."""
    g = make_gateway("--ping-interval", "200ms", "--pong-timeout", "300ms")

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{g.port}/echo",
                                      ping_interval=None) as ws:
            for i in range(10):
                await asyncio.sleep(0.15)
                await ws.send(f"tick {i}")
                assert await asyncio.wait_for(ws.recv(), 5) == f"tick {i}"

    asyncio.run(asyncio.wait_for(go(), 20))


def test_ping_interval_zero_disables(make_gateway):
    g = make_gateway("--ping-interval", "0", "--pong-timeout", "200ms")
    with ws_connect(g.port) as ws:
        got = frames_for(ws, 1.5, answer_pings=False)
        assert got == [], f"server sent frames with pings disabled: {got!r}"
        ws.send_frame(OP_TEXT, b"quiet")
        assert ws.recv_message() == (OP_TEXT, b"quiet")


def test_late_pong_does_not_save_session(make_gateway):
    g = make_gateway("--ping-interval", "300ms", "--pong-timeout", "300ms",
                     "--close-timeout", "500ms")
    with ws_connect(g.port) as ws:
        f = ws.recv_frame(timeout=3)
        assert f.opcode == OP_PING
        time.sleep(0.9)
        try:
            ws.send_frame(OP_PONG, f.payload)
        except OSError:
            pass
        got = frames_for(ws, 3.0, answer_pings=False)
        closes = [x for x in got if x.opcode == OP_CLOSE]
        assert closes and closes[0].close_code()[0] == 1008, got


# --- close timeout ----------------------------------------------------------------------------


def test_close_timeout_drops_silent_peer(make_gateway):
    g = make_gateway("--close-timeout", "500ms")
    with ws_connect(g.port) as ws:
        ws.send_frame(OP_TEXT, b"x", rsv=4)  # protocol error: server closes 1002
        code, _, _ = ws.expect_close()
        assert code == 1002
        t0 = time.monotonic()
        ws.expect_eof(4)  # we never answer the close
        took = time.monotonic() - t0
        assert took <= 2.5, f"TCP dropped {took:.2f}s after close with a 500ms close timeout"


# --- slow readers ---------------------------------------------------------------------------


class Flooder:
    """Writes one frame over and over without reading, never splitting frames on a retry."""

    def __init__(self, ws, frame_bytes):
        self.ws = ws
        self.frame = frame_bytes
        self.pending = b""
        self.msgs = 0
        self.dead = False
        ws.sock.setblocking(False)

    def pump(self, max_bytes=1 << 22):
        """Send without blocking; returns False once the connection is gone."""
        self.last_sent = sent = 0
        while not self.dead and sent < max_bytes:
            if not self.pending:
                self.pending = self.frame
                self.msgs += 1
            try:
                n = self.ws.sock.send(self.pending)
            except BlockingIOError:
                break
            except (BrokenPipeError, ConnectionResetError):
                self.dead = True
                break
            self.pending = self.pending[n:]
            sent += n
        self.last_sent = sent
        return not self.dead


def flood(ws, msg_frame, max_msgs, seconds, stall=None):
    """Send msg_frame up to max_msgs times without reading; returns (msgs, how it ended).
    With stall, stop once nothing could be sent for that many seconds (the peer stopped
    reading us)."""
    f = Flooder(ws, msg_frame)
    deadline = time.monotonic() + seconds
    progress = time.monotonic()
    while f.msgs < max_msgs and time.monotonic() < deadline:
        if not f.pump():
            break
        if f.last_sent:
            progress = time.monotonic()
        elif stall is not None and time.monotonic() - progress > stall:
            ws.sock.setblocking(True)
            return f.msgs, "stalled"
        select.select([], [ws.sock], [], 0.2)
    ws.sock.setblocking(True)
    return f.msgs, "reset" if f.dead else ("max" if f.msgs >= max_msgs else "deadline")


def drain_until_closed(ws, seconds=10, max_bytes=256 * 1024 * 1024):
    """Read everything until EOF/reset; return (bytes, closed?)."""
    total = 0
    tail = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and total < max_bytes:
        ws.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = ws.sock.recv(1 << 20)
        except socket.timeout:
            return total, tail, False
        except (ConnectionResetError, BrokenPipeError):
            return total, tail, True
        if not data:
            return total, tail, True
        total += len(data)
        tail = (tail + data)[-256:]
    return total, tail, False


def test_slow_reader_cut_others_fine(make_gateway):
    g = make_gateway("--max-output", "256KiB", "--close-timeout", "500ms")
    payload = b"s" * 65536
    msg = frame(OP_BINARY, payload)
    with ws_connect(g.port) as bystander, ws_connect(g.port, rcvbuf=4096) as slow:
        sent, how = flood(slow, msg, max_msgs=1500, seconds=20)  # up to ~98 MB
        total, tail, closed = drain_until_closed(slow, seconds=10)
        assert closed, (f"slow reader never cut: sent {sent} msgs ({how}), read back {total} "
                        "bytes and the connection is still open")
        assert total < sent * len(payload), "everything was echoed: the cap never applied"
        # If the close frame made it through, it says 1008.
        i = tail.rfind(b"\x88")
        if i >= 0 and len(tail) - i >= 4 and tail[i + 1] >= 2 and tail[i + 1] <= 125 \
                and i + 2 + tail[i + 1] == len(tail):
            code = int.from_bytes(tail[i + 2:i + 4], "big")
            assert code == 1008, f"slow reader closed with {code}"
        # The session connected before is unaffected, and new ones work.
        bystander.send_frame(OP_TEXT, b"bystander")
        assert bystander.recv_message() == (OP_TEXT, b"bystander")
    assert http_get(g.port, "/healthz").status == 200
    with ws_connect(g.port) as fresh:
        fresh.send_frame(OP_TEXT, b"fresh")
        assert fresh.recv_message() == (OP_TEXT, b"fresh")


def test_slow_reader_close_frame_visible(make_gateway):
    """A reader that stops reading, then reads again: it sees the 1008 close (or EOF)."""
    g = make_gateway("--max-output", "64KiB", "--close-timeout", "500ms")
    with ws_connect(g.port, rcvbuf=4096) as slow:
        # Past the cap plus whatever the kernel's buffers hold (their autotuning differs from
        # machine to machine): until the gateway stops reading us, then stop sending.
        big = frame(OP_BINARY, b"q" * 60000)
        sent, how = flood(slow, big, max_msgs=1500, seconds=15, stall=1.0)  # up to ~90 MB
        total, tail, closed = drain_until_closed(slow, seconds=10)
        assert closed, f"not cut after {sent} x 60000 bytes ({how}); read {total}"
        if b"\x88" in tail[-140:]:
            i = tail.rfind(b"\x88")
            n = tail[i + 1] & 0x7F
            if n >= 2 and i + 2 + n == len(tail):
                code = int.from_bytes(tail[i + 2:i + 4], "big")
                reason = tail[i + 4:i + 2 + n].lower()
                assert code == 1008, code
                assert b"slow" in reason or b"output" in reason, reason


def test_many_slow_readers_gateway_survives(make_gateway):
    g = make_gateway("--max-output", "128KiB", "--close-timeout", "300ms")
    payload = frame(OP_BINARY, b"m" * 32768)
    socks = [ws_connect(g.port, rcvbuf=4096) for _ in range(8)]
    try:
        flooders = [Flooder(s, payload) for s in socks]
        deadline = time.monotonic() + 20
        for _ in range(2000):  # bounded rounds
            live = [f for f in flooders if not f.dead and f.msgs < 3000]
            if not live or time.monotonic() > deadline:
                break
            for f in live:
                f.pump(1 << 20)
            select.select([], [f.ws.sock for f in live], [], 0.1)
        for s in socks:
            s.sock.setblocking(True)
            total, tail, closed = drain_until_closed(s, seconds=5)
            assert closed, "a slow reader was never cut"
    finally:
        for s in socks:
            s.close()
    assert http_get(g.port, "/healthz").status == 200


# --- drain ------------------------------------------------------------------------------------


def assert_not_served(port):
    """While draining: refused, closed, or 503 from /healthz; never a 200."""
    try:
        c = HttpConn(port, timeout=2)
    except OSError:
        return
    with c:
        try:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response(timeout=2)
        except (OSError, HttpError):
            return
        assert r.status == 503, f"served a new request while draining: {r!r}"



@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_drain_sends_1001_and_exits_0(make_gateway, sig):
    g = make_gateway("--drain-timeout", "3s", "--close-timeout", "1s")
    # Three echo sessions and one chat session (/ws): all get 1001.
    sessions = [ws_connect(g.port, path="/ws" if i == 3 else "/echo") for i in range(4)]
    try:
        for i, ws in enumerate(sessions[:3]):  # every echo session is live
            ws.send_frame(OP_TEXT, f"s{i}".encode())
            assert ws.recv_message() == (OP_TEXT, f"s{i}".encode())
        t0 = time.monotonic()
        g.send_signal(sig)
        for ws in sessions:
            code, reason, before = ws.expect_close(timeout=3)
            assert code == 1001, f"drain closed with {code} {reason!r}"
            ws.send_close(1001)
        assert_not_served(g.port)
        rc = g.wait_exit(6)
        took = time.monotonic() - t0
        assert rc is not None, "gateway still running 6 s after the signal (drain timeout 3s)"
        assert rc == 0, f"exit status {rc} after {sig.name}"
        assert took <= 4.0, f"drain took {took:.2f}s"
        for ws in sessions:
            ws.expect_eof(2)
    finally:
        for ws in sessions:
            ws.close()


def test_drain_with_websockets_client(make_gateway):
    g = make_gateway("--drain-timeout", "3s")

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{g.port}/echo",
                                      ping_interval=None) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            g.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), 5)
            return ei.value.rcvd.code if ei.value.rcvd else None

    assert asyncio.run(asyncio.wait_for(go(), 15)) == 1001
    assert g.wait_exit(5) == 0


def test_drain_idle_exits_fast(make_gateway):
    g = make_gateway("--drain-timeout", "5s")
    assert http_get(g.port, "/healthz").status == 200
    t0 = time.monotonic()
    g.send_signal(signal.SIGTERM)
    assert g.wait_exit(6) == 0
    assert time.monotonic() - t0 < 2.0, "idle gateway waited for the drain timeout"


def test_drain_unresponsive_client_bounded(make_gateway):
    """A client that never answers the 1001 does not hold the exit past the drain timeout."""
    g = make_gateway("--drain-timeout", "1s", "--close-timeout", "10s")
    with ws_connect(g.port) as ws:
        t0 = time.monotonic()
        g.send_signal(signal.SIGTERM)
        code, _, _ = ws.expect_close(timeout=3)
        assert code == 1001
        rc = g.wait_exit(5)
        took = time.monotonic() - t0
        assert rc == 0, f"exit {rc}"
        assert took <= 3.0, f"exit took {took:.2f}s with a 1s drain timeout"
        ws.expect_eof(2)


def test_drain_with_keepalive_http_and_half_request(make_gateway):
    g = make_gateway("--drain-timeout", "1s")
    with HttpConn(g.port) as idle, HttpConn(g.port) as half:
        idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.read_response().status == 200
        half.send(b"GET /healthz HTTP/1.1\r\nHo")
        time.sleep(0.1)
        g.send_signal(signal.SIGTERM)
        assert g.wait_exit(5) == 0
        assert idle.is_closed(2)
        assert half.is_closed(2)


def test_drain_mid_message(make_gateway):
    g = make_gateway("--drain-timeout", "2s", "--close-timeout", "500ms")
    with ws_connect(g.port) as ws:
        ws.send_frame(OP_TEXT, b"half", fin=False)
        time.sleep(0.1)
        g.send_signal(signal.SIGTERM)
        code, _, _ = ws.expect_close(timeout=3)
        assert code == 1001
        ws.send_close(1001)
        ws.expect_eof(2)
    assert g.wait_exit(5) == 0


def test_server_ping_answered_by_hand(make_gateway):
    """A pong echoing the server's ping payload keeps the session."""
    g = make_gateway("--ping-interval", "300ms", "--pong-timeout", "400ms",
                     "--close-timeout", "500ms")
    with ws_connect(g.port) as ws:
        f = ws.recv_frame(timeout=3)
        assert f.opcode == OP_PING
        assert len(f.payload) <= 125
        ws.send_frame(OP_PONG, f.payload)
        got = frames_for(ws, 1.0, answer_pings=True)
        assert not [x for x in got if x.opcode == OP_CLOSE], got


def test_handshake_timeout_does_not_apply_to_sessions(make_gateway):
    g = make_gateway("--handshake-timeout", "300ms", "--ping-interval", "0")
    with ws_connect(g.port) as ws:
        got = frames_for(ws, 1.2, answer_pings=False)
        assert got == [], got
        ws.send_frame(OP_TEXT, b"idle but alive")
        assert ws.recv_message() == (OP_TEXT, b"idle but alive")


def test_keepalive_then_partial_request_408(make_gateway):
    g = make_gateway("--handshake-timeout", "400ms")
    with HttpConn(g.port) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /healthz HTTP/1.1\r\nHo")
        r = c.read_response(timeout=4)
        assert r.status == 408, r
        assert c.is_closed(3)


def test_drain_new_connections_not_left_hanging(make_gateway):
    """While draining, a new connection is refused, answered 503 or closed at once; it must not
    sit unaccepted in the listen backlog until the process exits (with SO_REUSEPORT the kernel
    keeps handing connections to a listener that is only disabled)."""
    g = make_gateway("--drain-timeout", "3s", "--close-timeout", "5s")
    with ws_connect(g.port) as ws:  # never answers the 1001: keeps the drain going
        g.send_signal(signal.SIGTERM)
        assert ws.expect_close(timeout=3)[0] == 1001
        _probe_during_drain(g.port)
    # The last session is gone: the drain ends by itself and the gateway exits cleanly (the
    # fixture's teardown must not find it still draining and signal it a second time).
    assert g.wait_exit(10) == 0, g.log_tail()


def _probe_during_drain(port):
    t0 = time.monotonic()
    try:
        c = HttpConn(port, timeout=2)
    except OSError:
        return  # refused: good
    with c:
        try:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response(timeout=1.5)
        except HttpError:
            r = None  # closed without an answer
        except socket.timeout:
            pytest.fail("new connection during drain was left hanging "
                        f"{time.monotonic() - t0:.1f}s without answer or close")
        if r is not None:
            assert r.status == 503, r
