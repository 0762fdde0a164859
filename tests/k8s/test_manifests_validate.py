"""Every kustomization under k8s/ renders with kubectl, and every object it renders is valid:
built-in kinds against Kubernetes' OpenAPI schemas (strict: unknown fields fail), custom
resources against their CRDs."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.k8s import crd_schema
from tests.k8s.manifests import COMPONENTS, KUSTOMIZATIONS, OVERLAYS, REPO, Obj, build, build_with, one

#: The Kubernetes minor the schemas are for: the oldest the manifests promise to support.
KUBERNETES_VERSION = "1.32"
IDS = [str(p.relative_to(REPO)) for p in KUSTOMIZATIONS]


def test_there_are_overlays_to_apply() -> None:
    assert {p.name for p in OVERLAYS} >= {"llama3-70b-a100", "llama3-70b-a100-tp4"}


def _problems(objects: tuple[Obj, ...]) -> list[str]:
    problems = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in crd_schema.CRD_FILES:
            problems += [f"{name}: {e}" for e in crd_schema.errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return problems


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_renders_and_every_object_validates(directory: Path) -> None:
    objects = build(directory)
    assert objects
    problems = _problems(objects)
    assert not problems, "\n".join(problems)


def _used_by_overlays() -> set[Path]:
    return {(o / c).resolve() for o in OVERLAYS for c in yaml.safe_load((o / "kustomization.yaml").read_text()).get("components", [])}


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c.resolve() not in _used_by_overlays()], ids=lambda c: c.name)
def test_optional_components_render_and_validate_on_an_overlay(component: Path, tmp_path: Path) -> None:
    objects = build_with(tmp_path, OVERLAYS[0], component)
    problems = _problems(objects)
    assert not problems, "\n".join(problems)


def test_the_tls_ingress_reaches_the_ingress_service(tmp_path: Path) -> None:
    objects = build_with(tmp_path, OVERLAYS[0], REPO / "k8s" / "components" / "ingress-tls")
    ingress = one(objects, "Ingress", "spillover")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    serve_service = one(objects, "RayService")["spec"]["serveService"]
    assert backend["name"] == serve_service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in serve_service["spec"]["ports"]}
    assert ingress["spec"]["tls"][0]["secretName"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_every_object_is_namespaced_to_spillover(directory: Path) -> None:
    for obj in build(directory):
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "spillover", f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_validators_reject_a_misspelt_field() -> None:
    """The strictness the checks above rely on: an unknown field fails, in both validators."""
    rayservice = dict(next(o for o in build(OVERLAYS[0]) if o["kind"] == "RayService"))
    rayservice["spec"] = {**rayservice["spec"], "upgradeStrategyy": {"type": "NewCluster"}}
    assert any("upgradeStrategyy" in e for e in crd_schema.errors(rayservice))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selectr": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
