"""The Ray Serve application: spillover's ingress in front of one engine deployment per model.

``build_app`` is the import path in the Serve config that ``spillover serve`` deploys and that
``--print-serve-config`` prints (the k8s issue embeds the same in a RayService): what runs
locally and in a cluster is built by the same function from the same config.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.llm import build_llm_deployment

from contracts.deployments import llm_deployment_name
from serving.embeddings import EmbeddingServer, embedding_deployment_name
from serving.llm_deployment import ENGINE_ENV, SpilloverLLMServer, llm_config_for
from serving.logs import configure_logging
from serving.ray_engines import ServeEngines
from serving.state_board import EngineStateReader
from spillover.app import create_app
from spillover.config import parse_config

__all__ = ["INGRESS_NAME", "build_app"]

INGRESS_NAME = "ingress"


@serve.deployment(name=INGRESS_NAME)
@serve.ingress()
class Ingress:
    """Serve wrapper around :func:`spillover.app.create_app`; the app gets the engine handles."""

    async def __init__(
        self,
        config: dict[str, Any],
        engines: dict[str, DeploymentHandle],
        embedders: dict[str, DeploymentHandle],
    ) -> None:
        configure_logging()
        parsed = parse_config(config)
        app_name = serve.get_replica_context().app_name
        self._reader = EngineStateReader(app_name, {m.name: llm_deployment_name(m.name) for m in parsed.models})
        self._reader.start()
        self._app = create_app(parsed, ServeEngines(engines, embedders, self._reader), keys_and_costs=True, echo_request_id=False)

    async def __serve_build_asgi_app__(self) -> Any:
        return self._app

    async def __del__(self) -> None:
        await self._reader.stop()


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve's application builder: ``args`` is spillover's config as a mapping."""
    config = parse_config(args, origin="serve application args")
    engines = {
        model.name: build_llm_deployment(
            llm_config_for(model, config.ingress),
            deployment_cls=SpilloverLLMServer,
            override_serve_options={"name": llm_deployment_name(model.name)},
        )
        for model in config.models
    }
    embedders = {
        model.name: serve.deployment(EmbeddingServer)
        .options(
            name=embedding_deployment_name(model),
            num_replicas=model.num_replicas,
            max_ongoing_requests=max(64, model.max_batch_size * 4),
            ray_actor_options={"num_cpus": model.cpus_per_replica, "runtime_env": {"env_vars": ENGINE_ENV}},
        )
        .bind(model.model_dump(mode="json"))
        for model in config.embeddings
    }
    ingress = config.ingress
    return Ingress.options(
        num_replicas=ingress.num_replicas,
        max_ongoing_requests=ingress.max_ongoing_requests,
        graceful_shutdown_timeout_s=ingress.graceful_shutdown_timeout_s,
        ray_actor_options={"num_cpus": ingress.num_cpus},
    ).bind(config.model_dump(mode="json"), engines, embedders)

