"""The parts the reliability drills (:mod:`bench.drills`) start, break and stop, each by its own
pid and only those: a Redis, a PostgreSQL cluster of its own, a TCP relay that can black-hole the
hosted stand-in; and the processes of a ``spillover serve`` tree by role (RSS, SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.serving import MODEL
from contracts.deployments import APP_NAME, llm_deployment_name
from tests.helpers import free_port

__all__ = ["Postgres", "Redis", "Relay", "kill_role", "rss_sample", "wait_until"]

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/bin"))

# ---- the parts we start (and stop, by pid, and only those) ----

class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port, self.log = free_port(), workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                        stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() == b"PONG", "redis")

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(30)


class Postgres:
    """A cluster of our own (initdb as the ``postgres`` user), so stopping it stops nobody else's."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.data = free_port(), workdir / "pg"
        self.socket_dir = workdir / "pg-socket"
        for path in (self.data, self.socket_dir):
            path.mkdir()
            shutil.chown(path, "postgres", "postgres")
        workdir.chmod(0o755)
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])

    @property
    def dsn(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, args: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def start(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "log"), "-w", "start",
                           "-o", f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"])

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])


class Relay:
    """A TCP relay in front of the hosted stand-in; ``blackhole`` makes it accept and never answer."""

    def __init__(self, upstream_port: int) -> None:
        self.port, self.upstream_port, self.blackhole = free_port(), upstream_port, False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blackhole:  # hold the connection open, read and answer nothing
            with contextlib.suppress(Exception):
                await asyncio.sleep(3600)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if self.blackhole:  # a kept-alive connection goes silent too, and never resumes
                        await asyncio.sleep(3600)
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def wait_until(check: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not up after {timeout_s:g} s")


# ---- processes of the serve tree ----

ROLES = {"engine": f"ServeReplica:{APP_NAME}:{llm_deployment_name(MODEL)}", "ingress": f"ServeReplica:{APP_NAME}:ingress",
         "proxy": "ProxyActor", "controller": "ServeController", "engine_core": "VLLM::"}


def processes_by_role(root: int) -> dict[str, list[psutil.Process]]:
    out: dict[str, list[psutil.Process]] = {role: [] for role in [*ROLES, "serve_cli"]}
    with contextlib.suppress(psutil.NoSuchProcess):
        out["serve_cli"].append(psutil.Process(root))
        for process in psutil.Process(root).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                title = " ".join(process.cmdline()) or process.name()
                for role, marker in ROLES.items():
                    if marker in title:
                        out[role].append(process)
                        break
    return out


def rss_sample(root: int) -> dict[str, int]:
    sample = {}
    for role, processes in processes_by_role(root).items():
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        sample[role] = total
    return sample


def kill_role(root: int, role: str) -> list[int]:
    killed = []
    for process in processes_by_role(root)[role] + (processes_by_role(root)["engine_core"] if role == "engine" else []):
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
            killed.append(process.pid)
    return killed
