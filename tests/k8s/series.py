"""The series names every dashboard query and rule expression reads, and where each comes from.

``k8s/observability/series.txt`` lists every name the expressions read that no recording rule
writes, each with its source: ``ingress`` (each ingress replica's ``GET /metrics``), ``ray``
(Ray's metrics-export port: vLLM's ``ray_vllm_*`` and Serve's ``ray_serve_*``), ``autoscaler``
(``spillover autoscale``'s metrics port), ``gpu-exporter`` (``DCGM_FI_DEV_*``) or
``prometheus`` (``up``, which Prometheus writes for every target). tests/k8s/test_series.py
checks the expressions against it; tests/e2e/test_series_live.py scrapes the ingress and Ray
names from a live ``spillover serve``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from tests.k8s.manifests import K8S, rule_files, rule_groups

SERIES_FILE = K8S / "observability" / "series.txt"
DASHBOARDS = sorted(K8S.rglob("dashboards/*.json"))
SOURCES = ("ingress", "ray", "autoscaler", "gpu-exporter", "prometheus")

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}
_LABEL_VALUES = re.compile(r"^\s*label_values\((.+),\s*[A-Za-z_]\w*\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels, durations aside)."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in _WORD.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 5m, 0.5
            continue
        if text[match.end():].lstrip().startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def rule_expressions() -> Iterator[tuple[str, str]]:
    for path in rule_files():
        for group in rule_groups(path):
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in board["templating"]["list"]:
            query = variable.get("query")
            if variable["type"] == "query":
                match = _LABEL_VALUES.match(query["query"] if isinstance(query, dict) else query)
                assert match, f"{path.name}: variable {variable['name']}: only label_values(expr, label) is checked"
                yield f"{path.name}: variable {variable['name']}", match.group(1)


def recorded() -> set[str]:
    return {rule["record"] for path in rule_files() for group in rule_groups(path) for rule in group["rules"] if "record" in rule}


def listed() -> dict[str, str]:
    """series.txt as name -> source."""
    series = {}
    for line in SERIES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, source = line.split()
            assert source in SOURCES, f"series.txt: {name}: unknown source {source!r}"
            assert name not in series, f"series.txt: {name} listed twice"
            series[name] = source
    return series


def listed_from(source: str) -> set[str]:
    return {name for name, where in listed().items() if where == source}


def scraped_names(exposition: str) -> set[str]:
    """Sample names in a Prometheus text exposition (``_bucket``, ``_total`` and all)."""
    return {m.group(1) for m in re.finditer(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{| )", exposition, re.MULTILINE)}
