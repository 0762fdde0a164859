"""What a cluster does with the autoscaler's RayService edit, done here on a real Serve.

KubeRay hands ``serveConfigV2`` to Serve's config API (the dashboard's ``PUT
/api/serve/applications/``, which calls ``deploy_apps`` on the controller); this test calls the
same with the config ``spillover k8s render`` embeds, then with the count the RayService actuator
writes (``autoscaler.rayservice.with_replicas``), up to two replicas and back. It checks that the
rendered config deploys and answers, and that a count edit is a light update: the replica that
was serving stays, only the count moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from autoscaler.rayservice import with_replicas
from contracts.deployments import APP_NAME, llm_deployment_name
from serving.state_board import reset_board
from spillover.config import DEFAULT_MODEL_NAME, SpilloverConfig
from spillover.serve_config import serve_config
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e
DEPLOYMENT = llm_deployment_name(DEFAULT_MODEL_NAME)


@pytest.fixture(scope="module")
def serve_client(ray_cluster: dict[str, str]) -> Iterator[object]:
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    ray.init(address=ray_cluster["address"], log_to_driver=False)
    try:
        yield _get_global_client()
    finally:
        serve.delete(APP_NAME)
        reset_board(APP_NAME)
        ray.shutdown()


def rendered(serve_port: int, workdir: Path) -> str:
    """The serveConfigV2 text of a small local config, as ``spillover k8s render`` writes it."""
    config = SpilloverConfig.model_validate({
        "server": {"host": "127.0.0.1", "port": serve_port},
        "models": [{"name": DEFAULT_MODEL_NAME, "source": f"builtin:{DEFAULT_MODEL_NAME}", "replicas": {"min": 1, "max": 2},
                    "engine_kwargs": {"max_num_seqs": 4}}],
        "embeddings": [],
        "stores": {"sqlite_path": str(workdir / "spillover.db"), "spool_dir": str(workdir / "spool")},
        "auth": {"secret_file": str(workdir / "key-secret")},
        "cache": {"enabled": False},
    })
    return yaml.safe_dump(serve_config(config), sort_keys=False)


def deploy(client: object, text: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    client.deploy_apps(ServeDeploySchema.parse_obj(yaml.safe_load(text)))  # type: ignore[attr-defined]


def engine_replicas(running: int) -> set[str] | None:
    """The engine replicas' actor names once exactly ``running`` run and none start or stop."""
    import ray
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    deployment = app.deployments.get(DEPLOYMENT) if app else None
    if deployment is None or dict(deployment.replica_states) != {"RUNNING": running}:
        return None
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"#{DEPLOYMENT}#" in a["name"]}
    return names if len(names) == running else None


def settled(running: int, what: str, timeout_s: float) -> set[str]:
    seen: list[set[str]] = []
    wait_for(lambda: bool(seen.append(engine_replicas(running)) or seen[-1]), timeout_s=timeout_s, what=what, period_s=1)
    return seen[-1]


def answer(serve_port: int) -> str:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{serve_port}/v1", api_key="unused", max_retries=0, timeout=120)
    reply = client.chat.completions.create(model=DEFAULT_MODEL_NAME, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4)
    return reply.choices[0].message.content or ""


def test_a_count_edit_of_the_rendered_config_is_a_light_update(serve_client: object, serve_port: int, tmp_path: Path) -> None:
    text = rendered(serve_port, tmp_path)
    deploy(serve_client, with_replicas(text, APP_NAME, DEPLOYMENT, 1))
    one = settled(1, "one engine replica from the config", 300)
    assert answer(serve_port)

    deploy(serve_client, with_replicas(text, APP_NAME, DEPLOYMENT, 2))
    two = settled(2, "a second engine replica", 300)
    assert one < two, "the serving replica was replaced, not kept"
    assert answer(serve_port)

    deploy(serve_client, with_replicas(text, APP_NAME, DEPLOYMENT, 1))
    back = settled(1, "back to one engine replica", 180)
    assert back < two
    assert answer(serve_port)
