"""Small helpers the tests share: free ports, polling, and a ``spillover serve`` process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psutil
import yaml

BIN = Path(sys.executable).parent


class Clock:
    """A clock the test moves by hand (``clock.now += 5``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def terminate_tree(child: subprocess.Popen[bytes], wait_s: float, *, descendants_wait_s: float = 15.0) -> None:
    """Stop ``child`` and every process it started, and nothing else.

    SIGTERM, up to ``wait_s`` for a clean exit (servers drain, ``ray start --block`` stops the
    cluster it started), then SIGKILL; then the descendants recorded before the signal get
    ``descendants_wait_s`` to leave on their own, and any still alive are killed by pid. Never
    a machine-wide forced Ray stop: that ends every Ray process here, other people's included.
    """
    try:
        descendants = psutil.Process(child.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(wait_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    _, alive = psutil.wait_procs(descendants, timeout=descendants_wait_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str, period_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(period_s)
    raise TimeoutError(f"{what} not ready after {timeout_s}s (last error: {last!r})")


async def wait_for_async(check: Callable[[], bool], *, what: str, timeout_s: float = 5.0, period_s: float = 0.05) -> None:
    """:func:`wait_for` inside an event loop: other tasks run while it waits."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s}s")
        await asyncio.sleep(period_s)


class SpilloverServe:
    """``spillover serve`` as a child process joined to the session's Ray cluster."""

    def __init__(self, ray_address: str, port: int, config: dict | None, workdir: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log_path = workdir / "spillover-serve.log"
        #: Where serve sends Ray's, vLLM's and other libraries' log lines (``--log-file``).
        self.libraries_log_path = workdir / "libraries.log"
        args = [str(BIN / "spillover"), "serve", "--log-file", str(self.libraries_log_path)]
        if config is not None:
            path = workdir / "spillover.yaml"
            path.write_text(yaml.safe_dump(config))
            args += ["--config", str(path)]
        env = {**os.environ, "RAY_ADDRESS": ray_address, "SPILLOVER__SERVER__PORT": str(port), "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled",
               # The ledger, its spool and the key secret stay in the test's directory.
               "SPILLOVER__STORES__SQLITE_PATH": str(workdir / "spillover.db"), "SPILLOVER__STORES__SPOOL_DIR": str(workdir / "spool"),
               "SPILLOVER__AUTH__SECRET_FILE": str(workdir / "key-secret"),
               # Local work priced every 5 s (60 s by default), so a test sees it within ~20 s.
               "SPILLOVER__COSTS__LOCAL_INTERVAL_S": "5"}
        self._log: IO[str] = self.log_path.open("w")
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.stdout_lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            if line.startswith("spillover: ready"):
                self._ready.set()

    def wait_ready(self, timeout_s: float = 420) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(1.0):
            if self.process.poll() is not None:
                raise RuntimeError(f"spillover serve exited with {self.process.returncode}; log: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"spillover serve not ready after {timeout_s}s; log: {self.log_tail()}")

    def terminate(self, timeout_s: float = 180) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for path in (self.log_path, self.libraries_log_path):
            if path.exists():
                tails.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)


class UvicornThread:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout_s=10, what="uvicorn", period_s=0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def server_process(args: list[str], log_path: Path, health_url: str, *, what: str, timeout_s: float = 300,
                   env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server as a child process, its output in ``log_path``: yielded once ``health_url``
    answers 200, terminated after the block."""
    import httpx

    with log_path.open("w") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: httpx.get(health_url, timeout=2).status_code == 200, timeout_s=timeout_s, what=what)
            yield process
        finally:
            process.terminate()
            process.wait(60)


@contextmanager
def spillover_serving(ray_cluster: dict[str, str], port: int, config: dict | None, workdir: Path) -> Iterator[SpilloverServe]:
    """A ready ``spillover serve`` for the length of the block, stopped with SIGTERM after."""
    process = SpilloverServe(ray_cluster["address"], port, config, workdir)
    try:
        process.wait_ready()
        yield process
    finally:
        process.terminate()
