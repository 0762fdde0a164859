"""The Ray Serve config that deploys spillover: one application built by ``build_app``.

Kept apart from :mod:`spillover.application` so printing it (``spillover serve
--print-serve-config``, ``spillover k8s render``) never imports Ray Serve LLM or vLLM.
"""

from __future__ import annotations

from typing import Any

from contracts.deployments import APP_NAME
from spillover.config import SpilloverConfig

__all__ = ["IMPORT_PATH", "serve_config"]

IMPORT_PATH = "spillover.application:build_app"


def serve_config(config: SpilloverConfig) -> dict[str, Any]:
    """The Serve config (``serve deploy`` schema) that deploys ``config``."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {
            "host": config.server.host,
            "port": config.server.port,
            "request_timeout_s": config.server.request_timeout_s,
        },
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": config.model_dump(mode="json"),
                # Replica counts come from spillover's own scaler (autoscaler.actuator).
                "external_scaler_enabled": True,
                "runtime_env": {"env_vars": {"HF_HUB_OFFLINE": "1"}},
            }
        ],
    }
