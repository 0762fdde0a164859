"""Shared test harness.

Unit tests run in seconds with no servers. End-to-end tests (``-m e2e``) share one Ray
cluster per test session (``ray start --head`` on free ports); each module deploys the
configuration it needs onto it with ``spillover serve``, and at most three vLLM engines are
alive at once. Redis and PostgreSQL come from ``scripts/services.sh``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One local Ray head for the whole session: its address and metrics-export port."""
    gcs_port, metrics_port = free_port(), free_port()
    # A throwaway loopback cluster: token auth off on both sides (see SpilloverServe).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    subprocess.run(
        [
            str(BIN / "ray"), "start", "--head", f"--port={gcs_port}", "--num-cpus=8",
            "--include-dashboard=false", "--disable-usage-stats", f"--metrics-export-port={metrics_port}",
        ],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    # Ray registers the node under its interface address; a driver must dial that, not loopback.
    from ray.util import get_node_ip_address

    try:
        yield {"address": f"{get_node_ip_address()}:{gcs_port}", "metrics_port": str(metrics_port)}
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, stdout=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="session")
def serve_port() -> int:
    """Serve's HTTP proxy is one per cluster: every deployment of the session shares its port."""
    return free_port()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("SPILLOVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    wait_for(lambda: _redis_ping(url), timeout_s=5, what="redis")
    return url


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    return os.environ.get("SPILLOVER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _redis_ping(url: str) -> bool:
    import redis

    return bool(redis.Redis.from_url(url).ping())
