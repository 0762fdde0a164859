"""The RayService actuator's edit of serveConfigV2: the count moves, nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.rayservice import with_replicas
from contracts.deployments import APP_NAME, llm_deployment_name

OVERLAY = Path(__file__).resolve().parents[2] / "k8s" / "overlays" / "llama3-70b-a100" / "serve-config.patch.yaml"
DEPLOYMENT = llm_deployment_name("llama-3-70b")


def committed_config() -> str:
    return yaml.safe_load(OVERLAY.read_text())["spec"]["serveConfigV2"]


def test_the_count_goes_into_a_deployments_override_and_the_rest_is_kept() -> None:
    before = yaml.safe_load(committed_config())
    after = yaml.safe_load(with_replicas(committed_config(), APP_NAME, DEPLOYMENT, 3))
    [app] = after["applications"]
    assert app.pop("deployments") == [{"name": DEPLOYMENT, "num_replicas": 3}]
    assert after == before  # args, runtime_env, http options: untouched, so Serve updates in place


def test_a_second_edit_updates_the_same_entry_and_keeps_other_overrides() -> None:
    config = yaml.safe_load(committed_config())
    config["applications"][0]["deployments"] = [{"name": "ingress", "max_ongoing_requests": 7}]
    once = with_replicas(yaml.safe_dump(config), APP_NAME, DEPLOYMENT, 2)
    twice = yaml.safe_load(with_replicas(once, APP_NAME, DEPLOYMENT, 0))
    assert twice["applications"][0]["deployments"] == [
        {"name": "ingress", "max_ongoing_requests": 7}, {"name": DEPLOYMENT, "num_replicas": 0}]


def test_an_application_the_rayservice_does_not_deploy_is_an_error() -> None:
    with pytest.raises(LookupError, match="other-app"):
        with_replicas(committed_config(), "other-app", DEPLOYMENT, 1)
    with pytest.raises(ValueError):
        with_replicas(committed_config(), APP_NAME, DEPLOYMENT, -1)
