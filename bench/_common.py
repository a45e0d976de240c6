"""Shared plumbing for benchmarks: machine facts and result files that BENCHMARKS.md is built from."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def run_child(code: str, *, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; return its wall time and its own peak RSS (MB)."""
    probe = "\nimport resource\nprint('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + probe], check=True, capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - start
    peak_kb = next(int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    return {"wall_s": wall, "peak_rss_mb": peak_kb / 1024}


def save(name: str, *, title: str, command: str, columns: list[str], rows: list[list[Any]],
         notes: str = "", extra: dict[str, Any] | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "title": title,
        "command": command,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "columns": columns,
        "rows": rows,
        "notes": notes,
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
