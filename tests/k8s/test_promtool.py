"""``promtool check rules`` and ``promtool test rules`` on every PrometheusRule under k8s/;
every alert has unit tests in which it both fires and stays silent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import K8S, rule_files, rule_groups, tool
from tests.k8s.promtool import promtool, unit_tests_of

RULE_FILES = rule_files()
IDS = [str(p.relative_to(K8S)) for p in RULE_FILES]


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=IDS)
def test_promtool_checks_and_unit_tests_pass(rule_file: Path, tmp_path: Path) -> None:
    check = promtool(tmp_path, rule_file, "check", "rules", rule_file.name)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = unit_tests_of(rule_file)
    assert tests, f"{rule_file.name} has no unit tests"
    test = promtool(tmp_path, rule_file, "test", "rules", *(t.name for t in tests))
    assert test.returncode == 0, test.stdout + test.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=IDS)
def test_every_alert_is_tested_firing_and_silent(rule_file: Path) -> None:
    alerts = {r["alert"] for g in rule_groups(rule_file) for r in g["rules"] if "alert" in r}
    if not alerts:
        return
    fired: set[str] = set()
    silent: set[str] = set()
    cases = [case for tests in unit_tests_of(rule_file) for case in yaml.safe_load(tests.read_text())["tests"]]
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert not alerts - fired, f"never tested firing: {sorted(alerts - fired)}"
    assert not alerts - silent, f"never tested silent: {sorted(alerts - silent)}"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=IDS)
def test_every_alert_states_its_window_and_severity(rule_file: Path) -> None:
    for group in rule_groups(rule_file):
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule.get("for"), f"{rule['alert']}: no `for` window"
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]


def test_a_failing_unit_test_fails(tmp_path: Path) -> None:
    """The harness can fail: promtool exits non-zero when an expected sample is wrong."""
    rule_file = K8S / "base" / "monitoring" / "vllm-names.rules.yaml"
    broken = tmp_path / "broken"
    broken.mkdir()
    promtool(broken, rule_file, "--version")  # lays out the rule file and its tests
    tests = broken / unit_tests_of(rule_file)[0].name
    tests.write_text(tests.read_text().replace("value: 7", "value: 8"))
    result = subprocess.run([tool("promtool"), "test", "rules", tests.name], cwd=broken, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
