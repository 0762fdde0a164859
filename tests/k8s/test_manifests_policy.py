"""What the rendered overlays must hold beyond schema validity: references that resolve,
requests and limits, probes, placeholder-only secrets, an autoscaler with no Kubernetes
permissions, and shutdown timings consistent with Serve's graceful shutdown."""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path

import pytest
import yaml

from spillover.config import load_config
from tests.k8s.manifests import OVERLAYS, Obj, build, containers, one, pod_specs

IDS = [p.name for p in OVERLAYS]
PLACEHOLDER = "replace-me"
#: libpq settings that are not secret (the password is).
NOT_SECRET = {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE"}


def _names(objects: tuple[Obj, ...], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == kind}


def _references(pod: Obj) -> list[tuple[str, str, bool]]:
    """(kind, name, optional) of every Secret, ConfigMap and claim a pod spec names."""
    refs = []
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in source:
                    refs.append((kind, source[key]["name"], source[key].get("optional", False)))
        for env in container.get("env", []):
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = (env.get("valueFrom") or {}).get(key)
                if ref:
                    refs.append((kind, ref["name"], ref.get("optional", False)))
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            refs.append(("ConfigMap", volume["configMap"]["name"], volume["configMap"].get("optional", False)))
        if "secret" in volume:
            refs.append(("Secret", volume["secret"]["secretName"], volume["secret"].get("optional", False)))
        if "persistentVolumeClaim" in volume:
            refs.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], False))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_every_reference_resolves(overlay: Path) -> None:
    objects = build(overlay)
    for obj in objects:
        for where, pod in pod_specs(obj):
            for kind, name, optional in _references(pod):
                assert optional or name in _names(objects, kind), f"{obj['kind']} {where}: no {kind} {name}"
            if "serviceAccountName" in pod:
                assert pod["serviceAccountName"] in _names(objects, "ServiceAccount"), where


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_every_container_has_requests_limits_and_a_pinned_image(overlay: Path) -> None:
    for obj in build(overlay):
        for where, container in containers(obj):
            resources = container.get("resources", {})
            for side in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(side, {})), f"{where}: {side}"
            gpus = resources["limits"].get("nvidia.com/gpu")
            assert gpus == resources["requests"].get("nvidia.com/gpu"), f"{where}: GPUs are requested as they are limited"
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", container["image"]), f"{where}: image {container['image']} has no tag"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_long_running_containers_have_probes(overlay: Path) -> None:
    """Ray's containers get KubeRay's probes (raylet, GCS and Serve proxy health) injected."""
    for obj in build(overlay):
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            for where, container in containers(obj):
                assert "readinessProbe" in container and "livenessProbe" in container, where


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_secrets_hold_placeholders_only(overlay: Path) -> None:
    secrets = [o for o in build(overlay) if o["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        for key, encoded in secret["data"].items():
            if key not in NOT_SECRET:
                assert base64.b64decode(encoded).decode() == PLACEHOLDER, f"{secret['metadata']['name']}: {key}"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_the_autoscaler_may_get_and_patch_its_rayservice_and_nothing_else(overlay: Path) -> None:
    """It writes counts into the RayService (autoscaler/rayservice.py) named in its config, and
    reads replica states over Ray Client from that RayService's head Service."""
    objects = build(overlay)
    rayservice = one(objects, "RayService")["metadata"]["name"]
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    [role] = [o for o in objects if o["kind"] == "Role"]
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayservices"], "resourceNames": [rayservice], "verbs": ["get", "patch"]}]
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "spillover-autoscaler", "namespace": one(objects, "Namespace")["metadata"]["name"]}]
    pod = one(objects, "Deployment", "spillover-autoscaler")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "spillover-autoscaler" and pod.get("automountServiceAccountToken", True)
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["RAY_ADDRESS"] == f"ray://{rayservice}-head-svc:10001"  # KubeRay's head Service of a RayService
    settings = yaml.safe_load((overlay / "spillover.yaml").read_text())["autoscaler"]
    assert settings["rayservice"] == rayservice


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_shutdown_timings_let_streams_finish(overlay: Path) -> None:
    """A GPU pod's preStop drains its node for at least Serve's graceful shutdown, the grace
    period covers the drain and Ray's exit, and an upgrade keeps the old cluster for the
    longest request."""
    config = load_config(overlay / "spillover.yaml", env={})
    spec = one(build(overlay), "RayService")["spec"]
    graceful_s = config.ingress.graceful_shutdown_timeout_s
    for group in spec["rayClusterConfig"]["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        command = " ".join(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"])
        words = shlex.split(command.split("-c", 1)[1])
        deadline_s = int(words[words.index("--deadline-remaining-seconds") + 1])
        sleep_s = int(words[words.index("sleep") + 1])
        assert "drain-node" in words and deadline_s >= graceful_s and sleep_s >= graceful_s
        assert pod["terminationGracePeriodSeconds"] >= sleep_s + 30
    assert spec["rayClusterDeletionDelaySeconds"] >= config.server.request_timeout_s
    assert spec["upgradeStrategy"]["type"] == "NewCluster"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_gpus_only_on_the_worker_group_that_asks_for_them(overlay: Path) -> None:
    config = load_config(overlay / "spillover.yaml", env={})
    cluster = one(build(overlay), "RayService")["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in head["containers"][0]["resources"]["limits"]
    (group,) = cluster["workerGroupSpecs"]
    pod = group["template"]["spec"]
    gpus = int(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    (model,) = config.models
    assert gpus == model.gpus_per_replica, "one engine replica per pod"
    assert group["maxReplicas"] == model.replicas.max
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert f'"accelerator_type:{model.accelerator}": {gpus}' in group["rayStartParams"]["resources"].replace("\\", "")


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_disruption_budgets_select_pods_that_exist(overlay: Path) -> None:
    objects = build(overlay)
    labels = [pod_labels for obj in objects for pod_labels in _template_labels(obj)]
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        wanted = pdb["spec"]["selector"]["matchLabels"].items()
        assert any(wanted <= found.items() for found in labels), pdb["metadata"]["name"]


def _template_labels(obj: Obj) -> list[dict[str, str]]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "RayService":
        cluster = spec["rayClusterConfig"]
        groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
        return [g["template"]["metadata"]["labels"] for g in groups]
    if "template" in spec:
        return [(spec["template"].get("metadata") or {}).get("labels", {})]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_serve_listens_where_the_services_point(overlay: Path) -> None:
    """Serve's proxy binds the pod's address (not loopback) on the port the ingress Service,
    the containers and the scrape config name `serve`."""
    config = load_config(overlay / "spillover.yaml", env={})
    assert config.server.host == "0.0.0.0"
    objects = build(overlay)
    spec = one(objects, "RayService")["spec"]
    assert {p["name"]: p["port"] for p in spec["serveService"]["spec"]["ports"]} == {"serve": config.server.port}
    for _, container in containers(one(objects, "RayService")):
        assert {"name": "serve", "containerPort": config.server.port} in container["ports"]
