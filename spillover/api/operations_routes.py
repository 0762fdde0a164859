"""Operations: liveness, readiness per route, engine state, and the Prometheus scrape."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from spillover.assembly import IngressParts

__all__ = ["operations_router"]


def operations_router(ingress: IngressParts) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> Response:
        """Every route can be served: a local replica is ready, or a hosted target is healthy."""
        states = ingress.engines.all_states()
        report = {}
        for name, route in ingress.routes.items():
            state = states.get(route.local_model) if route.local_model else None
            hosted = [t.provider for t in route.hosted if t.provider in ingress.providers and ingress.breakers[t.provider].available()] \
                if route.allow_hosted else []
            report[name] = {
                "replicas_ready": state.replicas_ready if state else 0,
                "replicas_starting": state.replicas_starting if state else 0,
                "healthy_hosted": hosted,
            }
        body = {"ready": all(r["replicas_ready"] > 0 or r["healthy_hosted"] for r in report.values()), "routes": report}
        if body["ready"]:
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    @router.get("/v1/engine/state")
    async def engine_state() -> dict:
        return {"object": "engine_state", "data": {m: s.to_dict() for m, s in ingress.engines.all_states().items()}}

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(ingress.registry), media_type=CONTENT_TYPE_LATEST)

    return router
