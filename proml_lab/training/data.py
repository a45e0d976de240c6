"""Training data for a program: labelled rows from the lake joined point-in-time with its features.

A program's ``TRAINING CONFIG`` names its label and its training data (a table under the workspace lake,
e.g. ``"world/impressions"``); :func:`training_frame` reads the label rows, joins every feature the
program reads as of each row's timestamp (:meth:`FeatureStore.get_training_data`), and splits by time:
the latest ``validation_fraction`` of rows is held out, as a model trained on the past is judged on the
future.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proml_lab.errors import DataNotFoundError, TrainingError
from proml_lab.quasar import ir as irm

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.workspace import Workspace

__all__ = ["TrainingFrames", "training_frame"]

_TIMESTAMP_CANDIDATES = ("timestamp", "impression_ts", "event_ts", "rated_at")


@dataclass
class TrainingFrames:
    """Training and validation rows (pandas), with where they came from."""

    train: pd.DataFrame
    validation: pd.DataFrame
    source: str
    label: str
    timestamp_column: str
    split_at: Any


def training_frame(
    workspace: Workspace,
    ir: irm.IR,
    *,
    source: str | None = None,
    label: str | None = None,
    timestamp_column: str | None = None,
    key_columns: tuple[str, ...] = ("member_id", "job_id"),
    validation_fraction: float = 0.2,
) -> TrainingFrames:
    """Label rows of *source* (default: the program's ``training_data``) with the program's features.

    Examples
    --------
    >>> frames = training_frame(ws, compile(src, catalog=ws.features.catalog))   # doctest: +SKIP
    >>> len(frames.train), len(frames.validation)                                # doctest: +SKIP
    (40000, 10000)
    """
    from pyspark.sql import functions as F

    config = ir.training_config or {}
    source = source or config.get("training_data")
    label = label or config.get("label")
    if not source:
        raise TrainingError("no training data: pass --data / source=... or write TRAINING CONFIG "
                            "{training_data: \"<table under the lake>\"}")
    if not label:
        raise TrainingError("no label: pass label=... or write TRAINING CONFIG {label: <column>}")
    if not 0.0 < validation_fraction < 1.0:
        raise TrainingError(f"validation_fraction must be in (0, 1); got {validation_fraction}")
    path = workspace.lake / str(source)
    if not path.exists():
        raise DataNotFoundError(f"training data {source!r} not found under the lake ({path}); generate "
                                f"the world with `proml worlds generate` or pass another table", path=str(path))
    spark = workspace.spark()
    rows = spark.read.parquet(str(path))
    ts = timestamp_column or next((c for c in _TIMESTAMP_CANDIDATES if c in rows.columns), None)
    missing = [c for c in (label, ts, *key_columns) if c is None or c not in rows.columns]
    if missing:
        raise TrainingError(f"training data {source!r} lacks column(s) {', '.join(map(str, missing))}; it "
                            f"has {', '.join(rows.columns)}")
    labels = rows.select(*key_columns, F.col(ts).cast("timestamp").alias(ts), F.col(label).cast("double"))
    features = sorted({n.feature for n in ir.nodes if isinstance(n, irm.Input)})
    joined = workspace.features.get_training_data(labels, features, timestamp_column=ts)
    frame = joined.toPandas().sort_values([ts, *key_columns], kind="stable").reset_index(drop=True)
    if len(frame) < 10:
        raise TrainingError(f"training data {source!r} has only {len(frame)} rows")
    cut = int(round(len(frame) * (1.0 - validation_fraction)))
    split_at = frame[ts].iloc[cut]
    train, validation = frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)
    return TrainingFrames(train, validation, str(source), str(label), ts, split_at)
