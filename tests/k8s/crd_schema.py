"""Validate custom resources against their CustomResourceDefinition's OpenAPI schema.

The API server rejects unknown fields (``kubectl apply`` asks for strict field validation),
but a CRD's schema only lists the known ones: :func:`strict` adds ``additionalProperties:
false`` wherever a schema lists properties and does not itself allow more, so a misspelt
field fails here as it would on a cluster. CEL rules (``x-kubernetes-validations``) are not
evaluated.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "k8s_schemas"
#: kind -> CRD file (copied from ../shared/data/k8s_schemas; see tests/fixtures/README.md).
CRD_FILES = {
    "RayService": SCHEMAS / "kuberay" / "ray.io_rayservices.yaml",
    "PodMonitor": SCHEMAS / "prometheus-operator" / "monitoring.coreos.com_podmonitors.yaml",
    "ServiceMonitor": SCHEMAS / "prometheus-operator" / "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": SCHEMAS / "prometheus-operator" / "monitoring.coreos.com_prometheusrules.yaml",
}


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that JSON Schema reads as the API server would."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if k not in ("properties", "additionalProperties")}
    if "properties" in schema:
        out["properties"] = {name: strict(s) for name, s in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(schema["additionalProperties"])
    elif "additionalProperties" in schema:
        out["additionalProperties"] = schema["additionalProperties"]
    if schema.get("nullable") and "type" in schema:
        out["type"] = [schema["type"], "null"]
    return out


@functools.cache
def validator(kind: str, api_version: str) -> jsonschema.Draft4Validator:
    crd = yaml.safe_load(CRD_FILES[kind].read_text())
    group, _, version = api_version.partition("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind, (kind, api_version)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return jsonschema.Draft4Validator(strict(served["schema"]["openAPIV3Schema"]))


def errors(obj: dict[str, Any]) -> list[str]:
    """Every schema violation in ``obj``, each as ``path: message``."""
    found = validator(obj["kind"], obj["apiVersion"]).iter_errors(obj)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in found]
