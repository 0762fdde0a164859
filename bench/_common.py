"""What every benchmark shares: machine description, medians, the table, and the records.

Each benchmark prints a table, appends a dated section to BENCHMARKS.md (command, machine,
numbers, and the peer measured in the same run), and writes its latest figures to
``bench/results/NAME.json``. A figure is only as good as what it can be traced to, so each
record names its commit and refuses a tree with uncommitted changes (unless ``--allow-dirty``,
and then it says so), the machine and its load, and, where the benchmark keeps them, the raw
per-request outcomes in ``bench/results/NAME.raw.jsonl.gz``, from which its ``--recompute``
mode rebuilds every derived figure and checks it against the JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import terminate_tree

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


#: Ray Serve LLM's own OpenAI app with the ``LLMConfig`` spillover builds for its default model:
#: the peer every serving benchmark measures beside spillover. Run it with ``python -c``.
RAY_SERVE_LLM_PEER = """
import signal, sys, threading
import ray
from ray import serve
from ray.serve.llm import build_openai_app
from spillover.config import load_config
from serving.llm_deployment import llm_config_for
config = load_config(None)
ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
serve.run(build_openai_app({"llm_configs": [llm_config_for(config.models[0], config.ingress)]}), blocking=False)
stop.wait()
serve.shutdown()
"""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


#: The load average when the benchmark started (this module is imported first thing).
LOAD_AT_START = os.getloadavg()


def tree_dirty() -> bool:
    """Uncommitted changes to tracked files, leaving out what benchmarks themselves write."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench/results", ":!BENCHMARKS.md"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return True
    return bool(out.strip())


def add_provenance_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-dirty", action="store_true",
                        help="run on a tree with uncommitted changes; the record is marked DIRTY")


def refuse_dirty_tree(allow_dirty: bool) -> None:
    """Stop before measuring anything when the figures could not be traced to a commit."""
    if tree_dirty() and not allow_dirty:
        raise SystemExit("the tree has uncommitted changes: commit them first, or pass --allow-dirty (the record will say DIRTY)")


#: A machine busier than this (1-minute load average, 2 cores) measures its neighbours, not the bench.
BUSY_LOAD_1MIN = 2.5
#: Another Python process using more than this share of one core is a neighbour's heavy work.
BUSY_PROCESS_CPU = 0.5


def add_busy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-busy", action="store_true",
                        help="measure although the machine is busy (load or another heavy Python process); the record says so")
    parser.add_argument("--wait-quiet-s", type=float, default=0.0,
                        help="wait up to this long for a busy machine to go quiet before refusing")


def heavy_neighbours(sample_s: float = 1.0) -> list[str]:
    """Why the machine is too busy to measure on: a 1-minute load average above
    :data:`BUSY_LOAD_1MIN`, or other Python processes (not this one or its children) using more
    than :data:`BUSY_PROCESS_CPU` of a core over ``sample_s``. Empty when quiet."""
    reasons = []
    load_1min = os.getloadavg()[0]
    if load_1min > BUSY_LOAD_1MIN:
        reasons.append(f"1-minute load average {load_1min:.2f} > {BUSY_LOAD_1MIN}")
    mine = {os.getpid(), os.getppid()}
    before = _python_cpu_ticks(mine)
    time.sleep(sample_s)
    after = _python_cpu_ticks(mine)
    hz = os.sysconf("SC_CLK_TCK")
    for pid, (name, ticks) in after.items():
        share = (ticks - before.get(pid, (name, ticks))[1]) / hz / sample_s
        if share > BUSY_PROCESS_CPU:
            reasons.append(f"pid {pid} ({name}) at {share:.0%} of a core")
    return reasons


def _python_cpu_ticks(exclude: set[int]) -> dict[int, tuple[str, int]]:
    """Per other Python process: its command's first words and its user+system CPU ticks so far."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        if pid in exclude:
            continue
        try:
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if "python" in cmdline.split(" ", 1)[0]:
            ticks[pid] = (cmdline[:80], int(fields[11]) + int(fields[12]))
    return ticks


def refuse_busy_machine(allow_busy: bool, wait_s: float = 0.0) -> dict[str, Any]:
    """Stop before measuring while another heavy process runs (after waiting up to ``wait_s``
    for it to end); with ``allow_busy``, go on and return the reasons so the record carries them
    (``busy_at_start``)."""
    deadline = time.monotonic() + wait_s
    reasons = heavy_neighbours()
    while reasons and not allow_busy and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: {'; '.join(reasons)}", flush=True)
        time.sleep(30)
        reasons = heavy_neighbours()
    if reasons and not allow_busy:
        raise SystemExit("the machine is busy (" + "; ".join(reasons) + "): wait for it, or pass --allow-busy (the record will say so)")
    return {"busy_at_start": reasons, "allow_busy": allow_busy}


RAW_SUFFIX = ".raw.jsonl.gz"


def raw_path(name: str) -> Path:
    return RESULTS / f"{name}{RAW_SUFFIX}"


def save_raw(path: Path, header: dict[str, Any], rows: Iterable[dict[str, Any]]) -> None:
    """The run's inputs (``header``, first line) and one JSON line per outcome, gzipped with no
    timestamp so the same outcomes give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        out.write((json.dumps(header, sort_keys=True) + "\n").encode())
        for row in rows:
            out.write((json.dumps(row, sort_keys=True) + "\n").encode())


def load_raw(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with gzip.open(path, "rt") as lines:
        header = json.loads(next(lines))
        return header, [json.loads(line) for line in lines]


def recompute_differences(recorded: dict[str, Any], recomputed: dict[str, Any], at: str = "") -> list[str]:
    """Where figures rebuilt from the raw file differ from the recorded ones (keys the rebuild
    does not produce, such as the provenance, are not compared)."""
    recomputed = json.loads(json.dumps(recomputed))  # the JSON's own types: tuples become lists
    differences = []
    for key, value in recomputed.items():
        here = f"{at}.{key}" if at else key
        if key not in recorded:
            differences.append(f"{here}: not recorded")
        elif isinstance(value, dict) and isinstance(recorded[key], dict):
            differences.extend(recompute_differences(recorded[key], value, here))
        elif recorded[key] != value:
            differences.append(f"{here}: recorded {recorded[key]!r}, recomputed {value!r}")
    return differences


def add_recompute_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recompute", nargs="?", const="", metavar="RAW",
                        help="rebuild every figure from a raw file (default: the results') and compare with the recorded JSON")
    parser.add_argument("--recorded", type=Path, help="with --recompute: the JSON to compare with (default: the results')")


def recompute_if_asked(args: argparse.Namespace, name: str, derive: Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]],
                       summary_table: Callable[[dict[str, Any]], str]) -> None:
    """With ``--recompute``, rebuild and compare (:func:`recompute_command`) and exit with its status."""
    if args.recompute is not None:
        raw = Path(args.recompute) if args.recompute else raw_path(name)
        raise SystemExit(recompute_command(raw, args.recorded or RESULTS / f"{name}.json", derive, summary_table))


def recompute_command(raw: Path, recorded: Path, derive: Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]],
                      summary_table: Callable[[dict[str, Any]], str]) -> int:
    """``--recompute``: rebuild every figure from the raw file with the bench's own ``derive`` and
    compare with the recorded JSON; the exit status is 0 when all match."""
    header, rows = load_raw(raw)
    figures = derive(header, rows)
    print(summary_table(figures))
    differences = recompute_differences(json.loads(recorded.read_text()), figures)
    for line in differences:
        print(f"differs: {line}")
    print(f"{len(differences)} figures differ from {recorded}" if differences else f"every figure of {recorded} rebuilt from {raw}")
    return 1 if differences else 0


def record(name: str, title: str, figures: dict[str, object], body_markdown: str, *, merge: bool = True,
           allow_dirty: bool = False, raw: tuple[dict[str, Any], list[dict[str, Any]]] | None = None) -> None:
    """Write ``bench/results/NAME.json`` (merging keys other benchmarks own) and append to BENCHMARKS.md,
    each stamped with the commit, whether the tree had uncommitted changes (refused unless
    ``allow_dirty``), the machine and the load average at start and end; ``raw`` (the inputs and
    the per-request outcomes) goes beside the JSON."""
    dirty, load_end = tree_dirty(), os.getloadavg()
    refuse_dirty_tree(allow_dirty)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    existing = json.loads(path.read_text()) if merge and path.exists() else {}
    existing.update(figures)
    existing["updated"] = time.strftime("%Y-%m-%d")
    existing["provenance"] = {"commit": git_commit(), "dirty": dirty, "machine": machine(),
                              "load_average_start": [round(x, 2) for x in LOAD_AT_START],
                              "load_average_end": [round(x, 2) for x in load_end]}
    if raw is not None:
        save_raw(raw_path(name), *raw)
        existing["provenance"]["raw"] = os.path.relpath(raw_path(name), REPO)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    command = "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    section = (
        f"\n## {title} ({time.strftime('%Y-%m-%d')})\n\n"
        f"- Command: `{command}`\n- Machine: {machine()}\n- Commit: {git_commit()}{' (DIRTY TREE: uncommitted changes)' if dirty else ''}\n"
        f"- Load average (1/5/15 min) at start {_loads(LOAD_AT_START)}, at end {_loads(load_end)}\n"
        + (f"- Raw outcomes: `{os.path.relpath(raw_path(name), REPO)}` (`{command} --recompute` rebuilds every figure from them)\n" if raw else "")
        + f"\n{body_markdown}\n"
    )
    if not BENCHMARKS_MD.exists():
        BENCHMARKS_MD.write_text("# Benchmarks\n\nEvery figure here was measured by a script under `bench/`; newest last.\n")
    with BENCHMARKS_MD.open("a") as out:
        out.write(section)


def publish(args: argparse.Namespace, name: str, title: str, header: dict[str, Any], rows: list[dict[str, Any]],
            derive: Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]], summary_table: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The end of a bench run: every figure derived from the raw outcomes, the table printed, and
    (unless ``--no-record``) the record and the raw file written. Returns the figures."""
    figures = derive(header, rows)
    text = summary_table(figures)
    print(text)
    if not getattr(args, "no_record", False):
        record(name, title, figures, text, merge=False, allow_dirty=args.allow_dirty, raw=(header, rows))
    return figures


def _loads(loads: Sequence[float]) -> str:
    return "/".join(f"{x:.2f}" for x in loads)


def terminate(child: subprocess.Popen[bytes], wait_s: float) -> None:
    """SIGTERM, up to ``wait_s`` for a clean exit (servers drain), then SIGKILL; the Ray
    processes the child started go with it, by pid (tests.helpers.terminate_tree)."""
    terminate_tree(child, wait_s)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
