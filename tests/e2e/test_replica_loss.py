"""Losing the local replica: killed under load, or scaled to zero on purpose.

A killed replica: requests that have not started streaming are re-dispatched to the hosted
target and succeed; streams under way end with an error event and count as ``cut``; traffic
comes back local once Serve has started a new replica. Scaling to zero (``spillover scale``)
drains first: in-flight work finishes, new requests spill with reason ``draining``, none fails.
The hosted target is vLLM's own server (``hosted_vllm``), reached directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from contracts.deployments import APP_NAME, llm_deployment_name
from spillover.config import DEFAULT_MODEL_NAME
from tests.e2e.conftest import HOSTED_KEY
from tests.helpers import BIN, SpilloverServe, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME
ASK = [{"role": "user", "content": "Tell me a long story about a lighthouse."}]
HOSTED = "hosted-openai"


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, hosted_vllm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    workdir = tmp_path_factory.mktemp("serve-loss")
    key_file = workdir / "hosted.key"
    key_file.write_text(HOSTED_KEY)
    config = {
        # Two sequences at a time, so a third request waits in the engine: "not yet streaming".
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}", "engine_kwargs": {"max_num_seqs": 2}}],
        "embeddings": [],
        "providers": [{"name": HOSTED, "kind": "openai", "base_url": hosted_vllm + "/v1", "api_key_file": str(key_file),
                       "models": {MODEL: "hosted-smollm2"}}],
        # A lax target: everything goes local while a replica is ready, so the losses are the test.
        "routes": {MODEL: {"ttft_target_s": 300, "hosted": [{"provider": HOSTED}]}},
        # Queued requests wait behind two long streams; only a dead replica should move them.
        "failover": {"local_start_timeout_s": 150, "deadline_s": 200},
    }
    with spillover_serving(ray_cluster, serve_port, config, workdir) as process:
        yield process


class Call(threading.Thread):
    """One chat completion in the background; streamed ones record their SSE events."""

    def __init__(self, base_url: str, *, stream: bool, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.url, self.stream, self.max_tokens = base_url + "/chat/completions", stream, max_tokens
        self.events: list[str] = []
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body: dict | None = None
        self.start()

    def run(self) -> None:
        body = {"model": MODEL, "messages": ASK, "max_tokens": self.max_tokens, "ignore_eos": True, "stream": self.stream}
        with httpx.stream("POST", self.url, json=body, timeout=300) as response:
            self.status, self.headers = response.status_code, dict(response.headers)
            if self.stream:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
            else:
                self.body = json.loads(response.read())

    @property
    def route(self) -> tuple[str, str]:
        return self.headers.get("x-spillover-destination", ""), self.headers.get("x-spillover-reason", "")

    def streaming(self) -> bool:
        return len(self.events) >= 2


def engine_state(spillover: SpilloverServe) -> dict:
    return httpx.get(spillover.base_url + "/engine/state", timeout=5).json()["data"][MODEL]


def ask(spillover: SpilloverServe) -> tuple[str, str]:
    call = Call(spillover.base_url, stream=False, max_tokens=4)
    call.join()
    assert call.status == 200 and call.body["choices"][0]["message"]["content"] is not None, call.body
    return call.route


def wait_local(spillover: SpilloverServe, timeout_s: float) -> None:
    wait_for(lambda: ask(spillover)[0] == "local", timeout_s=timeout_s, what="traffic back on the local replica", period_s=2)


def replica_process() -> psutil.Process:
    """The engine replica's Ray worker (its title is ``ray::ServeReplica:APP:DEPLOYMENT``)."""
    title = f"ray::ServeReplica:{APP_NAME}:{llm_deployment_name(MODEL)}"
    (process,) = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].startswith(title)]
    return process


def kill_replica() -> None:
    """SIGKILL the replica and its engine processes at once, as a lost node would."""
    process = replica_process()
    for victim in [*process.children(recursive=True), process]:
        victim.send_signal(signal.SIGKILL)


def requests_total(spillover: SpilloverServe, status: str) -> float:
    text = httpx.get(spillover.base_url.removesuffix("/v1") + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("spillover_requests_total{") and f'status="{status}"' in line)


def load(spillover: SpilloverServe) -> tuple[list[Call], list[Call]]:
    """Two streams under way and two requests queued behind them in the engine."""
    streams = [Call(spillover.base_url, stream=True, max_tokens=400) for _ in range(2)]
    wait_for(lambda: all(s.streaming() for s in streams), timeout_s=60, what="both streams under way", period_s=0.1)
    queued = [Call(spillover.base_url, stream=False, max_tokens=24) for _ in range(2)]
    wait_for(lambda: engine_state(spillover)["waiting"] >= 1, timeout_s=30, what="a request waiting in the engine", period_s=0.1)
    return streams, queued


def test_a_killed_replica_loses_only_the_streams_under_way(spillover: SpilloverServe) -> None:
    assert ask(spillover) == ("local", "local_ok")
    cut_before = requests_total(spillover, "cut")
    streams, queued = load(spillover)

    kill_replica()
    for call in streams + queued:
        call.join(240)

    for call in queued:  # not yet streaming: re-dispatched, and they succeed
        assert call.status == 200 and call.route == (HOSTED, "failover_error"), (call.status, call.route, call.body)
        assert call.body["usage"]["completion_tokens"] == 24
    for call in streams:  # under way: an error event, never a silent truncation
        assert call.route == ("local", "local_ok")
        assert "[DONE]" not in call.events and "error" in json.loads(call.events[-1]), call.events[-3:]
    assert requests_total(spillover, "cut") - cut_before == 2

    # Once the ingress has noticed (stale state is dropped within ~2 s), requests spill while
    # Serve brings a replica back (never fail); then they come home.
    wait_for(lambda: engine_state(spillover)["replicas_ready"] == 0, timeout_s=30, what="the lost replica noticed", period_s=0.2)
    destination, reason = ask(spillover)
    assert destination == HOSTED and reason in ("cold_start", "no_ready_replica", "unhealthy", "failover_error"), reason
    wait_local(spillover, timeout_s=240)


def test_scaling_to_zero_drains_first_and_fails_nothing(spillover: SpilloverServe, ray_cluster: dict[str, str]) -> None:
    wait_local(spillover, timeout_s=240)
    streams, queued = load(spillover)
    env = {**os.environ, "RAY_ADDRESS": ray_cluster["address"], "RAY_AUTH_MODE": "disabled"}
    scale_down = subprocess.Popen([str(BIN / "spillover"), "scale", MODEL, "0"], env=env, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: engine_state(spillover)["replicas_draining"] >= 1, timeout_s=30, what="the drain mark", period_s=0.1)
    assert ask(spillover) == (HOSTED, "draining")
    assert scale_down.wait(60) == 0

    for call in streams + queued:
        call.join(240)
    for call in streams:
        assert call.route == ("local", "local_ok") and call.events[-1] == "[DONE]", call.events[-3:]
    for call in queued:
        assert call.status == 200 and call.route == ("local", "local_ok") and call.body["usage"]["completion_tokens"] == 24
    wait_for(lambda: engine_state(spillover)["replicas_draining"] == 0 and not _replica_alive(), timeout_s=120,
             what="the drained replica gone", period_s=1)
    assert ask(spillover)[0] == HOSTED

    started = time.monotonic()
    subprocess.run([str(BIN / "spillover"), "scale", MODEL, "1"], env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    destination, reason = ask(spillover)
    assert destination == HOSTED and reason in ("cold_start", "no_ready_replica"), reason
    wait_local(spillover, timeout_s=300 - (time.monotonic() - started))


def _replica_alive() -> bool:
    try:
        replica_process()
    except ValueError:
        return False
    return True
