"""The serving bench's interleaved slices: the order rotates, and each headline figure is taken
between setups in the same slice before the median over slices."""

from __future__ import annotations

from bench.serving import derive, slice_order, summary_table


def test_the_order_rotates_so_no_setup_is_always_first() -> None:
    setups = ("spillover", "ray_serve_llm", "vllm")
    orders = [slice_order(setups, k) for k in range(3)]
    assert [o[0] for o in orders] == ["spillover", "ray_serve_llm", "vllm"]
    assert all(sorted(o) == sorted(setups) for o in orders)


def _rows(setup: str, slice_: int, tokens_per_s: float, ttft_s: float) -> list[dict]:
    """Two c=16 requests over 1 s giving ``tokens_per_s``, two c=1 requests with ``ttft_s``."""
    c16 = [{"setup": setup, "slice": slice_, "level": 16, "started_s": 0.0, "done_s": 1.0, "ttft_s": 0.1, "tokens": tokens_per_s / 2}] * 2
    c1 = [{"setup": setup, "slice": slice_, "level": 1, "started_s": 0.0, "done_s": 1.0, "ttft_s": ttft_s, "tokens": 128}] * 2
    return c16 + c1


def test_ratios_pair_setups_within_a_slice() -> None:
    # The host doubles its speed in slice 1: pooled medians would blur it, pairs within a slice do not.
    spillover = [(100, 0.052), (200, 0.026), (96, 0.050)]
    ray = [(100, 0.050), (200, 0.025), (100, 0.050)]
    rows = [r for k, (t, f) in enumerate(spillover) for r in _rows("spillover", k, t, f)]
    rows += [r for k, (t, f) in enumerate(ray) for r in _rows("ray_serve_llm", k, t, f)]
    header = {"setups": ["spillover", "ray_serve_llm"], "slices": 3, "slice_s": 60, "busy": {"busy_at_start": [], "allow_busy": False},
              "slice_log": [{"load_average": [0.5, 0.5, 0.5]}] * 3, "ingress_buckets": []}
    figures = derive(header, rows)
    assert figures["tokens_per_s_ratio_spread"]["by_slice"] == [1.0, 1.0, 0.96]
    assert figures["tokens_per_s_ratio"] == 1.0
    assert figures["added_ttft_p50_ms_spread"]["by_slice"] == [2.0, 1.0, 0.0]
    assert figures["added_ttft_p50_ms"] == 1.0
    assert figures["rounds"] == 3 and figures["goal_met"]["five_slices"] is False
    assert "ray_vs_direct_tokens_ratio" not in figures
    assert "×1.0" in summary_table(figures)
