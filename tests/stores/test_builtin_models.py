from pathlib import Path

import pytest

from stores import builtin_models
from stores.builtin_models import BUILTIN_MODELS, gguf_path, resolve_source


def test_non_builtin_sources_pass_through() -> None:
    assert resolve_source("/models/llama") == "/models/llama"
    assert resolve_source("meta-llama/Meta-Llama-3-70B-Instruct") == "meta-llama/Meta-Llama-3-70B-Instruct"


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="builtin:smollm2-135m-instruct"):
        resolve_source("builtin:nope")


def test_the_default_models_gguf_is_installed() -> None:
    path = gguf_path(BUILTIN_MODELS["smollm2-135m-instruct"])
    assert path.stat().st_size > 50_000_000


def test_a_converted_folder_is_reused_and_a_half_one_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPILLOVER_CACHE_DIR", str(tmp_path))
    model = BUILTIN_MODELS["smollm2-135m-instruct"]
    calls: list[Path] = []

    def fake_convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(builtin_models, "_convert", fake_convert)
    target = tmp_path / "models" / model.name
    target.mkdir(parents=True)
    (target / "leftover").write_text("interrupted conversion: no marker")

    assert resolve_source("builtin:smollm2-135m-instruct") == str(target)
    assert len(calls) == 1 and not (target / "leftover").exists()
    assert (target / model.marker).is_file()
    resolve_source("builtin:smollm2-135m-instruct")
    assert len(calls) == 1, "second call must reuse the converted folder"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "no staging folder left behind"
