"""``spillover k8s render``: the RayService's ``serveConfigV2`` from the YAML ``spillover serve`` reads.

The output is a kustomize patch for the RayService, committed beside the overlay's
``spillover.yaml``; ``tests/k8s/test_serve_config.py`` fails when it differs from a fresh
render. The Serve config inside is :func:`spillover.serve_config.serve_config`, the same one
``spillover serve --print-serve-config`` prints, so a cluster and a laptop deploy one
application from one config. Environment overrides (``SPILLOVER__*``) are not applied: the
committed file must not depend on the shell that rendered it.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from spillover.config import SpilloverConfig
from spillover.serve_config import serve_config

__all__ = ["RAYSERVICE_NAME", "add_arguments", "rayservice_patch"]

#: The RayService in k8s/base/rayservice.yaml.
RAYSERVICE_NAME = "spillover"

_HEADER = (
    "# Written by `spillover k8s render --config spillover.yaml` from the spillover.yaml beside it.\n"
    "# Do not edit: edit spillover.yaml and render again (a test fails while the two differ).\n"
)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the embedded Serve config reads as YAML."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def rayservice_patch(config: SpilloverConfig, name: str = RAYSERVICE_NAME) -> str:
    """A RayService patch setting ``spec.serveConfigV2`` to the Serve config of ``config``."""
    serve_text = yaml.safe_dump(serve_config(config), sort_keys=False)
    patch: dict[str, Any] = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {"serveConfigV2": serve_text},
    }
    return _HEADER + yaml.dump(patch, Dumper=_BlockDumper, sort_keys=False, width=1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="k8s_command", required=True)
    render = commands.add_parser("render", help="print the RayService serveConfigV2 patch for a config (no env overrides)")
    render.add_argument("--config", required=True, help="the YAML `spillover serve` reads")
    render.add_argument("--rayservice", default=RAYSERVICE_NAME, help="the RayService's metadata.name")
