import yaml

from contracts.metric_names import VLLM_RECORDED
from tests.k8s.manifests import K8S, rule_groups


def test_rules_record_exactly_the_documented_names() -> None:
    groups = rule_groups(K8S / "base" / "monitoring" / "vllm-names.rules.yaml")
    recorded = {r["record"]: r["expr"] for g in groups for r in g["rules"]}
    assert recorded == VLLM_RECORDED


def test_every_rule_file_is_in_a_kustomization() -> None:
    """A PrometheusRule nobody applies would be checked here and missing on the cluster."""
    listed = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed |= {(kustomization.parent / r).resolve() for r in yaml.safe_load(kustomization.read_text()).get("resources", [])}
    assert {p.resolve() for p in K8S.rglob("*.rules.yaml")} <= listed
