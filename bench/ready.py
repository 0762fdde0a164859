"""Time to ready and peak memory: ``spillover serve`` (cold and warm) beside Ray Serve LLM's own app.

Setups, alternated (spillover, ray_serve_llm, ...):
* ``spillover`` cold: an empty model cache, so the GGUF is converted first; then warm starts.
* ``ray_serve_llm``: Ray Serve LLM's ``build_openai_app`` with the same ``LLMConfig``
  (the peer: what spillover adds on top of it).
Ready = ``GET /v1/models`` lists the model and one chat completion answers. Memory = peak RSS
summed over the process tree (Ray's GCS, raylet, workers, the engine), sampled every 0.5 s.

    python bench/ready.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import RAY_SERVE_LLM_PEER, add_provenance_arguments, median, record, refuse_dirty_tree, table, terminate  # noqa: E402

PORT = 8000
MODEL = "smollm2-135m-instruct"


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                continue
            self.peak_mb = max(self.peak_mb, rss / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def _ready() -> bool:
    try:
        models = httpx.get(f"http://127.0.0.1:{PORT}/v1/models", timeout=2).json()
        if MODEL not in [m["id"] for m in models.get("data", [])]:
            return False
        r = httpx.post(
            f"http://127.0.0.1:{PORT}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=60,
        )
        return r.status_code == 200
    except (httpx.HTTPError, ValueError):
        return False


def run_once(setup: str, cache_dir: str) -> tuple[float, float]:
    env = {**os.environ, "SPILLOVER_CACHE_DIR": cache_dir, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "spillover.cli", "serve"] if setup == "spillover" else [sys.executable, "-c", RAY_SERVE_LLM_PEER, str(PORT)]
    started = time.monotonic()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    memory = PeakRss(process.pid)
    try:
        while not _ready():
            if process.poll() is not None:
                raise RuntimeError(f"{setup} exited with {process.returncode}")
            if time.monotonic() - started > 600:
                raise TimeoutError(f"{setup} not ready in 600 s")
            time.sleep(0.5)
        ready_s = time.monotonic() - started
        time.sleep(2)  # let the sampler see the settled footprint
    finally:
        terminate(process, 180)
        peak = memory.stop()
    return ready_s, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    refuse_dirty_tree(args.allow_dirty)
    results: dict[str, list[tuple[float, float]]] = {"spillover_cold": [], "spillover_warm": [], "ray_serve_llm_warm": []}
    with tempfile.TemporaryDirectory() as cold_cache:
        results["spillover_cold"].append(run_once("spillover", cold_cache))
        for _ in range(args.rounds):
            results["ray_serve_llm_warm"].append(run_once("ray_serve_llm", cold_cache))
            results["spillover_warm"].append(run_once("spillover", cold_cache))
    rows = [
        (name, len(runs), median([r for r, _ in runs]), median([m for _, m in runs]))
        for name, runs in results.items()
    ]
    text = table(["setup", "runs", "ready_s (median)", "peak_memory_mb (median)"], rows)
    print(text)
    warm_ready = median([r for r, _ in results["spillover_warm"]])
    peer_ready = median([r for r, _ in results["ray_serve_llm_warm"]])
    figures = {
        "ready_cold_s": round(median([r for r, _ in results["spillover_cold"]]), 1),
        "ready_warm_s": round(warm_ready, 1),
        "peak_memory_mb": round(max(m for runs in (results["spillover_cold"], results["spillover_warm"]) for _, m in runs)),
        "ray_serve_llm_ready_warm_s": round(peer_ready, 1),
    }
    note = (
        f"Ready = `/v1/models` lists the model and a 4-token chat completion answers; memory = peak RSS of the "
        f"whole process tree. Cold includes the one-time GGUF conversion. Warm spillover vs Ray Serve LLM's own "
        f"app: {warm_ready / peer_ready:.2f}x the time to ready."
    )
    record("serving", "Time to ready and peak memory (spillover serve vs Ray Serve LLM)", figures, text + "\n\n" + note, allow_dirty=args.allow_dirty)


if __name__ == "__main__":
    main()
