"""The committed serveConfigV2 of every overlay is a fresh ``spillover k8s render`` of the
``spillover.yaml`` beside it, and the rendered RayService carries exactly that."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spillover.config import load_config
from spillover.k8s_render import rayservice_patch
from spillover.serve_config import IMPORT_PATH, serve_config
from tests.k8s.manifests import OVERLAYS, REPO, build, one

IDS = [p.name for p in OVERLAYS]


def render(config: Path) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, with an override in the environment that must not leak in."""
    env = {"PATH": "/usr/bin:/bin", "SPILLOVER__SERVER__PORT": "9999"}
    return subprocess.run([sys.executable, "-m", "spillover.cli", "k8s", "render", "--config", str(config)],
                          cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_committed_patch_equals_a_fresh_render(overlay: Path) -> None:
    result = render(overlay / "spillover.yaml")
    assert result.returncode == 0, result.stderr
    committed = (overlay / "serve-config.patch.yaml").read_text()
    assert committed == result.stdout, (
        f"{overlay.name}/serve-config.patch.yaml is stale: run "
        f"`spillover k8s render --config k8s/overlays/{overlay.name}/spillover.yaml > k8s/overlays/{overlay.name}/serve-config.patch.yaml`"
    )


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_the_rayservice_deploys_the_overlay_s_config(overlay: Path) -> None:
    objects = build(overlay)
    deployed = yaml.safe_load(one(objects, "RayService", "spillover")["spec"]["serveConfigV2"])
    config = load_config(overlay / "spillover.yaml", env={})
    assert deployed == serve_config(config)
    assert deployed["applications"][0]["import_path"] == IMPORT_PATH
    # The autoscaler reads the same file.
    configmap = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("spillover-config-"))
    assert configmap["data"]["spillover.yaml"] == (overlay / "spillover.yaml").read_text()


def test_render_is_a_patch_whose_serve_config_round_trips() -> None:
    config = load_config(None, env={})
    patch = yaml.safe_load(rayservice_patch(config, "other"))
    assert (patch["kind"], patch["metadata"]["name"]) == ("RayService", "other")
    assert yaml.safe_load(patch["spec"]["serveConfigV2"]) == serve_config(config)


def test_render_reports_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{name: m, source: x, replicas: {min: 3, max: 1}}]\n")
    result = render(bad)
    assert result.returncode == 2 and "models.0.replicas" in result.stderr and not result.stdout
