"""Run Debian's promtool on the PrometheusRule objects under k8s/.

promtool reads plain rule files (``groups:`` at the top), so each PrometheusRule's spec is
written to a file of the same name in a scratch folder, beside copies of its unit tests
(``<name>.rules.test*.yaml``, whose ``rule_files`` name the rule file by its base name; more
than one where tests need different evaluation intervals).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.k8s.manifests import rule_groups, tool


def unit_tests_of(rule_file: Path) -> list[Path]:
    return sorted(rule_file.parent.glob(rule_file.name.removesuffix(".yaml") + ".test*.yaml"))


def promtool(scratch: Path, rule_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` in ``scratch``, which holds ``rule_file`` as a plain rule file and its unit tests."""
    (scratch / rule_file.name).write_text(yaml.safe_dump({"groups": rule_groups(rule_file)}, sort_keys=False))
    for tests in unit_tests_of(rule_file):
        shutil.copy(tests, scratch / tests.name)
    return subprocess.run([tool("promtool"), *args], cwd=scratch, capture_output=True, text=True, timeout=120)
