"""Run every benchmark (``bench/bench_*.py``) and rebuild BENCHMARKS.md from ``bench/results/*.json``.

    python bench/run.py            # run all, then render
    python bench/run.py --render   # only render from existing results
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def render() -> str:
    parts = [
        "# Benchmarks\n",
        "Measured on this project's reference machine (2 cores, 24 GiB) unless a row says otherwise. "
        "Each benchmark runs ProML Lab and its reference (a peer, or the physical floor) in one run and "
        "reports the ratio, since absolute times on shared machines are noisy. Regenerate with "
        "`make bench` (or `python bench/run.py --render` to rebuild this page from `bench/results/`).\n",
    ]
    for path in sorted((BENCH / "results").glob("*.json")):
        result = json.loads(path.read_text())
        m = result["machine"]
        parts.append(f"## {result['title']}\n")
        parts.append(f"`{result['command']}` — {result['measured_at']}, {m['cpus']} CPUs, "
                     f"{m['memory_gb']} GiB, Python {m['python']}\n")
        cols = result["columns"]
        parts.append("| " + " | ".join(cols) + " |")
        parts.append("|" + "|".join("---" for _ in cols) + "|")
        parts.extend("| " + " | ".join(str(c) for c in row) + " |" for row in result["rows"])
        if result.get("notes"):
            parts.append(f"\n{result['notes']}")
        parts.append("")
    return "\n".join(parts)


def main() -> None:
    if "--render" not in sys.argv:
        for script in sorted(BENCH.glob("bench_*.py")):
            print(f"== {script.name}", flush=True)
            subprocess.run([sys.executable, str(script)], check=True, cwd=ROOT)
    (ROOT / "BENCHMARKS.md").write_text(render())
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
