"""The workspace's experiments: define, start, ramp, stop; stored in SQLite (``<workspace>/experiments.db``).

Every write is one ``BEGIN IMMEDIATE`` transaction, so two processes creating experiments in one layer at
the same moment are serialized and can never be given overlapping bucket ranges. The database stays in
rollback-journal mode on purpose: SQLite then bumps the *file change counter* (4 bytes at offset 24 of the
file) on every commit, which :meth:`ExperimentStore.change_token` reads with one ``stat`` and one small
read, so the ranking service notices a ramp or a stop without querying the database per request.

Bucket ranges are reserved at :meth:`~ExperimentStore.create` and stay reserved after
:meth:`~ExperimentStore.stop`: the members a stopped experiment served are then never given to another
experiment of the layer, and its analysis (who was in which arm) stays reproducible from its definition.
Only :meth:`~ExperimentStore.delete` frees a range.

>>> store = ExperimentStore(ws)                                                         # doctest: +SKIP
>>> store.create("jobs-ab", "jobs", [Arm("control", "champion"), Arm("treatment", "challenger")],
...              share=50, traffic=5)                                                    # doctest: +SKIP
>>> store.start("jobs-ab"); store.ramp("jobs-ab", 50)                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import math
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from proml_lab.errors import ExperimentError
from proml_lab.experiments.model import ALIAS, BUCKETS, NAME, STATUSES, Arm, Experiment, percent_to_buckets

__all__ = ["ExperimentStore", "experiments_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    layer TEXT NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS experiments_layer ON experiments (layer, lo);
CREATE INDEX IF NOT EXISTS experiments_model ON experiments (model, status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('changes', 0);
"""


def experiments_path(workspace: Any) -> Path:
    """Where a workspace's experiment definitions live."""
    root = workspace if isinstance(workspace, (str, os.PathLike)) else workspace.root
    return Path(root) / "experiments.db"


class ExperimentStore:
    """Create, start, ramp, stop, list and delete the A/B experiments of a workspace.

    Parameters
    ----------
    workspace
        A :class:`~proml_lab.workspace.Workspace` (or its root folder).
    """

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace
        self.path = experiments_path(workspace)
        self._ready = False

    # -- verbs -----------------------------------------------------------------------------------------
    def create(self, name: str, model: str, arms: Sequence[Arm | Any], *, layer: str = "default",
               share: float = 100.0, traffic: float = 5.0, salt: str | None = None,
               description: str = "") -> Experiment:
        """Define a draft experiment and reserve ``share`` percent of ``layer``'s buckets for it.

        Parameters
        ----------
        name, model
            The experiment's unique name and the registered model it tests.
        arms
            At least two :class:`Arm` (or ``"name=alias[:weight]"``); the first is the control.
        layer
            Experiments of one layer never share a member; different layers are independent.
        share
            Percent of the layer reserved (the most the experiment can ramp to); the first free slice of that
            size is taken.
        traffic
            Percent of the layer's members in the experiment once it starts (at most ``share``).
        salt
            Key of the arm hash (default: a fresh random one, so a re-run of an experiment re-shuffles arms).

        Examples
        --------
        >>> ExperimentStore(ws).create("ab", "jobs", ["control=champion", "treatment=challenger"],
        ...                            share=20, traffic=5)                               # doctest: +SKIP
        """
        experiment = Experiment(name=name, model=model, arms=list(arms), layer=layer,
                                salt=salt or uuid.uuid4().hex[:16], traffic=float(traffic),
                                share=float(share), description=description or "", created_at=_now())
        _validate(experiment)
        size = percent_to_buckets(experiment.share)
        with self._write() as con:
            if con.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone():
                raise ExperimentError(f"Experiment {name!r} already exists; pick another name or delete it "
                                      f"first (`proml experiment show {name}`).", experiment=name)
            taken = [(lo, hi, other) for lo, hi, other in con.execute(
                "SELECT lo, hi, name FROM experiments WHERE layer = ? ORDER BY lo", (layer,))]
            lo = _first_fit(taken, size)
            if lo is None:
                raise ExperimentError(_no_room(name, layer, experiment.share, taken), experiment=name,
                                      known=[t[2] for t in taken])
            experiment.bucket_range = (lo, lo + size)
            self._put(con, experiment, insert=True)
        return experiment

    def get(self, name: str) -> Experiment:
        """The experiment called ``name`` (an error lists the known ones and the closest names)."""
        with self._read() as con:
            row = con.execute("SELECT doc FROM experiments WHERE name = ?", (name,)).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT name FROM experiments ORDER BY name")]
        if row is None:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ExperimentError(f"Unknown experiment {name!r}.{hint} Known: {', '.join(known) or 'none'} "
                                  "(`proml experiment list`).", experiment=name, known=known)
        return Experiment.from_dict(json.loads(row[0]))

    def list(self, model: str | None = None, status: str | None = None) -> list[Experiment]:
        """Every experiment (of ``model``, with ``status``), by creation time."""
        if status is not None and status not in STATUSES:
            raise ExperimentError(f"The 'status' parameter of ExperimentStore.list must be one of "
                                  f"{', '.join(STATUSES)}. Got {status!r} instead.")
        query, args = "SELECT doc FROM experiments WHERE 1=1", []
        if model is not None:
            query, args = query + " AND model = ?", [*args, model]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with self._read() as con:
            docs = [json.loads(r[0]) for r in con.execute(query, args)]
        return sorted((Experiment.from_dict(d) for d in docs), key=lambda e: (e.created_at or "", e.name))

    def running(self, model: str) -> list[Experiment]:
        """The running experiments of ``model``, earliest started first (the order the router tries them)."""
        return sorted(self.list(model=model, status="running"), key=lambda e: (e.started_at or "", e.name))

    def start(self, name: str) -> Experiment:
        """Start a draft: every arm's alias must be deployed for the model (checked with ``resolve``)."""
        from proml_lab.deploy.deployer import resolve

        with self._write() as con:
            experiment = self._get(con, name)
            if experiment.status != "draft":
                raise ExperimentError(f"Experiment {name!r} is {experiment.status}; only a draft can start "
                                      "(a stopped experiment stays stopped: create a new one to run it again).",
                                      experiment=name)
            for arm in experiment.arms:
                if resolve(self.workspace, experiment.model, arm.alias) is None:
                    raise ExperimentError(
                        f"Experiment {name!r} cannot start: arm {arm.name!r} routes to alias {arm.alias!r}, "
                        f"which model {experiment.model!r} has no deployment for. Deploy it first: "
                        f"`proml deploy {experiment.model} --version <version> --alias {arm.alias}`.",
                        experiment=name)
            experiment.status, experiment.started_at = "running", _now()
            experiment.ramp.append({"at": experiment.started_at, "traffic": experiment.traffic})
            self._put(con, experiment)
        return experiment

    def ramp(self, name: str, traffic: float) -> Experiment:
        """Set the percent of the layer's members in the experiment (up to its ``share``); recorded in ``ramp``.

        A ramp up only adds members and a ramp down only removes some: nobody ever changes arm.
        """
        with self._write() as con:
            experiment = self._get(con, name)
            if experiment.status == "stopped":
                raise ExperimentError(f"Experiment {name!r} is stopped and cannot be ramped; create a new one.",
                                      experiment=name)
            _check_percent("traffic", traffic, "ExperimentStore.ramp")
            if percent_to_buckets(traffic) > percent_to_buckets(experiment.share):
                raise ExperimentError(
                    f"Experiment {name!r} can ramp to at most its share of layer {experiment.layer!r}, "
                    f"{experiment.share:g}%; got {float(traffic):g}%. Create it again with a larger --share.",
                    experiment=name)
            experiment.traffic = float(traffic)
            if experiment.status == "running":
                experiment.ramp.append({"at": _now(), "traffic": experiment.traffic})
            self._put(con, experiment)
        return experiment

    def stop(self, name: str) -> Experiment:
        """Stop a running experiment: requests go back to the default alias. Its bucket range stays reserved
        (so the members it served are never reused in the layer and its analysis stays reproducible)."""
        with self._write() as con:
            experiment = self._get(con, name)
            if experiment.status != "running":
                raise ExperimentError(f"Experiment {name!r} is {experiment.status}, not running; nothing to stop"
                                      + (" (delete a draft instead)." if experiment.status == "draft" else "."),
                                      experiment=name)
            experiment.status, experiment.stopped_at = "stopped", _now()
            experiment.ramp.append({"at": experiment.stopped_at, "traffic": 0.0})
            self._put(con, experiment)
        return experiment

    def delete(self, name: str) -> None:
        """Delete a draft or stopped experiment and free its bucket range."""
        with self._write() as con:
            experiment = self._get(con, name)
            if experiment.status == "running":
                raise ExperimentError(f"Experiment {name!r} is running; stop it before deleting it.",
                                      experiment=name)
            con.execute("DELETE FROM experiments WHERE name = ?", (name,))
            self._bump(con)

    def layers(self) -> dict[str, dict[str, Any]]:
        """Per layer: its experiments' ranges and the free bucket ranges left."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.list():
            out.setdefault(e.layer, {"experiments": [], "free": []})["experiments"].append(
                {"name": e.name, "bucket_range": list(e.bucket_range), "status": e.status})
        for layer in out.values():
            taken = sorted((x["bucket_range"][0], x["bucket_range"][1], x["name"]) for x in layer["experiments"])
            layer["free"] = [list(g) for g in _gaps(taken)]
        return out

    def change_token(self) -> tuple[int, ...] | None:
        """A cheap token that changes whenever any experiment changes (None when none was ever defined).

        One ``os.stat`` plus a 4-byte read of SQLite's file change counter (rollback-journal mode bumps it on
        every commit; the inode and size catch a replaced file).
        """
        try:
            st = os.stat(self.path)
            with open(self.path, "rb") as fh:
                fh.seek(24)
                counter = fh.read(4)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, int.from_bytes(counter, "big"))

    def changes(self) -> int:
        """How many writes the store has committed (an exact, SQL-read change counter)."""
        with self._read() as con:
            return int(con.execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()[0])

    # -- storage ---------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        if not self._ready:
            con.execute("PRAGMA journal_mode=DELETE")  # the change counter the router watches needs it
            con.executescript(_SCHEMA)
            self._ready = True
        return con

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")  # one writer at a time: range allocation cannot race
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    def _get(self, con: sqlite3.Connection, name: str) -> Experiment:
        row = con.execute("SELECT doc FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            self.get(name)  # raises the error with the known names
        return Experiment.from_dict(json.loads(row[0]))

    def _put(self, con: sqlite3.Connection, e: Experiment, *, insert: bool = False) -> None:
        values = (e.model, e.layer, e.bucket_range[0], e.bucket_range[1], e.status, json.dumps(e.to_dict()), e.name)
        if insert:
            con.execute("INSERT INTO experiments (model, layer, lo, hi, status, doc, name) VALUES (?,?,?,?,?,?,?)",
                        values)
        else:
            con.execute("UPDATE experiments SET model=?, layer=?, lo=?, hi=?, status=?, doc=? WHERE name=?", values)
        self._bump(con)

    @staticmethod
    def _bump(con: sqlite3.Connection) -> None:
        con.execute("UPDATE meta SET value = value + 1 WHERE key = 'changes'")


# ------------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _check_percent(what: str, value: Any, where: str, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if low_open else value >= 0) and value <= 100
    if not ok:
        interval = "(0, 100]" if low_open else "[0, 100]"
        raise ExperimentError(f"The '{what}' parameter of {where} must be a percent in {interval}. "
                              f"Got {value!r} instead.")


def _validate(e: Experiment) -> None:
    where = "ExperimentStore.create"
    for what, value in (("name", e.name), ("model", e.model), ("layer", e.layer)):
        if not isinstance(value, str) or not NAME.match(value):
            raise ExperimentError(f"The '{what}' parameter of {where} must be a name of letters, digits, '_', "
                                  f"'.', '-'. Got {value!r} instead.", experiment=e.name)
    _check_percent("share", e.share, where, low_open=True)
    _check_percent("traffic", e.traffic, where)
    if percent_to_buckets(e.share) == 0:
        raise ExperimentError(f"The 'share' parameter of {where} must be at least 0.01%. Got {e.share!r}.")
    if percent_to_buckets(e.traffic) > percent_to_buckets(e.share):
        raise ExperimentError(f"The 'traffic' of experiment {e.name!r} ({e.traffic:g}%) cannot exceed its share "
                              f"of the layer ({e.share:g}%).", experiment=e.name)
    if len(e.arms) < 2:
        raise ExperimentError(f"Experiment {e.name!r} needs at least two arms (a control first, then a "
                              f"treatment); got {len(e.arms)}.", experiment=e.name)
    names = [a.name for a in e.arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ExperimentError(f"Experiment {e.name!r}: arm names must be unique; repeated: {', '.join(dupes)}.",
                              experiment=e.name)
    for arm in e.arms:
        if not NAME.match(arm.name):
            raise ExperimentError(f"Experiment {e.name!r}: arm name {arm.name!r} must be letters, digits, '_', "
                                  "'.', '-'.", experiment=e.name)
        if (not ALIAS.match(arm.alias) or arm.alias == "latest"
                or (arm.alias[:1] == "v" and arm.alias[1:].isdigit())):
            raise ExperimentError(f"Experiment {e.name!r}: arm {arm.name!r} has alias {arm.alias!r}, which is not "
                                  "a serving alias: use letters, digits, '_' and '-' (champion, challenger), not "
                                  "'latest' or 'v<number>'.", experiment=e.name)
        if not (isinstance(arm.weight, (int, float)) and math.isfinite(arm.weight) and arm.weight > 0):
            raise ExperimentError(f"Experiment {e.name!r}: arm {arm.name!r} must have a weight > 0. Got "
                                  f"{arm.weight!r} instead.", experiment=e.name)


def _gaps(taken: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    gaps, at = [], 0
    for lo, hi, _ in sorted(taken):
        if lo > at:
            gaps.append((at, lo))
        at = max(at, hi)
    if at < BUCKETS:
        gaps.append((at, BUCKETS))
    return gaps


def _first_fit(taken: list[tuple[int, int, str]], size: int) -> int | None:
    return next((lo for lo, hi in _gaps(taken) if hi - lo >= size), None)


def _no_room(name: str, layer: str, share: float, taken: list[tuple[int, int, str]]) -> str:
    others = ", ".join(f"{n} (buckets {lo}-{hi - 1}, {(hi - lo) * 100 / BUCKETS:g}%)" for lo, hi, n in taken)
    free = _gaps(taken)
    largest = max((hi - lo for lo, hi in free), default=0) * 100 / BUCKETS
    spaces = ", ".join(f"{lo}-{hi - 1} ({(hi - lo) * 100 / BUCKETS:g}%)" for lo, hi in free) or "none"
    return (f"Experiment {name!r} needs {share:g}% of layer {layer!r}, but the layer has no free range that large "
            f"(largest free: {largest:g}%). Experiments in the layer: {others}. Free buckets: {spaces}. Use a "
            f"smaller --share, another --layer, or delete a stopped experiment to free its range.")
