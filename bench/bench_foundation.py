"""Foundation figures: import time, and sample-world generation time / peak memory per size.

Each measurement runs in a fresh interpreter so that peak RSS belongs to that job alone. The floor for
world generation is Parquet itself: reading the generated world back and writing the same tables again
with the same writer settings (encoding + compression + disk, no generation). The ratio says how much
the generator costs on top of writing its output.

    python bench/bench_foundation.py [--sizes tiny,small,large]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_child, save  # noqa: E402

GENERATE = """
from pathlib import Path
from proml_lab.worlds.config import WorldConfig
from proml_lab.worlds.economic_graph import write_world
write_world(WorldConfig.preset({size!r}), Path({target!r}))
"""

REWRITE = """
from pathlib import Path
import pyarrow.parquet as pq
src, dst = Path({src!r}), Path({dst!r})
for f in sorted(src.rglob("*.parquet")):
    out = dst / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pq.read_table(f), out, compression="zstd", row_group_size=1 << 20)
"""


def import_time(repeats: int = 15) -> tuple[float, float]:
    def best(code: str) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return best("import proml_lab"), best("pass")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="tiny,small,large")
    args = parser.parse_args()

    rows = []
    imp, bare = import_time()
    rows.append(["`import proml_lab` (median of 15, fresh interpreter)", f"{imp * 1000:.0f} ms",
                 f"bare interpreter {bare * 1000:.0f} ms", f"{imp / bare:.2f}x"])
    sizes = {}
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            world = Path(tmp) / "world"
            gen = run_child(GENERATE.format(size=size, target=str(world)))
            mb = sum(f.stat().st_size for f in world.rglob("*.parquet")) / 2**20
            floor = run_child(REWRITE.format(src=str(world), dst=str(Path(tmp) / "rewrite")))
        sizes[size] = {"generate": gen, "parquet_floor": floor, "parquet_mb": mb}
        rows.append([
            f"generate `{size}` world ({mb:.0f} MB Parquet)",
            f"{gen['wall_s']:.1f} s, peak RSS {gen['peak_rss_mb']:.0f} MB",
            f"Parquet rewrite floor {floor['wall_s']:.1f} s",
            f"{gen['wall_s'] / floor['wall_s']:.2f}x",
        ])
        print(rows[-1], flush=True)
    save(
        "foundation",
        title="Foundation: import time and sample-world generation",
        command="python bench/bench_foundation.py --sizes tiny,small,large",
        columns=["measure", "ProML Lab", "reference", "ratio"],
        rows=rows,
        notes="Peak RSS is the generating process's own maximum resident set (fresh interpreter per size).",
        extra={"sizes": sizes},
    )


if __name__ == "__main__":
    main()
