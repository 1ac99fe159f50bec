"""A ``redis-server`` of a test's own, to kill, freeze and restart without touching
the machine's (tests/jobs and tests/bot import it: tests/ is on the path)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A ``redis-server`` the test may kill, freeze and restart."""

    def __init__(self, directory: Path, *, persistent: bool) -> None:
        self.dir, self.persistent, self.port = directory, persistent, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.dir), "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else []
        argv += ["--appendonly", "no"] if not self.persistent else []
        with (self.dir / "redis.log").open("a") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError((self.dir / "redis.log").read_text()[-2000:])
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        deadline = time.monotonic() + 30
        while not up():
            if time.monotonic() > deadline:
                raise AssertionError("the test's redis-server did not start")
            time.sleep(0.05)
        client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (the append-only file is flushed); SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
