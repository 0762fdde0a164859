"""What every benchmark shares: machine description, medians, the table, and the records.

Each benchmark prints a table, appends a dated section to BENCHMARKS.md (command, machine,
numbers, and the peer measured in the same run), and writes its latest figures to
``bench/results/NAME.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results", ":!BENCHMARKS.md"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return True
    return bool(out.strip())


def record(name: str, title: str, figures: dict[str, object], body_markdown: str, *, merge: bool = True) -> None:
    """Write ``bench/results/NAME.json`` (merging keys other benchmarks own) and append to BENCHMARKS.md,
    each stamped with the commit, whether the tree had uncommitted changes, and the load average
    at start and end."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    existing = json.loads(path.read_text()) if merge and path.exists() else {}
    existing.update(figures)
    existing["updated"] = time.strftime("%Y-%m-%d")
    dirty, load_end = tree_dirty(), os.getloadavg()
    existing["provenance"] = {"commit": git_commit(), "dirty": dirty, "machine": machine(),
                              "load_average_start": [round(x, 2) for x in LOAD_AT_START],
                              "load_average_end": [round(x, 2) for x in load_end]}
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    command = "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    section = (
        f"\n## {title} ({time.strftime('%Y-%m-%d')})\n\n"
        f"- Command: `{command}`\n- Machine: {machine()}\n- Commit: {git_commit()}{' (DIRTY TREE: uncommitted changes)' if dirty else ''}\n"
        f"- Load average (1/5/15 min) at start {_loads(LOAD_AT_START)}, at end {_loads(load_end)}\n\n{body_markdown}\n"
    )
    if not BENCHMARKS_MD.exists():
        BENCHMARKS_MD.write_text("# Benchmarks\n\nEvery figure here was measured by a script under `bench/`; newest last.\n")
    with BENCHMARKS_MD.open("a") as out:
        out.write(section)


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
