"""Authoring checks: will the features a model reads be there — online, fresh, and over its training window?

Pro-ML's rule is that health work done early (while the model is written) is the cheapest. Before a
model trains, is published or is shown with ``%%quasar --check-online``, :func:`authoring_checks` asks, for
every marketplace feature the program reads:

``exists``
    the feature is in the catalog (else an error with the closest names, as the Quasar checker says);
``online``
    it is materialized to the online store (a derived feature: every input is), else an error naming the
    anchor to materialize; request-scope features come with the request and are skipped;
``freshness``
    its anchor was materialized online within the feature's freshness SLA (a warning when not: the model
    still runs, on old values);
``coverage``
    the anchor's offline feature table has values over the training window (the program's
    ``TRAINING CONFIG training_data`` time range unless given): an error when no label of the window can
    get a value, a warning when part of the window is left without one.

Each problem says what to do (``fix``). The report is a value: show it in a notebook, print it in the
CLI, or :meth:`CheckReport.raise_for_errors`.

>>> report = authoring_checks(ws, open("ranker.quasar").read())      # doctest: +SKIP
>>> report.ok, report.to_frame()                                     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from proml_lab.errors import UnknownFeatureError
from proml_lab.health import HealthError

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.quasar.ir import IR

__all__ = ["CHECKS", "ONLINE_CHECKS", "TRAINING_CHECKS", "CheckFailedError", "CheckReport", "Problem", "authoring_checks",
           "features_of_run"]

CHECKS = ("exists", "online", "freshness", "coverage")
ONLINE_CHECKS = ("exists", "online", "freshness")
TRAINING_CHECKS = ("exists", "coverage")
Severity = Literal["error", "warning"]
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one feature: which ``check`` found it, how bad, what it is and what to do."""

    feature: str
    check: str
    severity: Severity
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.feature}: {self.message} Fix: {self.fix}"


@dataclass
class CheckReport:
    """What :func:`authoring_checks` found: ``problems`` (errors first), the ``features`` checked and the
    training ``window`` used for coverage (``None`` when coverage was not checked)."""

    program: str | None
    features: list[str]
    checks: tuple[str, ...]
    problems: list[Problem] = field(default_factory=list)
    window: tuple[dt.datetime, dt.datetime] | None = None

    @property
    def ok(self) -> bool:
        """True when no problem is an error (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def to_frame(self) -> pd.DataFrame:
        """One row per problem: feature, check, severity, message, fix."""
        import pandas as pd

        return pd.DataFrame([asdict(p) for p in self.problems],
                            columns=["feature", "check", "severity", "message", "fix"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``ok, program, features, checks, window, problems``."""
        window = None if self.window is None else [t.isoformat() for t in self.window]
        return {"ok": self.ok, "program": self.program, "features": list(self.features),
                "checks": list(self.checks), "window": window, "problems": [asdict(p) for p in self.problems]}

    def summary(self) -> str:
        """One line: how many features were checked and what was found."""
        what = self.program or "the program"
        if not self.problems:
            return f"{what}: {len(self.features)} feature(s) pass the {', '.join(self.checks)} checks."
        return (f"{what}: {len(self.errors)} error(s), {len(self.warnings)} warning(s) over "
                f"{len(self.features)} feature(s).")

    def __str__(self) -> str:
        return "\n".join([self.summary(), *(f"  {p}" for p in self.problems)])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's plain-text display
        p.text(str(self))

    def raise_for_errors(self) -> CheckReport:
        """Raise :class:`CheckFailedError` listing every error (with its fix); return the report if none."""
        if self.errors:
            raise CheckFailedError(self)
        return self

    def _repr_html_(self) -> str:
        colour = {"error": "#b00020", "warning": "#a15c00"}
        head = html.escape(self.summary())
        if not self.problems:
            return f"<div class='proml-checks'><p>&#10004; {head}</p></div>"
        rows = "".join(
            f"<tr><td><code>{html.escape(p.feature)}</code></td><td>{html.escape(p.check)}</td>"
            f"<td style='color:{colour[p.severity]}'>{p.severity}</td><td>{html.escape(p.message)}</td>"
            f"<td>{html.escape(p.fix)}</td></tr>" for p in self.problems)
        return (f"<div class='proml-checks'><p>{head}</p><table><thead><tr><th>feature</th><th>check</th>"
                f"<th>severity</th><th>problem</th><th>fix</th></tr></thead><tbody>{rows}</tbody></table></div>")


class CheckFailedError(HealthError):
    """Authoring checks found errors; ``report`` holds them all (the message lists each with its fix)."""

    def __init__(self, report: CheckReport) -> None:
        lines = [f"{len(report.errors)} feature problem(s) in {report.program or 'the program'}:"]
        lines += [f"- {p.feature}: {p.message} Fix: {p.fix}" for p in report.errors]
        super().__init__("\n".join(lines))
        self.report = report


# -- the verb -------------------------------------------------------------------------------------------


def authoring_checks(
    workspace: Any,
    program_or_ir: Any,
    *,
    training_window: tuple[dt.datetime, dt.datetime] | None = None,
    training_data: str | None = None,
    checks: Sequence[str] = CHECKS,
    now: dt.datetime | None = None,
    filename: str = "<quasar>",
) -> CheckReport:
    """Check every marketplace feature a program reads (see the module docstring for the checks).

    Parameters
    ----------
    workspace : Workspace
        Its catalog, offline feature tables and lake are read; nothing is written.
    program_or_ir
        Quasar source text, a ``.quasar`` path, an :class:`~proml_lab.quasar.ir.IR`, anything with an
        ``ir`` (``%%quasar`` model, TrainedModel, Bundle), a manifest mapping with ``features``, or a
        list of feature names (no training window then, unless given).
    training_window : (start, end), optional
        The label times to cover; default: the min and max timestamp of the training data.
    training_data : str, optional
        Table under the lake overriding the program's ``TRAINING CONFIG training_data``.
    checks : sequence of str, default all
        Any of ``"exists", "online", "freshness", "coverage"``.
    now : datetime, optional
        The moment freshness is judged at (default: now).
    filename : str, default "<quasar>"
        The program's name in Quasar error messages.

    Returns
    -------
    CheckReport

    Examples
    --------
    >>> authoring_checks(ws, ir, checks=("exists", "online")).raise_for_errors()   # doctest: +SKIP
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise HealthError(f"The 'checks' parameter of authoring_checks must be a subset of {CHECKS}. "
                          f"Got {list(checks)!r} instead.")
    catalog = workspace.features.catalog
    name, ir, features, problems = _features(workspace, program_or_ir, filename)
    report = CheckReport(name, features, tuple(checks), problems)
    known = [f for f in features if f not in {p.feature for p in problems}]
    if "exists" not in checks:
        report.problems = []
    if {"online", "freshness"} & set(checks):
        report.problems += _online(catalog, known, checks, now or dt.datetime.now(dt.timezone.utc))
    if "coverage" in checks:
        window = training_window or _label_window(workspace, ir, training_data)
        if window is not None:
            report.window = (_utc(window[0]), _utc(window[1]))
            report.problems += _coverage(workspace, catalog, known, report.window)
    report.problems.sort(key=lambda p: (p.severity != "error", CHECKS.index(p.check)))
    return report


def features_of_run(workspace: Any, run_id: str) -> list[str]:
    """The features of the model bundle logged to MLflow run ``run_id`` (what ``proml publish`` publishes)."""
    from proml_lab.deploy.registry import ModelRegistry

    return list(ModelRegistry(workspace)._run_manifest(run_id).get("features", []))


# -- steps ------------------------------------------------------------------------------------------------


def _features(workspace: Any, program: Any, filename: str = "<quasar>") -> tuple[str | None, IR | None, list[str], list[Problem]]:
    """(program name, IR or None, features read, problems of unknown features)."""
    from proml_lab.quasar.ir import IR

    catalog = workspace.features.catalog
    ir: IR | None = None
    if isinstance(program, IR):
        ir = program
    elif isinstance(getattr(program, "ir", None), IR):
        ir = program.ir
    elif isinstance(program, Path) or (isinstance(program, str) and program.endswith(".quasar")
                                       and "\n" not in program and Path(program).is_file()):
        return _features(workspace, Path(program).read_text(encoding="utf-8"), str(program))
    elif isinstance(program, str):
        if _RUN_ID.match(program):
            return program, None, *_exists(catalog, features_of_run(workspace, program))
        ir = _compile(program, catalog, filename)
    elif isinstance(program, Mapping):
        return program.get("name"), None, *_exists(catalog, list(program.get("features", [])))
    elif isinstance(program, Sequence):
        return None, None, *_exists(catalog, [str(f) for f in program])
    else:
        raise HealthError(f"authoring_checks takes Quasar source, a .quasar path, an IR, a model with an `ir`, "
                          f"a manifest or a list of feature names; got {type(program).__name__}")
    return ir.name, ir, *_exists(catalog, list(dict.fromkeys(ir.features())))


def _compile(source: str, catalog: Any, filename: str) -> IR:
    """The IR of *source*; an unknown feature is left to the ``exists`` check (all of them reported)."""
    from proml_lab.quasar import QuasarError
    from proml_lab.quasar import compile as compile_program

    try:
        return compile_program(source, catalog=catalog, filename=filename)
    except QuasarError as first:
        if "unknown feature" not in str(first):
            raise
        try:  # inputs trusted as declared: every INPUT is listed, known or not
            return compile_program(source, filename=filename)
        except QuasarError:
            raise first from None


def _exists(catalog: Any, names: list[str]) -> tuple[list[str], list[Problem]]:
    problems = []
    for name in names:
        try:
            catalog.feature(name)
        except UnknownFeatureError as err:
            hint = f" Did you mean: {', '.join(err.suggestions)}?" if err.suggestions else ""
            fix = (f"use {err.suggestions[0]!r}" if err.suggestions else
                   "define it in the marketplace and run `proml features apply`")
            problems.append(Problem(name, "exists", "error", f"not in the feature catalog.{hint}", fix))
    return names, problems


def _online(catalog: Any, names: list[str], checks: Sequence[str], now: dt.datetime) -> list[Problem]:
    problems: list[Problem] = []
    available = catalog.online_availability(names, now=now)
    for name in names:
        rec, state = catalog.feature(name), available[name]
        if rec.entity == "request":
            continue  # request-time features arrive with the request
        anchors = _anchors_of(catalog, rec)
        command = "run `proml features materialize --online " + " ".join(f"--anchor {a}" for a in anchors) + "`"
        if "online" in checks and not state["available"]:
            if not state["serves_online"]:
                where = f"anchor {rec.anchor!r}" if rec.anchor else f"derived feature {name!r}"
                problems.append(Problem(name, "online", "error", f"is not served online ({where} says "
                                        "online: false).", f"set `online: true` on {where}, run "
                                        f"`proml features apply`, then {command}"))
            else:
                problems.append(Problem(name, "online", "error",
                                        "is not materialized to the online store.", command))
        elif "freshness" in checks and state["freshness"] == "stale":
            stale = [(i, s) for i, s in catalog.online_availability(_inputs(catalog, rec), now=now).items()
                     if s["freshness"] == "stale"] if rec.kind == "derived" else [(name, state)]
            sla = rec.freshness_sla or min((catalog.feature(i).freshness_sla for i, _ in stale
                                            if catalog.feature(i).freshness_sla), default=None)
            when = min((s["materialized_at"] for _, s in stale if s["materialized_at"]), default="an unknown time")
            problems.append(Problem(
                name, "freshness", "warning",
                f"was last materialized online at {when}, past its freshness SLA of {_duration(sla)}.",
                f"{command}, and schedule it to run at least every {_duration(sla)}"))
    return problems


def _coverage(workspace: Any, catalog: Any, names: list[str], window: tuple[dt.datetime, dt.datetime]
              ) -> list[Problem]:
    problems: list[Problem] = []
    start, end = window
    ranges: dict[str, tuple[dt.datetime, dt.datetime] | None] = {}
    for name in names:
        rec = catalog.feature(name)
        if rec.entity == "request":
            continue
        for anchor in _anchors_of(catalog, rec):
            if anchor not in ranges:
                ranges[anchor] = _table_range(workspace, anchor)
            span = ranges[anchor]
            fix = f"run `proml features materialize --anchor {anchor} --start {start:%Y-%m-%d}`"
            if span is None:
                problems.append(Problem(name, "coverage", "error", f"anchor {anchor!r} has no offline feature "
                                        "table (never materialized).", fix))
                continue
            first, last = span
            ttl = catalog.anchor(anchor).ttl if rec.kind == "derived" else (rec.ttl or catalog.anchor(anchor).ttl)
            window_text = f"the training window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
            if first > end or last + ttl < start:
                reason = (f"starts at {first:%Y-%m-%d %H:%M}, after" if first > end else
                          f"ends at {last:%Y-%m-%d %H:%M} and its values expire (TTL {_duration(ttl)}) before")
                problems.append(Problem(name, "coverage", "error", f"the offline table of anchor {anchor!r} "
                                        f"{reason} {window_text}: every label would get null.", fix))
            elif first > start:
                problems.append(Problem(name, "coverage", "warning", f"the offline table of anchor {anchor!r} "
                                        f"starts at {first:%Y-%m-%d %H:%M}, inside {window_text}: labels before "
                                        "it get null.", fix))
            elif last + ttl < end:
                problems.append(Problem(name, "coverage", "warning", f"values of anchor {anchor!r} expire "
                                        f"(TTL {_duration(ttl)}) after {last + ttl:%Y-%m-%d %H:%M}, inside "
                                        f"{window_text}: later labels get null.",
                                        f"run `proml features materialize --anchor {anchor}`"))
    return problems


# -- helpers ------------------------------------------------------------------------------------------------


def _inputs(catalog: Any, rec: Any) -> list[str]:
    """The stored features behind *rec* (itself, or a derived feature's inputs, recursively)."""
    if rec.kind != "derived":
        return [rec.name]
    out: list[str] = []
    for name in (rec.definition or {}).get("inputs", []):
        out += [n for n in _inputs(catalog, catalog.feature(name)) if n not in out]
    return out


def _anchors_of(catalog: Any, rec: Any) -> list[str]:
    return list(dict.fromkeys(str(catalog.feature(n).anchor) for n in _inputs(catalog, rec)))


def _table_range(workspace: Any, anchor: str) -> tuple[dt.datetime, dt.datetime] | None:
    """Min and max event time of an anchor's offline feature table (None if it was never materialized)."""
    path = workspace.lake / "features" / anchor
    if not path.exists():
        return None
    return _min_max(path, "event_ts", hive=True)


def _label_window(workspace: Any, ir: IR | None, training_data: str | None
                  ) -> tuple[dt.datetime, dt.datetime] | None:
    """The time range of the training data's label timestamps; None when it cannot be read (training
    reports a missing table itself)."""
    from proml_lab.training.data import _TIMESTAMP_CANDIDATES

    table = training_data or ((ir.training_config or {}).get("training_data") if ir is not None else None)
    if not table:
        return None
    path = workspace.lake / str(table)
    if not path.exists():
        return None
    import pyarrow.dataset as ds

    names = ds.dataset(path, format="parquet").schema.names
    column = next((c for c in _TIMESTAMP_CANDIDATES if c in names), None)
    return None if column is None else _min_max(path, column, hive=False)


def _min_max(path: Path, column: str, *, hive: bool) -> tuple[dt.datetime, dt.datetime] | None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    data = ds.dataset(path, format="parquet", partitioning="hive" if hive else None)
    values = data.to_table(columns=[column])[column]
    if len(values) == 0 or values.null_count == len(values):
        return None
    if not pa.types.is_timestamp(values.type):
        values = values.cast(pa.timestamp("us"))
    lo_hi = pc.min_max(values).as_py()
    return _utc(lo_hi["min"]), _utc(lo_hi["max"])


def _utc(moment: Any) -> dt.datetime:
    import pandas as pd

    t = pd.Timestamp(moment)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


def _duration(value: dt.timedelta | None) -> str:
    from proml_lab.features.spec import format_duration

    return "none" if value is None else format_duration(value)
