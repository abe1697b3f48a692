"""Echo sessions under valgrind's memcheck: clean closes, abrupt disconnects, protocol
failures, HTTP requests and a drain with sessions open must leave no leak, no invalid access
and no descriptor behind. Runs the release build (valgrind and the sanitizers do not mix)."""

import re
import shutil
import signal
import socket
import struct

import pytest

from gwtest import REPO_ROOT, Gateway, free_port

RELEASE_BIN = REPO_ROOT / "build" / "release" / "chat-gateway"

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None or not RELEASE_BIN.exists(),
                                reason="needs valgrind and build/release/chat-gateway")


class ValgrindGateway(Gateway):
    def argv(self):
        return ["valgrind", "--leak-check=full",
                "--show-leak-kinds=definite,indirect,possible",
                "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
                "--track-fds=yes", str(RELEASE_BIN), "--listen", f"127.0.0.1:{self.port}",
                "--public-dir", str(REPO_ROOT / "public"), *self.extra_args]


def upgrade(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "closed during handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def frame(opcode, payload, fin=True):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\0\0\0\0" + payload  # zero mask key: payload unchanged


def read_until_eof(s, limit=1 << 20):
    s.settimeout(10)
    data = b""
    while len(data) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_echo_sessions_leave_nothing_behind(tmp_path):
    gw = ValgrindGateway(tmp_path, args=["--close-timeout", "2s"], port=free_port())
    gw.start(wait=False)
    gw.wait_ready(timeout=30)
    port = gw.port
    for i in range(10):  # clean close handshakes
        s = upgrade(port)
        s.sendall(frame(0x1, "héllo".encode() * 50) + frame(0x2, bytes(3000))
                  + frame(0x1, b"frag", fin=False) + frame(0x9, b"p") + frame(0x0, b"ment")
                  + frame(0x8, struct.pack("!H", 1000) + b"bye"))
        out = read_until_eof(s)
        assert out.endswith(b"\x88\x05\x03\xe8bye"), out[-20:]
        s.close()
    for i in range(10):  # abrupt disconnects mid-frame
        s = upgrade(port)
        s.sendall(frame(0x1, b"x" * 1000)[:500])
        s.close()
    for bad in (b"\x81\x00", frame(0x3, b""), frame(0x1, b"\xff"), frame(0x9, b"x" * 126)):
        s = upgrade(port)
        s.sendall(bad)
        assert read_until_eof(s)[:2] == b"\x88\x02"
        s.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # HTTP, then garbage
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"NOT HTTP\r\n\r\n")
        out = read_until_eof(s)
        assert out.count(b"HTTP/1.1 ") == 3 and b"400 Bad Request" in out
    held = [upgrade(port) for _ in range(5)]  # still open at SIGTERM: closed with 1001
    gw.send_signal(signal.SIGTERM)
    for s in held:
        out = read_until_eof(s)
        assert out[:4] == b"\x88\x16\x03\xe9", out[:30]
        s.close()
    rc = gw.wait_exit(60)
    log = gw.log_text()
    assert rc == 0, log[-4000:]
    # Master and workers each report; valgrind's exit code (99) already flags leaks, and
    # these catch a report that slipped through anyway.
    assert not re.search(r"(definitely|indirectly|possibly) lost: [1-9]", log), log[-4000:]
    assert "Invalid read" not in log and "Invalid write" not in log, log[-4000:]
    # --track-fds lists every descriptor still open at exit; no socket may be among them.
    assert "FILE DESCRIPTORS" in log, log[-4000:]
    assert "Open AF_INET" not in log and "Open AF_UNIX" not in log, log[-4000:]
