import shutil
import subprocess
from pathlib import Path

import yaml

from serving.metrics import VLLM_RECORDED

RULES = Path(__file__).resolve().parents[2] / "k8s" / "base" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/services.sh installs Debian's prometheus package"
    return subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60)


def test_rules_record_exactly_the_documented_names() -> None:
    groups = yaml.safe_load((RULES / "vllm-names.rules.yaml").read_text())["groups"]
    recorded = {r["record"]: r["expr"] for g in groups for r in g["rules"]}
    assert recorded == VLLM_RECORDED


def test_promtool_checks_and_unit_tests_pass() -> None:
    check = _promtool("check", "rules", "vllm-names.rules.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
    test = _promtool("test", "rules", "vllm-names.rules.test.yaml")
    assert test.returncode == 0, test.stdout + test.stderr
