#!/usr/bin/env python3
"""Echo benchmark for chat-gateway's /echo endpoint (bounded; loopback only).

Starts a release gateway on a free 127.0.0.1 port (or drives --url's host:port), then:
  1. one connection: batches of small text frames sent back to back, echoes counted;
  2. many connections (default 1,000): the same, all at once, on one selector loop;
  3. idle connections (default 5,000): VmRSS of the gateway before and after, per connection.
Reports messages per second, the gateway's CPU time per echoed message (from /proc, so the
figure holds when the load generator shares the cores), and memory per idle connection, as a
markdown table and one JSON line.

Frames are masked with a zero key (legal, and the payload stays as is), so the client costs
almost nothing per message and counting echoes is counting bytes.
"""
import argparse
import base64
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def handshake(host, port, path="/echo"):
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (path, host, port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("handshake: connection closed")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("handshake refused: %r" % buf[:80])
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def frame(payload):
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_echo(host, port, pid, conns, batch, size, seconds):
    """Each connection sends `batch` frames, waits for all echoes, repeats until `seconds`."""
    sel = selectors.DefaultSelector()
    payload = b"x" * size
    burst = frame(payload) * batch
    expect = (2 + size) * batch
    socks = [handshake(host, port) for _ in range(conns)]
    pending = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    start_cpu = cpu_seconds(pid)
    start = time.monotonic()
    deadline = start + seconds
    echoed = 0
    for s in socks:
        s.sendall(burst)
        pending[s] = expect
    while pending and time.monotonic() < deadline + 10:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise RuntimeError("gateway closed a connection")
            pending[s] -= len(data)
            if pending[s] <= 0:
                echoed += batch
                if time.monotonic() < deadline:
                    s.sendall(burst)
                    pending[s] += expect
                else:
                    del pending[s]
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(pid) - start_cpu
    for s in socks:
        sel.unregister(s)
        s.close()
    return {"connections": conns, "messages": echoed, "seconds": round(elapsed, 3),
            "msgs_per_s": round(echoed / elapsed), "server_cpu_s": round(cpu, 3),
            "server_cpu_us_per_msg": round(cpu * 1e6 / max(echoed, 1), 3)}


def run_idle(host, port, pid, conns):
    time.sleep(0.5)
    before = rss_kib(pid)
    socks = [handshake(host, port) for _ in range(conns)]
    time.sleep(1.0)
    after = rss_kib(pid)
    for s in socks:
        s.close()
    return {"connections": conns, "rss_before_kib": before, "rss_after_kib": after,
            "bytes_per_conn": round((after - before) * 1024 / conns)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/chat-gateway"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=32, help="payload bytes per message")
    ap.add_argument("--batch", type=int, default=100, help="frames in flight per connection")
    ap.add_argument("--many", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--report", default=os.path.join(ROOT, "build/bench/echo.md"))
    args = ap.parse_args()

    port = free_port()
    gw = subprocess.Popen([args.binary, "--listen", "127.0.0.1:%d" % port, "--log-level", "warn",
                           "--workers", "0",
                           "--public-dir", os.path.join(ROOT, "public")])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        one = run_echo("127.0.0.1", port, gw.pid, 1, args.batch, args.size, args.seconds)
        many = run_echo("127.0.0.1", port, gw.pid, args.many, max(1, args.batch // 10),
                        args.size, args.seconds)
        idle = run_idle("127.0.0.1", port, gw.pid, args.idle)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=15)
    machine = "%s, %d cores" % (os.uname().machine, os.cpu_count())
    result = {"bench": "echo", "machine": machine, "payload": args.size, "one": one,
              "many": many, "idle": idle}
    lines = [
        "# chat-gateway echo benchmark", "",
        "Machine: %s. Payload %d bytes, text frames, loopback." % (machine, args.size), "",
        "| workload | connections | messages/s | gateway CPU per message |",
        "|---|---:|---:|---:|",
        "| echo, one connection | 1 | %d | %.2f µs |" % (one["msgs_per_s"],
                                                         one["server_cpu_us_per_msg"]),
        "| echo, many connections | %d | %d | %.2f µs |" % (many["connections"],
                                                            many["msgs_per_s"],
                                                            many["server_cpu_us_per_msg"]),
        "", "| idle connections | RSS before | RSS after | per connection |", "|---:|---:|---:|---:|",
        "| %d | %d KiB | %d KiB | %d bytes |" % (idle["connections"], idle["rss_before_kib"],
                                                 idle["rss_after_kib"], idle["bytes_per_conn"]),
        "", "```json", json.dumps(result), "```", ""]
    os.makedirs(os.path.dirname(args.report), exist_ok=True)
    with open(args.report, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0 if gw.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
