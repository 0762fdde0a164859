"""Every dashboard query and rule expression names only series that exist: written by a
recording rule, or listed in k8s/observability/series.txt with the place it is scraped from.
The live check of the ingress and Ray names is tests/e2e/test_series_live.py; the autoscaler
and GPU exporter names are checked here against those exporters' own registries."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from autoscaler.gpu_exporter import NvmlCollector
from autoscaler.loop import LoopMetrics
from costbook.metrics import CostMetrics
from costlevers.cache.metrics import CacheMetrics
from costlevers.routing.metrics import RoutingMetrics
from serving.metrics import RequestMetrics
from tests.k8s.manifests import tool
from tests.k8s.series import DASHBOARDS, dashboard_expressions, listed, listed_from, metric_names, recorded, rule_expressions

EXPRESSIONS = [*rule_expressions(), *dashboard_expressions()]


def _families(registry: CollectorRegistry) -> set[str]:
    """Sample names a registry can export: a histogram's _bucket/_sum/_count, a counter's _total."""
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


def test_the_extractor_finds_names_and_nothing_else() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{model=~"$m", x="b_c"}[$__rate_interval])))'
            ' / on (model) group_left clamp_min(max by (model) (c:d:e offset 1d), 1e3) > bool 2 and up unless vector(0)')
    assert metric_names(expr) == {"a_bucket", "c:d:e", "up"}


def test_expressions_only_name_series_that_exist() -> None:
    known = set(listed()) | recorded()
    unknown = {f"{where}: {name}" for where, expr in EXPRESSIONS for name in metric_names(expr) - known}
    assert not unknown, "\n".join(sorted(unknown))


def test_series_txt_lists_only_what_is_read() -> None:
    used = {name for _, expr in EXPRESSIONS for name in metric_names(expr)}
    assert not set(listed()) - used, f"listed but read by nothing: {sorted(set(listed()) - used)}"
    assert not recorded() & set(listed()), "a recorded name is not scraped"


def test_issue_dashboards_exist() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"spillover / GPUs", "spillover / Serving", "spillover / Costs and cache"}


def test_ingress_names_are_the_ingress_s_metrics() -> None:
    registry = CollectorRegistry()  # what one ingress exports: its own series, the costs' and the cache's
    RequestMetrics(registry, engine_states=dict)
    CostMetrics(registry)
    CacheMetrics(registry)
    RoutingMetrics(registry)
    assert listed_from("ingress") <= _families(registry)


def test_autoscaler_names_are_the_loop_s_metrics() -> None:
    assert listed_from("autoscaler") <= _families(LoopMetrics().registry)


def test_gpu_exporter_names_are_the_nvml_exporter_s() -> None:
    """Its families exist without a GPU too (with no samples), so the names check here."""
    registry = CollectorRegistry()
    registry.register(NvmlCollector(hostname="test"))
    assert listed_from("gpu-exporter") <= _families(registry)


def test_prometheus_source_is_only_up() -> None:
    assert listed_from("prometheus") == {"up"}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (Grafana's variables given plain values) as a recording rule."""
    rules = []
    for i, (_, expr) in enumerate(dashboard_expressions()):
        plain = expr.replace("$__rate_interval", "5m")
        rules.append({"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", ".*", plain)})
    (tmp_path / "dashboards.rules.yaml").write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    check = subprocess.run([tool("promtool"), "check", "rules", "dashboards.rules.yaml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rules found" in check.stdout


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboards_read_the_datasource_variable(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and any(v["type"] == "datasource" for v in board["templating"]["list"])
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
