"""The Serve names the application builder gives and the autoscaler scales: one contract, so the
two never disagree on which deployment holds a model's engines."""

from __future__ import annotations

__all__ = ["APP_NAME", "llm_deployment_name"]

APP_NAME = "spillover"


def llm_deployment_name(model: str) -> str:
    """The Serve deployment of a local model's engines (what the autoscaler scales)."""
    return f"llm-{model}"
