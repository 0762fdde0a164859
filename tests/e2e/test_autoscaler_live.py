"""The autoscaler live: a real Prometheus scrapes a running spillover, the loop reads PromQL and
takes the local model from 1 to 2 replicas under load and back to 1 after, failing no request.

Lag on the way: engine state reaches the ingress's gauges within ~1 s (the board), Prometheus
scrapes every 2 s, the loop ticks every 2 s; vLLM's own series through Ray's export would add
10 s more, which is why the loop reads the ingress's series.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from spillover.config import DEFAULT_MODEL_NAME
from tests.helpers import BIN, SpilloverServe, free_port, server_process, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME


@pytest.fixture(scope="module")
def prometheus(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [{"job_name": "spillover", "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}]}],
    }))
    args = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with server_process(args, workdir / "prometheus.log", url + "/-/ready", what="prometheus", timeout_s=30):
        yield url


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    config = {
        "models": [{
            "name": MODEL, "source": f"builtin:{MODEL}", "replicas": {"min": 1, "max": 2},
            "engine_kwargs": {"max_num_seqs": 4},
            # Small windows so the test runs in minutes; no hysteresis band, so a light load
            # after the burst lets the second replica go while requests still flow.
            "autoscaling": {"target_ongoing_per_replica": 2, "up_window_s": 0, "down_window_s": 20, "scale_down_below": 1.0, "cold_start_s": 60},
        }],
        "embeddings": [],
        "autoscaler": {"prometheus_url": prometheus, "tick_s": 2, "rate_window": "10s", "metrics_port": 0},
    }
    with spillover_serving(ray_cluster, serve_port, config, tmp_path_factory.mktemp("serve-autoscale")) as process:
        yield process


class Load:
    """``clients`` threads sending streamed chat completions back to back until stopped."""

    def __init__(self, base_url: str, clients: int, max_tokens: int) -> None:
        self.client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
        self.max_tokens, self.stop, self.done, self.failures = max_tokens, threading.Event(), 0, []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                chunks = list(self.client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Describe the sea."}], max_tokens=self.max_tokens,
                    stream=True, extra_body={"ignore_eos": True}))
                assert chunks and chunks[-1].choices[0].finish_reason == "length"
                self.done += 1
            except Exception as exc:  # collected: the test reports every one
                self.failures.append(repr(exc))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(300)


def ready_replicas(spillover: SpilloverServe) -> int:
    state = httpx.get(spillover.base_url + "/engine/state", timeout=5).json()["data"][MODEL]
    return state["replicas_ready"] if not state["replicas_starting"] and not state["replicas_draining"] else -1


def test_the_loop_scales_one_to_two_under_load_and_back_failing_nothing(spillover: SpilloverServe, ray_cluster: dict[str, str]) -> None:
    config_path = spillover.log_path.parent / "spillover.yaml"
    log_path = spillover.log_path.parent / "autoscaler.log"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster["address"], "RAY_AUTH_MODE": "disabled"}
    with log_path.open("w") as log:
        loop = subprocess.Popen([str(BIN / "spillover"), "autoscale", "--config", str(config_path)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        burst = Load(spillover.base_url, clients=8, max_tokens=48)
        wait_for(lambda: ready_replicas(spillover) == 2, timeout_s=240, what="a second replica", period_s=1)
        burst.finish()
        light = Load(spillover.base_url, clients=1, max_tokens=4)
        wait_for(lambda: ready_replicas(spillover) == 1, timeout_s=120, what="back to one replica", period_s=1)
        light.finish()
    finally:
        loop.terminate()
        loop.wait(30)
    assert burst.failures == [] and light.failures == []
    assert burst.done > 0 and light.done > 0
    decisions = [json.loads(line) for line in Path(log_path).read_text().splitlines() if '"autoscaler decision"' in line]
    targets = [d["target"] for d in decisions]
    assert 2 in targets and targets[-1] == 1, targets
    assert any(d["target"] == 2 and d["reason"] == "queue" for d in decisions)
