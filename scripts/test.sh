#!/usr/bin/env bash
# Install spillover with its test tools, start the services the tests need, run every test.
# Prints the time of each phase. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SPILLOVER_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

phase_start=$SECONDS
phase() { echo "== $1: $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }

bash scripts/install.sh --test
phase install
bash scripts/services.sh
phase services
"$venv/bin/python" -m pytest -m "not e2e" -q -p no:cacheprovider
phase unit
"$venv/bin/python" -m pytest -m e2e -q -p no:cacheprovider
phase e2e
