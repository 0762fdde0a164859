"""Two cores split for the live spill-over bench: the local engine alone on one, everything else
on the other, and how busy each was.

The engine's compute thread is bound by ``VLLM_CPU_OMP_THREADS_BIND``; its engine-core process
is moved beside it once it runs (:func:`pin_engine_processes`); every other process starts on
the shared core by ``taskset`` (:func:`start`). :func:`threads_on_engine_core` reads the pinning
back from the kernel, and :class:`CoreTimeline` samples each core's busy share during a replay.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["ENGINE_CORE", "SHARED_CORE", "CoreTimeline", "busy_share", "cores_busy", "pin_engine_processes", "start",
           "threads_on_engine_core"]

ENGINE_CORE, SHARED_CORE = 0, 1


def start(core: int, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``args`` as a process on ``core`` (its children inherit it; the engine rebinds its own
    compute thread to ``ENGINE_CORE`` by ``VLLM_CPU_OMP_THREADS_BIND``)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(["taskset", "-c", str(core), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def pin_engine_processes(root: int) -> list[int]:
    """Every thread of the engine's own processes in ``root``'s tree onto the engine's core.

    Ray Serve LLM runs a CPU engine as two processes: the worker, whose compute thread
    ``VLLM_CPU_OMP_THREADS_BIND`` binds, and the engine core (scheduler), which busy-waits on the
    worker's results between steps. Left on the shared core it spins there through every step,
    one core's worth under load (measured: core 1 at 99% busy with two requests in flight, 50%
    with the engine core beside its worker, where it yields to the computing thread)."""
    pinned = []
    for pid in _tree(root):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"VLLM::EngineCore"):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    os.sched_setaffinity(int(task.name), {ENGINE_CORE})
                pinned.append(pid)
        except OSError:
            continue
    return pinned


def _tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    pids, found = [root], []
    while pids:
        pid = pids.pop()
        found.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                pids.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def cores_busy() -> dict[str, tuple[int, int]]:
    """Per core: jiffies busy and in all, from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(f) for f in fields]
            out[name] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def busy_share(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, float]:
    return {core: round((after[core][0] - before[core][0]) / max(1, after[core][1] - before[core][1]), 3) for core in before}


class CoreTimeline:
    """Each core's busy share in every ``interval_s`` while a replay runs, as ``[t_s, cpu0,
    cpu1]`` from the replay's start: a replay's average hides its bursts, when the shared core
    saturates for seconds and local starts wait on it, not on the engine."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s, self.samples = interval_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CoreTimeline:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start, before = time.monotonic(), cores_busy()
        while not self._stop.wait(self.interval_s):
            after = cores_busy()
            share = busy_share(before, after)
            self.samples.append([round(time.monotonic() - start, 2), share["cpu0"], share["cpu1"]])
            before = after


def threads_on_engine_core(root: int) -> dict[str, int]:
    """How many threads of ``root``'s process tree may run on the engine's core only, on the
    other only, or on both: the pinning as the kernel holds it, not as configured."""
    counts = {"engine_core_only": 0, "shared_core_only": 0, "both": 0}
    for pid in _tree(root):
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                status = (task / "status").read_text()
                allowed = next(line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))
                counts[{str(ENGINE_CORE): "engine_core_only", str(SHARED_CORE): "shared_core_only"}.get(allowed, "both")] += 1
        except (OSError, StopIteration):
            continue
    return counts
