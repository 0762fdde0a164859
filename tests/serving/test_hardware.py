from pathlib import Path

from serving.hardware import cpu_dtype, cpu_flags


def test_bf16_only_with_native_support() -> None:
    assert cpu_dtype(frozenset({"avx2", "avx512f"})) == "float32"
    assert cpu_dtype(frozenset({"avx2", "avx512f", "avx512_bf16"})) == "bfloat16"
    assert cpu_dtype(frozenset({"amx_bf16"})) == "bfloat16"


def test_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu avx2 avx512_bf16\n")
    assert cpu_flags(str(info)) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cpu_flags(str(tmp_path / "none")) == frozenset()
