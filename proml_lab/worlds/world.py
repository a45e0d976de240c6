"""Read a generated world back: paths, Arrow datasets, pandas frames and a summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proml_lab.errors import DataNotFoundError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as ds

TABLES = (
    "companies", "members", "jobs", "member_activity", "impressions", "business_metrics",
    "truth/member_effects.parquet", "truth/job_effects.parquet",
)


class World:
    """A generated economic-graph world on disk (``<workspace>/lake/world`` by default).

    Examples
    --------
    >>> world = World.open(workspace)                         # doctest: +SKIP
    >>> world.read("members", columns=["member_id", "primary_title"]).head()   # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = self.path / "world.json"
        if not manifest.exists():
            raise DataNotFoundError(
                f"No generated world at {self.path}. Generate one with "
                "`proml worlds generate --size small` (or proml_lab.worlds.generate_world()).",
                path=str(self.path),
            )
        self.info: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))

    @classmethod
    def open(cls, workspace: Any, name: str = "world") -> World:
        """The world named ``name`` in a workspace's offline lake."""
        return cls(Path(workspace.lake) / name)

    @property
    def rows(self) -> dict[str, int]:
        return dict(self.info["rows"])

    def table_path(self, table: str) -> Path:
        """Where a table's Parquet files live (a directory, or one file for the truth tables)."""
        if table not in TABLES and f"truth/{table}.parquet" not in TABLES:
            raise KeyError(f"Unknown world table {table!r}; known: {', '.join(TABLES)}")
        return self.path / (table if table in TABLES else f"truth/{table}.parquet")

    def dataset(self, table: str) -> ds.Dataset:
        """A lazy Arrow dataset over a table (impressions are hive-partitioned by ``date``)."""
        import pyarrow.dataset as ds

        return ds.dataset(self.table_path(table), format="parquet", partitioning="hive")

    def read(self, table: str, columns: Sequence[str] | None = None, filter: Any = None) -> pd.DataFrame:
        """Read a table (or some of its columns / rows) into pandas."""
        return self.dataset(table).to_table(columns=list(columns) if columns else None, filter=filter).to_pandas()

    def summary(self) -> dict[str, Any]:
        """Counts, label rates, date ranges, the commonest title families and size on disk."""
        import pyarrow.compute as pc

        rows, labels = self.rows, self.info["labels"]
        families = pc.value_counts(self.dataset("members").to_table(columns=["title_family"])["title_family"])
        top = sorted(((v["values"], v["counts"]) for v in families.to_pylist()), key=lambda x: -x[1])
        cfg = self.info["config"]
        return {
            "path": str(self.path),
            "size": cfg["size"],
            "seed": cfg["seed"],
            "impressions_range": f"{self.info['start']} .. {self.info['end']} (exclusive)",
            "activity_range": f"{self.info['history_start']} .. {self.info['end']} (exclusive)",
            "rows": rows,
            "ctr": labels["clicks"] / max(rows["impressions"], 1),
            "apply_rate": labels["applies"] / max(rows["impressions"], 1),
            "impressions_per_member": rows["impressions"] / max(rows["members"], 1),
            "top_title_families": top[:5],
            "drift_from": cfg["drift_from"],
            "anomalies": self.info["anomalies"],
            "disk_mb": sum(f.stat().st_size for f in self.path.rglob("*.parquet")) / 2**20,
        }
