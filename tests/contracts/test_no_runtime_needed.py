"""The spill-over decision, the simulator and the contracts import and run with Ray, FastAPI,
Starlette, httpx, Redis and SQLAlchemy absent: a fresh interpreter that refuses to import them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCKED = ["ray", "vllm", "fastapi", "starlette", "httpx", "redis", "sqlalchemy", "alembic", "uvicorn"]

PROBE = """
import importlib.abc, sys

BLOCKED = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Refuse())

import contracts.context, contracts.pipeline, contracts.errors, contracts.upstream, contracts.stores
import contracts.local_engines, contracts.background, contracts.tokens, contracts.metric_names, contracts.deployments
from contracts.engine_state import EngineState
from fallback.decision import DispatchRequest, Route, decide
from autoscaler import simulator, policy

decision = decide(DispatchRequest(prompt_tokens=100, max_tokens=10), EngineState("m", replicas_ready=1, prefill_tokens_per_s=1000),
                  Route("m", "m", 2.0))
assert decision.destination == "local", decision
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("ok")
"""


def test_the_decision_and_the_simulator_need_none_of_the_serving_runtime() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(BLOCKED)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
