"""GPU state through NVML, read per GPU and exported under DCGM's metric names.

For GPU nodes without NVIDIA's dcgm-exporter: it imports only ``nvidia-ml-py`` and
``prometheus-client``, so it runs in a small sidecar image. Names and units follow
dcgm-exporter (``DCGM_FI_DEV_GPU_UTIL`` in %, ``DCGM_FI_DEV_FB_USED``/``FREE`` in MiB,
``DCGM_FI_DEV_POWER_USAGE`` in W, ``DCGM_FI_DEV_GPU_TEMP`` in °C), so dashboards and alerts
work with either. Where no NVIDIA driver exists, :func:`read_gpus` reports no GPUs and the
exporter says so and exits 0.

Memory "used" here is NVML's, which counts memory the driver reserves; ``nvidia-smi`` leaves
that out (615 MiB vs 0 MiB on an idle H200), so the two differ by a constant per GPU.

    python -m autoscaler.gpu_exporter [--port 9400] [--interval-s 5]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GpuReading", "NvmlCollector", "read_gpus", "main"]


@dataclass(frozen=True)
class GpuReading:
    index: int
    uuid: str
    name: str
    utilisation_pct: float
    memory_used_mib: float
    memory_free_mib: float
    temperature_c: float
    power_w: float


def read_gpus() -> list[GpuReading]:
    """Every GPU's state now; an empty list where there is no NVIDIA driver or library."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        return [_read_one(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def _read_one(pynvml, index: int) -> GpuReading:  # type: ignore[no-untyped-def]  # the module
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    name = pynvml.nvmlDeviceGetName(handle)
    uuid = pynvml.nvmlDeviceGetUUID(handle)
    return GpuReading(
        index=index,
        uuid=uuid.decode() if isinstance(uuid, bytes) else uuid,
        name=name.decode() if isinstance(name, bytes) else name,
        utilisation_pct=float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        memory_used_mib=memory.used / 2**20,
        memory_free_mib=memory.free / 2**20,
        temperature_c=float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
        power_w=pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
    )


_METRICS = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilisation (in %).", "utilisation_pct"),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB), as NVML counts it.", "memory_used_mib"),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "memory_free_mib"),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temperature_c"),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_w"),
)


class NvmlCollector(Collector):
    """Reads NVML at scrape time, so a scrape always sees the present."""

    def __init__(self, hostname: str | None = None) -> None:
        self._hostname = hostname or socket.gethostname()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        readings = read_gpus()
        for name, help_text, field in _METRICS:
            family = GaugeMetricFamily(name, help_text, labels=["gpu", "UUID", "modelName", "Hostname"])
            for r in readings:
                family.add_metric([str(r.index), r.uuid, r.name, self._hostname], getattr(r, field))
            yield family


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9400, help="dcgm-exporter's port")
    parser.add_argument("--interval-s", type=float, default=5.0, help="how often to check the GPUs are still there")
    args = parser.parse_args(argv)
    gpus = read_gpus()
    if not gpus:
        print("gpu-exporter: no NVIDIA GPU or driver here; nothing to export", flush=True)
        return 0
    REGISTRY.register(NvmlCollector())
    start_http_server(args.port)
    print(f"gpu-exporter: {len(gpus)} GPU(s) ({gpus[0].name}) on :{args.port}/metrics", flush=True)
    while read_gpus():
        time.sleep(args.interval_s)
    print("gpu-exporter: GPUs gone; exiting", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
