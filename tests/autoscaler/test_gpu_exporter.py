"""The NVML exporter on a machine without NVIDIA drivers (the GPU path runs on a GPU machine)."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest

from autoscaler.gpu_exporter import NvmlCollector, read_gpus


def test_no_driver_means_no_gpus_and_a_clean_exit() -> None:
    assert read_gpus() == []
    run = subprocess.run([sys.executable, "-m", "autoscaler.gpu_exporter", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "no NVIDIA GPU" in run.stdout


def test_the_exporter_imports_only_nvml_and_prometheus_client() -> None:
    code = ("import sys, autoscaler.gpu_exporter; heavy = {'ray', 'vllm', 'torch', 'fastapi', 'serving', 'fallback'};"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_families_keep_dcgm_names_with_no_samples() -> None:
    registry = CollectorRegistry()
    registry.register(NvmlCollector(hostname="h"))
    text = generate_latest(registry).decode()
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE"):
        assert f"# TYPE {name} gauge" in text
