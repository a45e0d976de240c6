"""Outcome events (clicks, applies) logged against exposures, and the per-member units an A/B analysis reads.

Outcomes are a Hive-partitioned Parquet data set next to the service's exposure log:
``<workspace>/logs/outcomes/model=<model>/date=<YYYY-MM-DD>/part-*.parquet``, one row per event with
``ts, request_id, member_id, document_id, event`` (``click`` or ``apply``). Each file is written under a
hidden temporary name and renamed, so a reader never sees half a file. An event refers to the exposure it
follows by ``(request_id, document_id)``.

The exposure log (``<workspace>/logs/exposures/model=<model>/``) is written by the ranking service; this
module reads it as data (the experiments layer never imports ``serving``).

>>> log_outcomes(ws, "jobs", pd.DataFrame({"ts": [now], "request_id": ["r1"], "member_id": [7],
...                                        "document_id": [42], "event": ["click"]}))   # doctest: +SKIP
1
>>> experiment_units(ws, "ab").head()                                                     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab._fs import write_parquet_atomic
from proml_lab.errors import ExperimentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EVENTS", "experiment_units", "log_outcomes", "outcome_dir", "read_exposure_log", "read_outcomes"]

EVENTS = ("click", "apply")
_COLUMNS = ("ts", "request_id", "member_id", "document_id", "event")
UNIT_COLUMNS = ("member_id", "arm", "requests", "exposures", "clicks", "applies", "clicked", "applied", "ctr",
                "first_exposure")
PRE_COLUMNS = ("pre_exposures", "pre_clicks", "pre_ctr")


def outcome_dir(workspace: Any) -> Path:
    """Where a workspace's outcome events live (a Hive-partitioned Parquet data set)."""
    return Path(workspace.root) / "logs" / "outcomes"


def _exposure_dir(workspace: Any) -> Path:
    return Path(workspace.root) / "logs" / "exposures"


# ------------------------------------------------------------------------------------------------- writing


def log_outcomes(workspace: Any, model: str, events: Any) -> int:
    """Append outcome events of ``model`` to the log; returns how many rows were written.

    Parameters
    ----------
    events
        A pandas DataFrame or Arrow table with ``request_id, member_id, document_id, event`` (``click`` or
        ``apply``) and ``ts`` (UTC; now when the column is missing). One file per day touched is written.
    """
    import pandas as pd
    import pyarrow as pa

    frame = events.to_pandas() if isinstance(events, pa.Table) else pd.DataFrame(events)
    if frame.empty:
        return 0
    if "ts" not in frame:
        frame = frame.assign(ts=pd.Timestamp.now(tz="UTC"))
    missing = [c for c in _COLUMNS if c not in frame]
    if missing:
        raise ExperimentError(f"Outcome events need the columns {', '.join(_COLUMNS)}; missing: "
                              f"{', '.join(missing)}.")
    bad = ~frame["event"].isin(EVENTS)
    if bad.any():
        raise ExperimentError(f"Unknown outcome event(s) {sorted(set(frame['event'][bad].astype(str)))[:5]}; "
                              f"known: {', '.join(EVENTS)}.")
    ts = pd.to_datetime(frame["ts"], utc=True)
    table = pa.table({
        "ts": pa.array(ts.dt.tz_localize(None).to_numpy("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(frame["request_id"].astype(str).to_numpy(), pa.string()),
        "member_id": _id_array(frame["member_id"].to_numpy()),
        "document_id": _id_array(frame["document_id"].to_numpy()),
        "event": pa.array(frame["event"].astype(str).to_numpy(), pa.string()),
    })
    day = ts.dt.strftime("%Y-%m-%d").to_numpy()
    root = outcome_dir(workspace) / f"model={model}"
    for value in np.unique(day):  # one file per day touched (usually one)
        write_parquet_atomic(table.filter(pa.array(day == value)), root / f"date={value}")
    return table.num_rows


def _id_array(values: np.ndarray) -> Any:
    """Ids as int64 when they are integers (as the exposure log stores them), else as strings."""
    import pyarrow as pa

    arr = np.asarray(values)
    try:
        return pa.array(arr.astype(np.int64))
    except (TypeError, ValueError):
        return pa.array(arr.astype(str))


# ------------------------------------------------------------------------------------------------- reading


def _read_log(root: Path, *, columns: list[str] | None = None, filter: Any = None) -> pd.DataFrame | None:
    """A Parquet log directory as pandas (None when empty); files whose schemas grew are unified."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not root.exists():
        return None
    data = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=True)
    fragments = list(data.get_fragments())
    if not fragments:
        return None
    schema = pa.unify_schemas([f.physical_schema for f in fragments])
    for extra in data.schema:  # the partition columns (date=...)
        if extra.name not in schema.names:
            schema = schema.append(extra)
    data = ds.dataset(root, format="parquet", partitioning="hive", schema=schema, exclude_invalid_files=True)
    wanted = [c for c in columns if c in schema.names] if columns else None
    try:
        return data.to_table(columns=wanted, filter=filter).to_pandas()
    except (pa.ArrowInvalid, KeyError):  # a filter on a column no file has yet
        return data.to_table(columns=wanted).to_pandas().iloc[0:0]


def read_outcomes(workspace: Any, model: str) -> pd.DataFrame:
    """The outcome events of ``model`` (columns ``ts, request_id, member_id, document_id, event``)."""
    import pandas as pd

    frame = _read_log(outcome_dir(workspace) / f"model={model}", columns=list(_COLUMNS))
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in _COLUMNS})
    return frame[list(_COLUMNS)].sort_values("ts", kind="stable").reset_index(drop=True)


def read_exposure_log(workspace: Any, model: str, *, experiment: str | None = None,
                      columns: list[str] | None = None) -> pd.DataFrame:
    """The ranking service's exposure log of ``model`` as pandas (optionally only one experiment's rows)."""
    import pandas as pd
    import pyarrow.dataset as ds

    filt = None if experiment is None else ds.field("experiment") == experiment
    frame = _read_log(_exposure_dir(workspace) / f"model={model}", columns=columns, filter=filt)
    if frame is None or (experiment is not None and "experiment" not in frame):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in (columns or ["request_id"])})
    return frame.drop(columns=[c for c in ("date",) if c in frame and (columns is None or c not in columns)])


# ------------------------------------------------------------------------------------------------- units


def experiment_units(workspace: Any, experiment: Any, *, start: Any = None, end: Any = None) -> pd.DataFrame:
    """One row per member exposed in ``experiment``: the unit of randomization an A/B analysis compares.

    Parameters
    ----------
    experiment
        An experiment name (looked up in the workspace's experiment store) or an ``Experiment``.
    start, end
        Only exposures with ``start <= ts < end`` (datetimes or ISO strings, UTC); default: all of them.

    Returns
    -------
    pandas.DataFrame
        ``member_id, arm, requests, exposures, clicks, applies, clicked (0/1), applied (0/1), ctr
        (clicks / exposures), first_exposure``, and when the generated world is in the workspace the
        pre-period columns for CUPED: ``pre_exposures, pre_clicks`` (the member's world impressions and
        clicks before the experiment started; 0 when none) and ``pre_ctr`` (NaN when the member had no
        pre-period impression). Events count once per ``(request_id, document_id, event)``; an event counts
        only when it refers to an exposure of this experiment in the window.
    """
    import pandas as pd

    exp = _experiment(workspace, experiment)
    columns = ["ts", "request_id", "member_id", "document_id", "arm", "experiment"]
    exposures = read_exposure_log(workspace, exp.model, experiment=exp.name, columns=columns)
    if len(exposures):
        window = pd.Series(True, index=exposures.index)
        ts = pd.to_datetime(exposures["ts"], utc=True)
        if start is not None:
            window &= ts >= _utc(start)
        if end is not None:
            window &= ts < _utc(end)
        exposures = exposures[window]
    if not len(exposures):
        return _empty_units(pre=_world(workspace) is not None)

    key = ["request_id", "document_id"]
    shown = exposures[[*key, "member_id"]].drop_duplicates(key)
    import pyarrow.dataset as ds

    requests = shown["request_id"].astype(str).unique().tolist()
    events = _read_log(outcome_dir(workspace) / f"model={exp.model}", columns=[*key, "event"],
                       filter=ds.field("request_id").isin(requests))
    if events is None:
        events = pd.DataFrame({c: pd.Series(dtype="object") for c in (*key, "event")})
    events = events[[*key, "event"]].drop_duplicates()
    if len(events):
        events = events.astype({"document_id": shown["document_id"].dtype}, errors="ignore")
    joined = shown.merge(events, on=["request_id", "document_id"], how="inner")
    counts = (pd.crosstab(joined["member_id"], joined["event"]) if len(joined)
              else pd.DataFrame(index=pd.Index([], name="member_id")))

    units = exposures.groupby("member_id", sort=True).agg(
        arm=("arm", "first"), requests=("request_id", "nunique"), exposures=("document_id", "size"),
        first_exposure=("ts", "min"))
    units["clicks"] = counts["click"].reindex(units.index, fill_value=0) if "click" in counts else 0
    units["applies"] = counts["apply"].reindex(units.index, fill_value=0) if "apply" in counts else 0
    units = units.astype({"clicks": np.int64, "applies": np.int64})
    units["clicked"] = (units["clicks"] > 0).astype(np.int64)
    units["applied"] = (units["applies"] > 0).astype(np.int64)
    units["ctr"] = units["clicks"] / units["exposures"]
    units = units.reset_index()[list(UNIT_COLUMNS)]

    world = _world(workspace)
    if world is not None:
        cutoff = _utc(start) if start is not None else (
            _utc(exp.started_at) if getattr(exp, "started_at", None) else units["first_exposure"].min())
        units = _with_pre_period(units, world, cutoff)
    return units


def _with_pre_period(units: pd.DataFrame, world: Any, cutoff: Any) -> pd.DataFrame:
    """Join each member's world impressions and clicks before ``cutoff`` (vectorized merge, no row loop)."""
    import pandas as pd
    import pyarrow.dataset as ds

    impressions = world.read("impressions", ["member_id", "clicked"],
                             filter=ds.field("impression_ts") < pd.Timestamp(cutoff).to_pydatetime())
    pre = impressions.groupby("member_id").agg(pre_exposures=("clicked", "size"),
                                               pre_clicks=("clicked", "sum"))
    ids = units["member_id"]
    if ids.dtype.kind not in "iu":  # string ids: only those that are world member ids can have a pre-period
        ids = pd.to_numeric(ids, errors="coerce")
    pre = pre.reindex(ids.to_numpy()).fillna(0).astype(np.int64)
    units = units.assign(pre_exposures=pre["pre_exposures"].to_numpy(),
                         pre_clicks=pre["pre_clicks"].to_numpy())
    seen = units["pre_exposures"].where(units["pre_exposures"] > 0)  # NaN where none: no 0/0 warning
    units["pre_ctr"] = units["pre_clicks"] / seen
    return units


def _empty_units(*, pre: bool) -> pd.DataFrame:
    import pandas as pd

    columns = list(UNIT_COLUMNS) + (list(PRE_COLUMNS) if pre else [])
    dtypes = {"member_id": "object", "arm": "object", "ctr": "float64", "pre_ctr": "float64",
              "first_exposure": "datetime64[us, UTC]"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "int64")) for c in columns})


def _experiment(workspace: Any, experiment: Any) -> Any:
    if hasattr(experiment, "model") and hasattr(experiment, "arms"):
        return experiment
    from proml_lab.experiments.store import ExperimentStore

    return ExperimentStore(workspace).get(str(experiment))


def _world(workspace: Any) -> Any:
    from proml_lab.worlds.world import World

    path = Path(workspace.lake) / "world"
    return World(path) if (path / "world.json").exists() else None


def _utc(value: Any) -> Any:
    import pandas as pd

    ts = pd.Timestamp(value.isoformat() if isinstance(value, dt.datetime) else value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
