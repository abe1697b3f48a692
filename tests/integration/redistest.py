"""A private redis-server for tests: loopback only, no persistence, stopped by PID."""

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from gwtest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, workdir, port=None, password=None, unix=False, tcp=True):
        """unix: also listen on workdir/redis.sock; tcp=False (with unix): no TCP port at all."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.password = password
        self.unixsocket = str(self.workdir / "redis.sock") if unix else None
        self.tcp = tcp or not unix
        self.proc = None
        self.log = None

    @property
    def url(self):
        if self.unixsocket:
            return self.unixsocket
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self, timeout=10.0):
        if self.port is None:
            self.port = free_port() if self.tcp else 0
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.unixsocket:
            args += ["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
        self.log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                if self.tcp:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                else:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.settimeout(0.5)
                        s.connect(self.unixsocket)
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError("redis-server did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def kill(self):
        self.stop(signal.SIGKILL)

    def cli(self, *args, timeout=10):
        cmd = self.cli_argv()
        return subprocess.run(cmd + list(args), capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def cli_argv(self):
        """redis-cli and the flags that reach this server (no command)."""
        if self.tcp:
            cmd = [REDIS_CLI, "-p", str(self.port)]
        else:
            cmd = [REDIS_CLI, "-s", self.unixsocket]
        if self.password:
            cmd += ["--no-auth-warning", "-a", self.password]
        return cmd
