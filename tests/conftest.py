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
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from stores.sql import database_url
from tests.helpers import free_port, terminate_tree, wait_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One local Ray head for the whole session: its address and metrics-export port."""
    gcs_port, metrics_port = free_port(), free_port()
    # A throwaway loopback cluster: token auth off on both sides (see SpilloverServe).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    # --block: the head stays this process's child, and stopping it stops exactly the cluster it
    # started (a machine-wide forced stop would end other people's Ray processes too).
    head = subprocess.Popen(
        [
            str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs_port}", "--num-cpus=8",
            "--include-dashboard=false", "--disable-usage-stats", f"--metrics-export-port={metrics_port}",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # Ray registers the node under its interface address; a driver must dial that, not loopback.
    from ray.util import get_node_ip_address

    address = f"{get_node_ip_address()}:{gcs_port}"
    try:
        wait_for(lambda: _ray_head_up(address, env) or head.poll() is not None, timeout_s=120, what="ray head")
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {head.returncode}")
        yield {"address": address, "metrics_port": str(metrics_port)}
    finally:
        terminate_tree(head, 60)
        _forget_cluster(address)


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


def _forget_cluster(address: str) -> None:
    """Remove Ray's record of the current cluster if it is the one this session stopped (as
    `ray stop` does): a later `ray.init()` on this machine would try to join the dead cluster."""
    from ray._common.utils import get_ray_address_file

    record = Path(get_ray_address_file(None))
    if record.exists() and record.read_text().strip() == address:
        record.unlink(missing_ok=True)


def _ray_head_up(address: str, env: dict[str, str]) -> bool:
    status = subprocess.run([str(BIN / "ray"), "status", f"--address={address}"], env=env, capture_output=True, check=False)
    return status.returncode == 0


def _redis_ping(url: str) -> bool:
    import redis

    return bool(redis.Redis.from_url(url).ping())


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield database_url(None, str(tmp_path / "ledger.db"))
        return
    base = database_url(request.getfixturevalue("postgres_dsn"), "")
    schema = f"spillover_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
