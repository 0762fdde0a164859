"""GPU panels' data: one scrape of a Prometheus text endpoint with dcgm-exporter's names.

Either NVIDIA's dcgm-exporter or ``autoscaler.gpu_exporter`` (NVML, same names and units)
serves it; the dashboard asks only where ``monitor.gpu_metrics_url`` is set. A scrape that fails
is reported as such on the panel, never as an error of the page.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["DCGM_FIELDS", "gpu_panel"]

#: dcgm-exporter's name for each reading the panel shows.
DCGM_FIELDS = {"DCGM_FI_DEV_GPU_UTIL": "utilisation_pct", "DCGM_FI_DEV_FB_USED": "memory_used_mib",
               "DCGM_FI_DEV_FB_FREE": "memory_free_mib", "DCGM_FI_DEV_POWER_USAGE": "power_w"}


def parse_dcgm(text: str) -> list[dict[str, Any]]:
    """Per GPU (host and index), the readings found in a scrape."""
    gpus: dict[tuple[str, str], dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            field = DCGM_FIELDS.get(sample.name)
            if field is None:
                continue
            key = (sample.labels.get("Hostname", ""), sample.labels.get("gpu", ""))
            gpu = gpus.setdefault(key, {"host": key[0], "gpu": key[1], "model": sample.labels.get("modelName", "")})
            gpu[field] = sample.value
    return [gpus[k] for k in sorted(gpus)]


async def gpu_panel(client: httpx.AsyncClient, url: str | None) -> dict[str, Any]:
    if not url:
        return {"configured": False, "gpus": []}
    try:
        response = await client.get(url, timeout=3.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return {"configured": True, "error": f"scrape failed: {type(exc).__name__}", "gpus": []}
    return {"configured": True, "gpus": parse_dcgm(response.text)}
