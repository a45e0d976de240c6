"""Offline/online consistency: does the online store serve what the offline pipeline computed?

A feature is materialized once offline and pushed online, so the two should agree; a broken push, a
partial write, a hand-edited key or a store restored from an old snapshot makes them disagree silently
(the model then scores on values it never trained on). :func:`check_consistency` samples keys of an entity
and compares, per feature:

- ``match`` / ``mismatch``: both sides hold the key; numbers agree within ``tolerance`` (absolute and
  relative, ``numpy.isclose``), categories and text exactly, vectors when their largest absolute
  difference is within ``tolerance``; a null on one side only is a mismatch;
- ``only_offline``: the offline table has a value for the key, the online store does not;
- ``only_online``: the online store has the key, the offline table has no value for it;
- ``distance``: PSI (numbers) or Jensen–Shannon distance (categories, text) between the online and the
  offline values of the sample (:mod:`proml_lab.health.drift`).

``mismatch_rate = (mismatch + only_offline + only_online) / sampled``; a feature whose rate is above
:attr:`ConsistencyThresholds.mismatch_rate` (default 0.01), or whose distance is above
:attr:`ConsistencyThresholds.distance` (default 0.2), has status ``alert``.

**The moment compared.** The online store holds, for each key, the value in force at the moment its
anchor was materialized (``materialize_online(as_of=...)``), stamped with the event time of that value.
Offline values are read *as of the newest event time the materialization pushed* (recorded in the
catalog), not as of each online value's own event time: as of its own time the offline value equals
the online one by construction, so a key the store missed an update for (stale online) would pass.
No key has an offline row between that newest event time and the materialization's ``as_of`` (it would
have been pushed and be the newest), so this moment is exactly the one the store reflects; sliding-window
change points after it (events leaving a window later) are not read. ``as_of=`` overrides it.

>>> report = check_consistency(ws, "member", sample=1000)          # doctest: +SKIP
>>> report.table[["feature", "mismatch", "only_offline", "status"]]  # doctest: +SKIP
>>> alert(report, webhook=Webhook(url))                             # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from proml_lab.health import HealthError

__all__ = ["ConsistencyReport", "ConsistencyThresholds", "alert", "check_consistency", "online_entities",
           "run_consistency_job"]

_COLUMNS = ["feature", "anchor", "type", "sampled", "match", "mismatch", "only_offline", "only_online",
            "mismatch_rate", "distance", "measure", "status"]


@dataclass(frozen=True)
class ConsistencyThresholds:
    """When a feature's disagreement alerts: ``mismatch_rate`` above 0.01 (1% of the sampled keys) or a
    distribution ``distance`` (PSI / JS) above 0.2; any disagreement at all, or a distance above
    ``distance_warn`` (0.1), is a warning."""

    mismatch_rate: float = 0.01
    distance: float = 0.2
    distance_warn: float = 0.1

    def status(self, rate: float, distance: float) -> str:
        if rate > self.mismatch_rate or (np.isfinite(distance) and distance > self.distance):
            return "alert"
        if rate > 0 or (np.isfinite(distance) and distance > self.distance_warn):
            return "warn"
        return "ok"


@dataclass
class ConsistencyReport:
    """Per-feature comparison of online with offline values for one entity.

    ``table``: one row per feature (columns ``feature, anchor, type, sampled, match, mismatch,
    only_offline, only_online, mismatch_rate, distance, measure, status``); ``mismatches``: one row per
    disagreeing (feature, key) with both values, the online event time and the ``kind`` (``mismatch``,
    ``only_offline``, ``only_online``); ``as_of``: the moment compared, per anchor.
    """

    entity: str
    table: pd.DataFrame
    mismatches: pd.DataFrame
    as_of: dict[str, dt.datetime]
    thresholds: ConsistencyThresholds = field(default_factory=ConsistencyThresholds)
    sample: int = 0

    @property
    def ok(self) -> bool:
        """True when no feature alerts."""
        return not self.failing

    @property
    def failing(self) -> list[str]:
        """Features whose status is ``alert``."""
        return self.table.loc[self.table["status"] == "alert", "feature"].tolist()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``entity, ok, failing, as_of, thresholds, features`` (the table's rows) and
        ``mismatches`` (at most 20 per feature)."""
        rows = self.table.replace({np.nan: None}).to_dict("records")
        sample = self.mismatches.groupby("feature", sort=False).head(20) if len(self.mismatches) else self.mismatches
        return {"entity": self.entity, "ok": self.ok, "failing": self.failing,
                "as_of": {a: t.isoformat() for a, t in self.as_of.items()},
                "thresholds": vars(self.thresholds), "features": rows,
                "mismatches": [{k: _plain(v) for k, v in r.items()} for r in sample.to_dict("records")]}

    def _repr_html_(self) -> str:
        head = (f"<p>Offline/online consistency of <b>{html.escape(self.entity)}</b>: "
                f"{'ok' if self.ok else 'ALERT on ' + html.escape(', '.join(self.failing))} "
                f"({len(self.table)} features; compared as of "
                f"{html.escape(', '.join(f'{a} {t:%Y-%m-%d %H:%M}' for a, t in self.as_of.items()))})</p>")
        styled = self.table.style.apply(
            lambda r: ["background: #fde0e0" if r["status"] == "alert" else
                       "background: #fff4d6" if r["status"] == "warn" else ""] * len(r), axis=1
        ).format({"mismatch_rate": "{:.2%}", "distance": "{:.4f}"}).hide(axis="index")
        return f"<div class='proml-consistency'>{head}{styled.to_html()}</div>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's plain-text display
        p.text(str(self))

    def __str__(self) -> str:
        return (f"{self.entity}: {'ok' if self.ok else 'ALERT on ' + ', '.join(self.failing)}\n"
                + self.table.to_string(index=False))


# -- the check ----------------------------------------------------------------------------------------------


def check_consistency(
    workspace: Any,
    entity: str,
    features: Sequence[str] | None = None,
    *,
    sample: int = 1000,
    keys: Sequence[Any] | None = None,
    as_of: dt.datetime | None = None,
    tolerance: float = 1e-6,
    seed: int = 0,
    thresholds: ConsistencyThresholds | None = None,
) -> ConsistencyReport:
    """Compare a sample of ``entity``'s online feature values with the offline ones (module docstring).

    Parameters
    ----------
    workspace : Workspace
    entity : str
        ``member``, ``job`` ...
    features : list of str, optional
        Stored features of the entity (default: every feature of its anchors materialized online).
    sample : int, default 1000
        Keys drawn (without replacement, ``seed``) from the keys of the offline feature tables.
    keys : list, optional
        Check these keys instead of a sample (e.g. keys seen in serving logs); keys the offline tables
        lack then count as ``only_online`` when the store has them.
    as_of : datetime, optional
        Offline values as of this moment (default: per anchor, the newest event time its last online
        materialization pushed).
    tolerance : float, default 1e-6
        Absolute and relative tolerance for numbers and vectors.
    seed : int, default 0
    thresholds : ConsistencyThresholds, optional

    Returns
    -------
    ConsistencyReport
    """
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise HealthError(f"The 'sample' parameter of check_consistency must be an int in [1, inf). "
                          f"Got {sample!r} instead.")
    thresholds = thresholds or ConsistencyThresholds()
    catalog = workspace.features.catalog
    by_anchor = _features_by_anchor(catalog, entity, features)
    rng = np.random.default_rng(seed)
    rows, bad, moments = [], [], {}
    for anchor, names in by_anchor.items():
        moment = _utc(as_of) if as_of is not None else _materialized_moment(catalog, anchor)
        moments[anchor] = moment
        offline = workspace.features.latest_values(entity, names, as_of=moment)
        key_column = offline.column_names[0]
        universe = _offline_keys(workspace, anchor, key_column)
        chosen = (np.asarray(list(keys)) if keys is not None else
                  rng.choice(universe, size=min(sample, len(universe)), replace=False) if len(universe) else universe)
        chosen = np.sort(np.asarray(chosen, dtype=universe.dtype if len(universe) else None))
        got = workspace.features.online_store.read(entity, catalog.online_group(anchor), chosen, names)
        have = _align(offline, key_column, chosen)
        for name in names:
            rec = catalog.feature(name)
            row, wrong = _compare(rec, chosen, have[0], have[1][name], got, tolerance)
            row.update(feature=name, anchor=anchor, type=rec.type)
            row["status"] = thresholds.status(row["mismatch_rate"], row["distance"])
            rows.append(row)
            bad.append(wrong)
    table = pd.DataFrame(rows, columns=_COLUMNS)
    columns = ["feature", "key", "kind", "offline", "online", "online_event_ts"]
    mismatches = pd.DataFrame({c: [v for b in bad for v in b[c].tolist()] for c in columns}, columns=columns)
    return ConsistencyReport(entity, table, mismatches, moments, thresholds, sample)


def _features_by_anchor(catalog: Any, entity: str, features: Sequence[str] | None) -> dict[str, list[str]]:
    if features is None:
        anchors = [a for a in catalog.definitions("anchor")
                   if a.entity == entity and a.online and catalog.online_group(a.name)]
        if not anchors:
            raise HealthError(f"Entity {entity!r} has no anchor materialized online; nothing to compare "
                              "(run `proml features materialize --online`).")
        return {a.name: [f.name for f in a.all_features] for a in anchors}
    out: dict[str, list[str]] = {}
    for rec in catalog.resolve(list(features)):
        if rec.entity != entity:
            raise HealthError(f"Feature {rec.name!r} belongs to entity {rec.entity!r}, not {entity!r}.")
        if rec.kind == "derived":
            raise HealthError(f"{rec.name!r} is a derived feature, computed from its inputs by the same "
                              f"function on both sides; check its inputs ({', '.join(rec.definition['inputs'])}).")
        if catalog.online_group(rec.anchor) is None:
            raise HealthError(f"Feature {rec.name!r} is not online (anchor {rec.anchor!r} was never materialized "
                              f"online); run `proml features materialize --online --anchor {rec.anchor}`.")
        out.setdefault(str(rec.anchor), []).append(rec.name)
    return out


def _materialized_moment(catalog: Any, anchor: str) -> dt.datetime:
    """The newest event time the anchor's last online materialization pushed (see the module docstring)."""
    first = catalog.anchor(anchor).all_features[0].name
    online = catalog.describe(first)["online"]
    stamp = online["max_event_ts"] or online["materialized_at"]
    if stamp is None:
        raise HealthError(f"Anchor {anchor!r} was never materialized online.")
    return _utc(stamp)


def _offline_keys(workspace: Any, anchor: str, key: str) -> np.ndarray:
    """Every key of the anchor's offline feature table (the population the sample is drawn from)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    data = ds.dataset(workspace.lake / "features" / anchor, format="parquet", partitioning="hive")
    return np.sort(pc.unique(data.to_table(columns=[key])[key]).to_numpy(zero_copy_only=False))


def _align(offline: Any, key: str, chosen: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Offline rows in the order of *chosen*: (found mask, feature name -> column, missing rows null)."""
    import pyarrow as pa

    keys = offline[key].to_numpy(zero_copy_only=False)
    at = np.minimum(np.searchsorted(keys, chosen), max(len(keys) - 1, 0))
    found = (keys[at] == chosen) if len(keys) else np.zeros(len(chosen), dtype=bool)
    taken = offline.take(pa.array(at, mask=~found))
    return found, {n: taken[n] for n in offline.column_names if n != key}


def _compare(rec: Any, keys: np.ndarray, off_found: np.ndarray, off_col: Any, got: Any,
             tolerance: float) -> tuple[dict[str, Any], pd.DataFrame]:
    """Counts, rate and distance for one feature, and its disagreeing keys."""
    from proml_lab.health.drift import js_distance, psi

    on_col = got.columns[rec.name]
    off_present, off_values = _values(rec, off_col)
    on_present, on_values = _values(rec, on_col)
    off_has = off_found & off_present  # a key with only nulls offline holds no value there
    on_has = got.found & on_present
    both = off_found & got.found
    if rec.type == "vector":
        with np.errstate(invalid="ignore"):
            diff = np.nanmax(np.abs(off_values - on_values), axis=1, initial=0.0)
        equal = (off_present == on_present) & (~off_present | (diff <= tolerance))
    elif rec.type in ("numeric", "binary"):
        equal = np.isclose(off_values, on_values, rtol=tolerance, atol=tolerance, equal_nan=True)
    else:
        equal = np.array([a == b for a, b in zip(off_values, on_values, strict=True)], dtype=bool)
    mismatch = both & ~equal
    only_offline = off_has & ~got.found
    only_online = on_has & ~off_found
    sampled = len(keys)
    bad = int(mismatch.sum() + only_offline.sum() + only_online.sum())
    distance, measure = np.nan, None
    if off_has.any() and on_has.any() and rec.type != "vector":
        if rec.type in ("numeric", "binary"):
            distance, measure = psi(off_values[off_has], on_values[on_has]), "psi"
        else:
            distance, measure = js_distance(np.asarray(off_values, dtype=object)[off_has],
                                            np.asarray(on_values, dtype=object)[on_has]), "js"
    row = {"sampled": sampled, "match": int((both & equal).sum()), "mismatch": int(mismatch.sum()),
           "only_offline": int(only_offline.sum()), "only_online": int(only_online.sum()),
           "mismatch_rate": bad / sampled if sampled else 0.0, "distance": float(distance), "measure": measure}
    kind = np.where(mismatch, "mismatch", np.where(only_offline, "only_offline", "only_online"))
    pick = np.flatnonzero(mismatch | only_offline | only_online)
    wrong = pd.DataFrame({
        "feature": rec.name, "key": keys[pick], "kind": kind[pick],
        "offline": [_cell(off_values[i], off_found[i]) for i in pick],
        "online": [_cell(on_values[i], got.found[i]) for i in pick],
        "online_event_ts": [pd.Timestamp(int(t), unit="us", tz="UTC") if got.found[i] else pd.NaT
                            for i, t in zip(pick, got.event_ts_us[pick], strict=True)],
    })
    return row, wrong


def _values(rec: Any, column: Any) -> tuple[np.ndarray, Any]:
    """(value present mask, values): float64 for numbers, (n, d) float for vectors, objects for strings."""
    import pyarrow as pa

    if rec.type == "vector":
        if isinstance(column, (pa.Array, pa.ChunkedArray)):
            rows = column.to_pylist()
            dim = rec.dimension or max((len(r) for r in rows if r is not None), default=0)
            column = np.array([r if r is not None else [np.nan] * dim for r in rows], dtype=np.float64)
        arr = np.asarray(column, dtype=np.float64).reshape(len(column), -1)
        return ~np.isnan(arr).all(axis=1), arr
    if rec.type in ("numeric", "binary"):
        if isinstance(column, (pa.Array, pa.ChunkedArray)):
            column = column.to_numpy(zero_copy_only=False)
        arr = np.asarray(pd.to_numeric(pd.Series(column), errors="coerce"), dtype=np.float64)
        return ~np.isnan(arr), arr
    values = column.to_pylist() if isinstance(column, (pa.Array, pa.ChunkedArray)) else list(column)
    return np.array([v is not None for v in values], dtype=bool), np.array(values, dtype=object)


def _cell(value: Any, found: bool) -> Any:
    if not found:
        return None
    return value.tolist() if isinstance(value, np.ndarray) else value


def _plain(value: Any) -> Any:
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _utc(moment: Any) -> dt.datetime:
    t = pd.Timestamp(moment)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


# -- alerts and the scheduled job ------------------------------------------------------------------------------


def alert(report: ConsistencyReport, store: Any = None, webhook: Any = None, *, workspace: Any = None
          ) -> list[int]:
    """Record one alert per failing feature of *report* (kind ``consistency``) and send it to *webhook*.

    ``store`` is an :class:`~proml_lab.health.alerts.AnomalyStore` (default: the workspace's; pass
    ``workspace`` then). Returns the alert ids (empty when the report is ok). Webhook failures are
    recorded on the alert, never raised.
    """
    from proml_lab.health.alerts import AnomalyStore

    if store is None:
        if workspace is None:
            raise HealthError("alert needs an AnomalyStore (store=...) or the workspace (workspace=...).")
        store = AnomalyStore(workspace)
    ids = []
    table = report.table.set_index("feature")
    for feature in report.failing:
        r = table.loc[feature]
        keys = report.mismatches.loc[report.mismatches["feature"] == feature, "key"].head(20).tolist()
        payload = {"entity": report.entity, "feature": feature, "anchor": r["anchor"], "sampled": int(r["sampled"]),
                   "mismatch": int(r["mismatch"]), "only_offline": int(r["only_offline"]),
                   "only_online": int(r["only_online"]), "mismatch_rate": float(r["mismatch_rate"]),
                   "distance": None if pd.isna(r["distance"]) else float(r["distance"]),
                   "as_of": report.as_of[r["anchor"]].isoformat(), "keys": [_plain(k) for k in keys]}
        message = (f"{feature}: {r['mismatch_rate']:.2%} of {int(r['sampled'])} sampled {report.entity} keys disagree "
                   f"online vs offline ({int(r['mismatch'])} mismatch, {int(r['only_offline'])} only offline, "
                   f"{int(r['only_online'])} only online)")
        ids.append(store.record_alert("consistency", f"{report.entity}.{feature}", message, payload))
    if webhook is not None and ids:
        store.notify_alerts(ids, webhook)
    return ids


def online_entities(workspace: Any) -> list[str]:
    """Entities with at least one anchor materialized online, sorted."""
    catalog = workspace.features.catalog
    return sorted({a.entity for a in catalog.definitions("anchor") if a.online and catalog.online_group(a.name)})


def run_consistency_job(workspace: Any, *, entities: Sequence[str] | None = None, sample: int = 1000,
                        webhook: Any = None, tolerance: float = 1e-6, seed: int = 0,
                        thresholds: ConsistencyThresholds | None = None) -> list[ConsistencyReport]:
    """The scheduled check (``proml health consistency`` from cron or a papermill notebook): every entity
    with online anchors (or ``entities``), alerts recorded in the workspace's alert store and sent to
    ``webhook`` (a URL or a :class:`~proml_lab.health.alerts.Webhook`)."""
    from proml_lab.health.alerts import AnomalyStore, Webhook

    store = AnomalyStore(workspace)
    hook = Webhook(webhook) if isinstance(webhook, str) else webhook
    reports = []
    for entity in entities or online_entities(workspace):
        report = check_consistency(workspace, entity, sample=sample, tolerance=tolerance, seed=seed,
                                   thresholds=thresholds)
        alert(report, store, hook)
        reports.append(report)
    return reports
