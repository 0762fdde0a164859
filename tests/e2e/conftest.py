"""End-to-end fixtures: a real vLLM OpenAI server on CPU standing in for a hosted API."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.config import DEFAULT_MODEL_NAME
from stores.builtin_models import resolve_source
from tests.helpers import free_port, server_process

HOSTED_KEY = "sk-hosted-stand-in-key"


@pytest.fixture(scope="session")
def hosted_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's own server (``--api-key`` on, so key forwarding is exercised); yields its base URL."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_source(f"builtin:{DEFAULT_MODEL_NAME}"),
            "--served-model-name", "hosted-smollm2", "--port", str(port), "--host", "127.0.0.1", "--api-key", HOSTED_KEY,
            "--enforce-eager", "--max-model-len", "2048", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("hosted") / "vllm.log"
    with server_process(args, log, base + "/health", what="hosted vLLM server", env=env):
        yield base


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")
