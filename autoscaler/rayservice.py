"""Scale a model in a cluster by editing the RayService that deploys it.

In a cluster the RayService's ``serveConfigV2`` is what KubeRay applies to Serve, again after a
head restart and at every upgrade. A count set only through Serve's controller would be undone by
the next such apply, so :class:`RayServiceActuator` writes the count into the RayService itself: a
``deployments`` override of the model's engine deployment (``num_replicas``), which Serve applies
as a light update (replicas already running stay; only the count moves), and KubeRay's Ray
autoscaler adds or removes the GPU pods. Replica states and the drain mark for scaling to zero
still come from :class:`autoscaler.actuator.ServeActuator` over Ray Client, which this extends.

The Kubernetes API is reached in-cluster (the pod's service-account token, re-read each call as
projected tokens rotate); the RBAC in ``k8s/base/autoscaler.yaml`` allows ``get`` and ``patch`` on
this one RayService and nothing else. Each write is a merge patch carrying the ``resourceVersion``
it was computed from, so a concurrent edit (an operator's ``kubectl apply``) is never overwritten:
the API answers 409 and the patch is recomputed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import yaml

from autoscaler.actuator import ServeActuator
from contracts.deployments import APP_NAME, llm_deployment_name

__all__ = ["KubeApi", "RayServiceActuator", "with_replicas"]

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_CONFLICT_RETRIES = 5


def with_replicas(serve_config_v2: str, app_name: str, deployment: str, replicas: int) -> str:
    """``serve_config_v2`` with ``deployment`` of ``app_name`` set to ``replicas``; all else kept.

    Raises :class:`LookupError` when the application is not in the config: scaling a model the
    RayService does not deploy is a configuration error, not something to add silently.
    """
    if replicas < 0:
        raise ValueError("replicas must be >= 0")
    config = yaml.safe_load(serve_config_v2) or {}
    app = next((a for a in config.get("applications") or [] if a.get("name") == app_name), None)
    if app is None:
        raise LookupError(f"the RayService's serveConfigV2 has no application {app_name!r}")
    overrides: list[dict[str, Any]] = app.setdefault("deployments", [])
    entry = next((d for d in overrides if d.get("name") == deployment), None)
    if entry is None:
        entry = {"name": deployment}
        overrides.append(entry)
    entry["num_replicas"] = replicas
    return yaml.safe_dump(config, sort_keys=False)


class KubeApi:
    """The few calls the actuator makes, in-cluster, with the pod's service account."""

    def __init__(self, *, host: str, port: str, account: Path = SERVICE_ACCOUNT, timeout_s: float = 10.0) -> None:
        self._account = account
        self._client = httpx.AsyncClient(base_url=f"https://{host}:{port}", verify=str(account / "ca.crt"), timeout=timeout_s)

    @classmethod
    def in_cluster(cls) -> KubeApi:
        import os

        return cls(host=os.environ["KUBERNETES_SERVICE_HOST"], port=os.environ.get("KUBERNETES_SERVICE_PORT", "443"))

    def own_namespace(self) -> str:
        return (self._account / "namespace").read_text().strip()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {(self._account / 'token').read_text().strip()}"}

    async def get(self, path: str) -> dict[str, Any]:
        response = await self._client.get(path, headers=self._headers())
        response.raise_for_status()
        return response.json()

    async def merge_patch(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """The response as it came: the caller decides what a 409 means."""
        headers = self._headers() | {"Content-Type": "application/merge-patch+json"}
        return await self._client.patch(path, json=body, headers=headers)


class RayServiceActuator(ServeActuator):
    """:class:`ServeActuator` whose counts are written into the RayService ``name``."""

    def __init__(self, name: str, namespace: str, api: KubeApi, app_name: str = APP_NAME, **kwargs: Any) -> None:
        super().__init__(app_name, **kwargs)
        self._api = api
        self._path = f"/apis/ray.io/v1/namespaces/{namespace}/rayservices/{name}"

    async def _update(self, model: str, replicas: int) -> None:
        deployment = llm_deployment_name(model)
        for _ in range(_CONFLICT_RETRIES):
            current = await self._api.get(self._path)
            config = with_replicas(current["spec"]["serveConfigV2"], self._app_name, deployment, replicas)
            body = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"serveConfigV2": config}}
            response = await self._api.merge_patch(self._path, body)
            if response.status_code != httpx.codes.CONFLICT:
                response.raise_for_status()
                logger.info("patched %s: %s to %d replicas", self._path, deployment, replicas)
                return
        raise RuntimeError(f"{self._path} kept changing under {_CONFLICT_RETRIES} patches; will retry next tick")
