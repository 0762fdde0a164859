"""Set how many replicas a local model runs, without losing a request on the way down.

:class:`ServeActuator` changes a model's engine deployment through Ray Serve's external scaling
API (the controller call behind Ray's ``POST /api/v1/applications/{app}/deployments/{dep}/scale``;
``spillover serve`` deploys with ``external_scaler_enabled`` so Serve's own autoscaler stays
out of the way). Serve already drains a replica it stops: no new requests, in-flight ones run
to the end, up to ``graceful_shutdown_timeout_s``. What Serve does not do is tell the ingress
that the last replica is going, so a request decided "local" in that moment would wait in
Serve's queue for a replica that is not coming. Scaling to zero therefore marks the model
draining on the engine-state board first, waits until every ingress has seen the mark (the
decision then spills with reason ``draining``), and only then lets Serve stop the replicas.
Scaling back up clears the mark once the old replicas have left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from contracts.deployments import APP_NAME, llm_deployment_name
from contracts.engine_state import PUBLISH_PERIOD_S

__all__ = ["DrainMarks", "ReplicaCounts", "ServeActuator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaCounts:
    running: int = 0
    starting: int = 0
    stopping: int = 0


class DrainMarks(Protocol):
    """Where the ingress learns that a model is draining (serving.state_board's board in a deployment)."""

    async def set_draining(self, model: str, draining: bool) -> None: ...


class ServeActuator:
    """Scales local models of one spillover application; call from a driver joined to its cluster.

    ``notice_s`` is how long a drain mark stands before Serve is told: three polls of the
    ingress's engine-state reader.
    """

    def __init__(self, drain: DrainMarks, app_name: str = APP_NAME, *, notice_s: float = 3 * PUBLISH_PERIOD_S, poll_s: float = 0.5) -> None:
        self._drain = drain
        self._app_name = app_name
        self._notice_s = notice_s
        self._poll_s = poll_s

    async def counts(self, model: str) -> ReplicaCounts:
        from ray import serve

        status = await asyncio.to_thread(serve.status)
        app = status.applications.get(self._app_name)
        deployment = app.deployments.get(llm_deployment_name(model)) if app is not None else None
        if deployment is None:
            raise LookupError(f"no local model {model!r} in Serve application {self._app_name!r}")
        states = deployment.replica_states
        return ReplicaCounts(states.get("RUNNING", 0), states.get("STARTING", 0), states.get("STOPPING", 0))

    async def set_replicas(self, model: str, replicas: int, *, settle_timeout_s: float = 600.0) -> None:
        """Ask for ``replicas`` of ``model``; to zero, drain first. Returns once Serve has the
        new target (and, leaving zero, once the old replicas are gone and the mark cleared)."""
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        await self.counts(model)  # fail early, before marking anything, on an unknown model
        if replicas == 0:
            await self._drain.set_draining(model, True)
            await asyncio.sleep(self._notice_s)
            await self._update(model, 0)
            logger.info("scaling %s to zero: marked draining, Serve stops replicas after their work", model)
            return
        await self._update(model, replicas)
        deadline = time.monotonic() + settle_timeout_s
        while (await self.counts(model)).stopping and time.monotonic() < deadline:
            await asyncio.sleep(self._poll_s)
        await self._drain.set_draining(model, False)
        logger.info("scaling %s to %d replicas", model, replicas)

    async def _update(self, model: str, replicas: int) -> None:
        import ray
        from ray.serve._private.common import DeploymentID
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        deployment = DeploymentID(name=llm_deployment_name(model), app_name=self._app_name)
        await controller.update_deployment_replicas.remote(deployment, replicas)
