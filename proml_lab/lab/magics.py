"""The ProML Lab magics: author (``%%quasar``), discover (``%features``, ``%feature``), train (``%train``,
``%job``, ``%jobs``), compare (``%compare``), publish, deploy and rank (``%publish``, ``%deploy``,
``%rank``), run A/B experiments (``%experiment``) and watch model health (``%health``) from a notebook.

Thin adapters (STYLE habit 13): each magic parses its line, calls one core function and renders the
result. Errors are *raised* (papermill runs fail), but shown as the core's message without a Python
traceback: :class:`ProMLMagicError` implements IPython's ``_render_traceback_``.

Options are traitlets, set with ``%config`` or in a profile::

    %config ProMLMagics.workspace = "/data/proml"     # default "": PROML_HOME
    %config ProMLMagics.spark_master = "local[4]"     # for the Spark sessions started afterwards (jobs)
    %config ProMLMagics.widgets = "off"               # plain HTML / DataFrames instead of ipywidgets
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import CaselessStrEnum, Unicode, observe

from proml_lab.errors import ProMLError
from proml_lab.lab import display as views
from proml_lab.lab import jobs as jobs_mod

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.quasar.ir import IR
    from proml_lab.workspace import Workspace

__all__ = ["DeploymentView", "ExperimentView", "HealthView", "ProMLMagicError", "ProMLMagics", "QuasarModel"]

ONLINE_FIX = "proml features materialize --online"


class ProMLMagicError(ProMLError):
    """An error a magic reports: IPython shows its message only (no traceback), and the cell fails.

    ``error`` is the core's original exception (a ``QuasarError`` with line and column, ...).
    """

    def __init__(self, message: str, *, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error

    def _render_traceback_(self) -> list[str]:
        name = type(self.error).__name__ if self.error is not None else "ProMLError"
        return [f"\x1b[31m{name}\x1b[0m", *str(self).splitlines()]


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise the core's errors as :class:`ProMLMagicError` (message kept, traceback hidden)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProMLMagicError:
            raise
        except ProMLError as exc:
            raise ProMLMagicError(str(exc), error=exc) from exc

    return wrapper


@dataclass(eq=False)
class QuasarModel:
    """A model written in a ``%%quasar NAME`` cell: its source, compiled IR and feature table.

    ``job_id`` / ``result`` are filled in by ``%train NAME``.
    """

    name: str | None
    source: str
    filename: str
    ir: IR
    features: pd.DataFrame
    job_id: str | None = None
    result: jobs_mod.JobResult | None = None
    _svg: str | None = field(default=None, repr=False)

    def diagram(self) -> Any:
        """The DAG picture (a ``QuasarDiagram``; ``.save("m.svg")`` writes it)."""
        from proml_lab.quasar.render import QuasarDiagram

        return QuasarDiagram(self.ir, engine="python", title=self.ir.name or self.name)

    def _repr_html_(self) -> str:
        if self._svg is None:
            self._svg = self.diagram().svg
        return views.program_html(self.name, self.ir, self.features, self._svg)

    def __repr__(self) -> str:
        trained = f", trained by job {self.job_id}" if self.job_id else ""
        return (f"QuasarModel({self.name!r}: {self.ir.name}, {len(self.ir.nodes)} nodes, "
                f"{len(self.features)} features{trained})")


@magics_class
class ProMLMagics(Magics):
    """``%%quasar``, ``%features``, ``%feature``, ``%train``, ``%job``, ``%jobs``, ``%compare``, ``%publish``,
    ``%deploy``, ``%rank`` and ``%experiment``."""

    workspace = Unicode("", help="Workspace directory; empty means PROML_HOME (else ./.proml).").tag(config=True)
    spark_master = Unicode(
        "", help="Spark master for Spark sessions started after it is set (training jobs included); "
                 "empty keeps PROML_SPARK_MASTER / the default local[*].").tag(config=True)
    widgets = CaselessStrEnum(
        ("auto", "on", "off"), default_value="auto",
        help="ipywidgets views: 'auto' under a Jupyter kernel when ipywidgets is installed, "
             "'on' always, 'off' never (HTML and DataFrames instead).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self._ws: tuple[Any, Workspace] | None = None
        self._names: tuple[float, list[str]] = (0.0, [])
        super().__init__(shell=shell, **kwargs)

    # -- options and shared helpers ----------------------------------------------------------------
    @observe("spark_master", "workspace")
    def _settings_changed(self, change: Any) -> None:
        from proml_lab.settings import get_settings

        if change["name"] == "spark_master" and change["new"]:
            os.environ["PROML_SPARK_MASTER"] = change["new"]
            get_settings.cache_clear()
            if "pyspark" in sys.modules:
                from pyspark.sql import SparkSession

                if SparkSession.getActiveSession() is not None:
                    print("note: this kernel's Spark session is already running; the new master applies "
                          "to training jobs and to Spark sessions started after it is stopped.")
        self._ws = None

    def _workspace(self) -> Workspace:
        from proml_lab.settings import get_settings
        from proml_lab.workspace import Workspace

        key = (self.workspace, get_settings())
        if self._ws is None or self._ws[0] != key:
            self._ws = (key, Workspace.open(self.workspace or None))
        return self._ws[1]

    def _use_widgets(self) -> Any:
        """The :mod:`proml_lab.lab.widgets` module when widgets should be shown, else ``None``."""
        if self.widgets == "off" or (self.widgets == "auto" and getattr(self.shell, "kernel", None) is None):
            return None
        import importlib.util

        if importlib.util.find_spec("ipywidgets") is None:
            return None
        try:
            from proml_lab.lab import widgets
        except ImportError:  # the widgets module is optional
            return None
        return widgets

    def feature_names(self) -> list[str]:
        """Feature names of the workspace catalog (re-read at most every 10 s), for completion."""
        stamp, names = self._names
        if time.monotonic() - stamp > 10.0 or not names:
            try:
                names = [r.name for r in self._workspace().features.catalog.features()]
            except ProMLError:
                names = []
            self._names = (time.monotonic(), names)
        return names

    # -- authoring ---------------------------------------------------------------------------------
    @cell_magic
    @magic_arguments()
    @argument("name", nargs="?", help="Variable the model is bound to.")
    @argument("--check-online", action="store_true",
              help=f"Fail unless every feature is materialized online (fix: {ONLINE_FIX}).")
    @no_var_expand
    @_user_errors
    def quasar(self, line: str, cell: str) -> QuasarModel | None:
        """Compile a Quasar program against the workspace catalog, show its DAG and features, bind NAME.

        Example::

            %%quasar ranker --check-online
            MODEL ranker;
            ...
        """
        from proml_lab.quasar import QuasarError
        from proml_lab.quasar import compile as compile_program

        args = parse_argstring(self.quasar, line)
        if not cell.strip():
            raise ProMLMagicError("%%quasar needs a program in the cell (see docs/quasar.md)")
        if args.name is not None and not args.name.isidentifier():
            raise ProMLMagicError(f"%%quasar NAME must be a Python identifier. Got {args.name!r} instead.")
        filename = f"<{args.name}>" if args.name else "<quasar>"
        catalog = self._workspace().features.catalog
        try:
            ir = compile_program(cell, catalog=catalog, filename=filename)
        except QuasarError as exc:
            raise ProMLMagicError(str(exc), error=exc) from exc
        model = QuasarModel(args.name, cell, filename, ir, views.program_features(ir, catalog))
        if args.name:
            self.shell.user_ns[args.name] = model
        if args.check_online:
            from IPython.display import display

            from proml_lab.health.checks import ONLINE_CHECKS, authoring_checks

            report = authoring_checks(self._workspace(), ir, checks=ONLINE_CHECKS)
            if not report.ok:
                display(model)  # the feature table still shows, with the report under it
            if report.problems:
                display(report)
            report.raise_for_errors()
        return model

    # -- discovery ---------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("query", nargs="*", help="Search words (empty: list features).")
    @argument("--entity", help="Only features of this entity.")
    @argument("--type", help="Only features of this value type (numeric, categorical, vector ...).")
    @argument("--limit", type=int, default=50, help="At most this many results.")
    @_user_errors
    def features(self, line: str) -> Any:
        """Search the Feature Marketplace: a browser widget, or a DataFrame of hits.

        Example: ``%features title --entity job``
        """
        import pandas as pd

        args = parse_argstring(self.features, line)
        store, query = self._workspace().features, " ".join(args.query)
        widgets = self._use_widgets()
        if widgets is not None:
            return widgets.marketplace_browser(store, query, args.entity, args.type, limit=args.limit)
        hits = store.search(query, entity=args.entity, type=args.type, limit=args.limit)
        return pd.DataFrame(
            [{"name": h.name, "entity": h.entity, "type": h.type, "online": h.online, "owner": h.owner,
              "description": h.description, "score": round(h.score, 3)} for h in hits],
            columns=["name", "entity", "type", "online", "owner", "description", "score"])

    @line_magic
    @magic_arguments()
    @argument("name", help="Feature name (Tab completes).")
    @_user_errors
    def feature(self, line: str) -> views.FeatureView:
        """One feature: definition, lineage, online state and its statistics history plot.

        Example: ``%feature member_jobViews_7d``
        """
        args = parse_argstring(self.feature, line)
        info = self._workspace().features.describe(args.name)
        fig = views.stats_history_figure(info.get("stats") or [], args.name)
        return views.FeatureView(info, views.figure_png(fig) if fig is not None else None)

    # -- training ----------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("name", help="A model bound by %%%%quasar NAME (or a .quasar file).")
    @argument("--data", help="Training table under the lake (default: the program's training_data).")
    @argument("--label", help="Label column (default: the program's label).")
    @argument("--tune", type=int, default=0, help="Tuning trials before the final fit.")
    @argument("--wait", action=argparse.BooleanOptionalAction, default=True,
              help="Wait with a progress bar (default), or return the job at once (--no-wait).")
    @_user_errors
    def train(self, line: str) -> Any:
        """Train a model as a tracked job that survives interrupts and kernel restarts.

        Example: ``%train ranker --tune 8``; Ctrl-C / interrupt detaches, ``%job <id>`` re-attaches.
        """
        args = parse_argstring(self.train, line)
        model = self._model(args.name)
        job = jobs_mod.submit(
            self._workspace(), model.source, filename=model.filename, name=model.name or args.name,
            source_table=args.data, label=args.label, tune_trials=args.tune,
            spark_master=self.spark_master or None, cwd=os.getcwd())
        model.job_id, model.result = job.id, None
        print(f"Job {job.id} started: training {args.name}. It keeps running if this cell is interrupted; "
              f"re-attach with %job {job.id}")
        if not args.wait:
            return job
        return self._attach(job, nodes=len(model.ir.trainables()), trials=args.tune, model=model)

    def _model(self, name: str) -> QuasarModel:
        value = self.shell.user_ns.get(name)
        if isinstance(value, QuasarModel):
            return value
        path = Path(name)
        if value is None and path.suffix == ".quasar" and path.is_file():
            from proml_lab.quasar import compile as compile_program

            source = path.read_text(encoding="utf-8")
            ir = compile_program(source, catalog=self._workspace().features.catalog, filename=str(path))
            return QuasarModel(path.stem, source, str(path), ir, views.program_features(
                ir, self._workspace().features.catalog))
        what = "is not defined" if value is None else f"is a {type(value).__name__}"
        raise ProMLMagicError(f"%train needs a model written in a `%%quasar {name}` cell (or a .quasar file); "
                              f"{name!r} {what}.")

    def _attach(self, job: jobs_mod.Job, *, nodes: int = 1, trials: int = 0,
                model: QuasarModel | None = None) -> jobs_mod.JobResult | None:
        """Follow *job* with a progress bar; an interrupt detaches (the job runs on)."""
        widgets = self._use_widgets()
        progress: Any = (views.WidgetProgress(widgets.training_progress, nodes=nodes) if widgets is not None
                         else views.TextProgress(job.id, nodes=nodes, trials=trials, plain=self.widgets == "off"))
        try:
            result = job.wait(callback=progress)
        except KeyboardInterrupt:
            print(f"\nDetached from job {job.id}; it keeps running ({job.state}). Re-attach with %job {job.id}")
            return None
        except jobs_mod.JobFailedError as exc:
            progress({"event": "done", "error": str(exc)})
            raise ProMLMagicError(str(exc), error=exc) from exc
        finally:
            progress.close()
        if model is not None:
            model.result = result
        for value in list(self.shell.user_ns.values()):  # the model that started it, after a re-attach
            if isinstance(value, QuasarModel) and value.job_id == job.id:
                value.result = result
        return result

    @line_magic
    @magic_arguments()
    @argument("id", help="Job id (or a unique prefix of it).")
    @argument("--kill", action="store_true", help="Stop the job instead of attaching to it.")
    @_user_errors
    def job(self, line: str) -> Any:
        """Re-attach to a training job: progress until it finishes, then its result.

        Example: ``%job 20261122-152301-ab12``
        """
        args = parse_argstring(self.job, line)
        job = jobs_mod.open_job(self._workspace(), args.id)
        if args.kill:
            job.kill()
            print(f"Sent SIGTERM to job {job.id}.")
            return job
        spec = job.spec
        return self._attach(job, nodes=self._trainable_count(spec), trials=int(spec.get("tune_trials") or 0))

    def _trainable_count(self, spec: Mapping[str, Any]) -> int:
        """How many nodes the job's program trains (what its progress bar counts); 1 if it does not compile."""
        from proml_lab.quasar import compile as compile_program

        try:
            ir = compile_program(spec.get("source") or "", catalog=self._workspace().features.catalog,
                                 filename=spec.get("filename") or "<quasar>")
        except ProMLError:
            return 1
        return max(1, len(ir.trainables()))

    @line_magic
    @_user_errors
    def jobs(self, line: str = "") -> pd.DataFrame:
        """The workspace's training jobs, newest first (id, model, state, times, metrics)."""
        import pandas as pd

        rows = [j.summary() for j in jobs_mod.list_jobs(self._workspace())]
        for row in rows:
            row["metrics"] = views.metrics_text(row["metrics"]) if row["metrics"] else ""
        return pd.DataFrame(rows, columns=["id", "name", "state", "submitted_at", "finished_at", "metrics",
                                           "run_id", "error", "pid"])

    # -- comparison --------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("baseline", help="Finished job id, or a trained model's name in the namespace.")
    @argument("new", help="Finished job id, or a trained model's name in the namespace.")
    @_user_errors
    def compare(self, line: str) -> Any:
        """Metric | Baseline | NewModel | Lift table and the lift plot of two trained models.

        Example: ``%compare baseline ranker``
        """
        from proml_lab.training.compare import compare

        args = parse_argstring(self.compare, line)
        (base, base_label), (new, new_label) = self._metrics(args.baseline), self._metrics(args.new)
        comparison = compare(base, new, names=("Baseline", "NewModel"))
        caption = f"Baseline = {base_label}; NewModel = {new_label} (validation metrics)"
        widgets = self._use_widgets()
        if widgets is not None:
            print(caption)
            return widgets.comparison_view(comparison)
        return views.ComparisonView(comparison, caption, views.figure_png(comparison.plot()))

    def _metrics(self, token: str) -> tuple[Mapping[str, float], str]:
        """Metrics of a namespace model (trained ``QuasarModel``, job result, train result) or a job id."""
        value = self.shell.user_ns.get(token)
        if isinstance(value, QuasarModel):
            if value.result is None and value.job_id is None:
                raise ProMLMagicError(f"{token!r} has not been trained yet; run %train {token}")
            value = value.result or jobs_mod.open_job(self._workspace(), value.job_id).result()
        if value is None:
            value = jobs_mod.open_job(self._workspace(), token).result()
            return value.metrics, f"job {value.job_id} ({value.program})"
        metrics = getattr(getattr(value, "model", None), "metrics", None) or getattr(value, "metrics", None)
        if isinstance(value, Mapping):
            metrics = value
        if not isinstance(metrics, Mapping):
            raise ProMLMagicError(f"{token!r} is a {type(value).__name__}, not a trained model or a job id")
        return metrics, token

    # -- publishing --------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("model", help="MLflow run id, or a model trained by %%train (its variable), a TrainedModel or a "
                            "job result in the namespace.")
    @argument("--name", help="Registered model name (default: the program's MODEL name).")
    @argument("--alias", help="Move this alias (e.g. champion) to the new version.")
    @argument("--force", action="store_true", help="Publish even when the online feature checks find errors.")
    @_user_errors
    def publish(self, line: str) -> Any:
        """Publish a trained model as a new version in the model registry, after the online feature checks
        (every feature exists, is materialized online and fresh; ``--force`` publishes despite errors).

        Example: ``%publish ranker --alias champion``
        """
        from proml_lab.deploy.registry import ModelRegistry

        args = parse_argstring(self.publish, line)
        model = self._publishable(args.model)
        if not args.force:
            from IPython.display import display

            from proml_lab.health.checks import ONLINE_CHECKS, CheckFailedError, authoring_checks, features_of_run

            ws = self._workspace()
            report = authoring_checks(ws, features_of_run(ws, model) if isinstance(model, str) else model,
                                      checks=ONLINE_CHECKS)
            if report.problems:
                display(report)
            if not report.ok:
                error = CheckFailedError(report)
                raise ProMLMagicError(f"{error}\nNot published; fix these, or publish anyway with --force.",
                                      error=error)
        return ModelRegistry(self._workspace()).publish(model, name=args.name, alias=args.alias)

    def _publishable(self, token: str) -> Any:
        """A namespace model (trained ``QuasarModel``, job or train result, TrainedModel, Bundle) or a run id."""
        value = self.shell.user_ns.get(token)
        if value is None:
            return token
        if isinstance(value, QuasarModel):
            if value.result is None and value.job_id is None:
                raise ProMLMagicError(f"{token!r} has not been trained yet; run %train {token}")
            value = value.result or jobs_mod.open_job(self._workspace(), value.job_id).result()
        if isinstance(value, jobs_mod.JobResult):
            if not value.run_id:
                raise ProMLMagicError(f"job {value.job_id} has no MLflow run to publish")
            return value.run_id
        model = getattr(value, "model", None)  # a TrainResult
        if model is not None and hasattr(model, "state"):
            return model
        if hasattr(value, "state") and hasattr(value, "ir"):  # a TrainedModel or a Bundle
            return value
        if isinstance(value, str):
            return value
        raise ProMLMagicError(f"{token!r} is a {type(value).__name__}, not a trained model or a run id")

    # -- deploying and ranking ---------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("name", help="Registered model name.")
    @argument("--version", help="The published version to deploy (default: the newest).")
    @argument("--from-alias", help="Deploy the version this registry alias names (e.g. challenger).")
    @argument("--alias", default="champion", help="The serving alias to move (default: champion).")
    @argument("--rollback", action="store_true",
              help="Point the alias back at the version it served before the last deployment.")
    @_user_errors
    def deploy(self, line: str) -> DeploymentView:
        """Deploy a published version (online coefficients, forward index, atomic switch), or roll back.

        Example: ``%deploy world_job_recommendations --version 2``; ``%deploy NAME --rollback``
        """
        from proml_lab.deploy.deployer import Deployer

        args = parse_argstring(self.deploy, line)
        deployer = Deployer(self._workspace())
        if args.rollback:
            if args.version is not None or args.from_alias is not None:
                raise ProMLMagicError("%deploy --rollback goes back to the alias's previous version; "
                                      "it takes no --version or --from-alias.")
            done, action = deployer.rollback(args.name, alias=args.alias), "rolled back"
        else:
            progress = _DeployProgress(args.name, plain=self._use_widgets() is None)
            try:
                done = deployer.deploy(args.name, args.version, from_alias=args.from_alias, alias=args.alias,
                                       progress=progress)
            finally:
                progress.close()
            action = "deployed"
        return DeploymentView(done, deployer.status(args.name), action)

    @line_magic
    @magic_arguments()
    @argument("name", help="Deployed model name.")
    @argument("member_id", help="The member to rank documents for.")
    @argument("-k", type=int, default=10, help="How many documents (default 10).")
    @argument("--alias", default="champion", help="Serve from this alias (default: champion).")
    @argument("--explain", action="store_true", help="Add every program node's value per document.")
    @_user_errors
    def rank(self, line: str) -> pd.DataFrame:
        """Rank documents for a member in this kernel with the deployed model, as ``POST /v1/rank`` does.

        Example: ``%rank world_job_recommendations 7 -k 5 --explain``
        """
        from proml_lab.serving.local import rank_once

        args = parse_argstring(self.rank, line)
        if args.k < 1:
            raise ProMLMagicError(f"%rank -k must be at least 1. Got {args.k} instead.")
        member = int(args.member_id) if args.member_id.lstrip("-").isdigit() else args.member_id
        ranked = rank_once(self._workspace(), args.name, member, k=args.k, alias=args.alias,
                           explain=args.explain)
        info = ranked.attrs
        print(f"{info['model']} version {info['version']} ({info['alias']}) for member {member}"
              f"{'' if info['member_known'] else ' (unknown member: global model only)'}: "
              f"top {len(ranked)} of {info['candidates']} documents")
        return ranked

    # -- experiments -------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("name", nargs="?", help="Experiment name (empty: list the workspace's experiments).")
    @argument("--ramp", type=float, metavar="PERCENT", help="Set the percent of the layer in the experiment.")
    @argument("--start", action="store_true", help="Start the draft (every arm's alias must be deployed).")
    @argument("--stop", action="store_true", help="Stop it: requests go back to the default alias.")
    @argument("--model", help="With no NAME: only experiments of this model.")
    @argument("--alpha", type=float, default=0.05, help="Significance level of the report (default 0.05).")
    @_user_errors
    def experiment(self, line: str) -> Any:
        """A/B experiments: the list, one experiment's report (decision, SRM, per-arm table, lift chart),
        or a ramp / start / stop.

        Example: ``%experiment``; ``%experiment jobs-ab``; ``%experiment jobs-ab --ramp 50``
        """
        from proml_lab.experiments.report import DefinitionView, experiment_report, experiments_frame
        from proml_lab.experiments.store import ExperimentStore

        args = parse_argstring(self.experiment, line)
        flags = (("ramp", args.ramp is not None), ("start", args.start), ("stop", args.stop))
        actions = [a for a, on in flags if on]
        if args.name is None:
            if actions:
                raise ProMLMagicError(f"%experiment --{actions[0]} needs an experiment NAME.")
            return experiments_frame(self._workspace(), model=args.model)
        if len(actions) > 1:
            raise ProMLMagicError(f"%experiment takes one of --ramp, --start, --stop. "
                                  f"Got {', '.join(actions)}.")
        if actions:
            store = ExperimentStore(self._workspace())
            action = actions[0]
            if action == "ramp":
                return DefinitionView(store.ramp(args.name, args.ramp), action="ramped")
            if action == "start":
                return DefinitionView(store.start(args.name), action="started")
            return DefinitionView(store.stop(args.name), action="stopped")
        report = experiment_report(self._workspace(), args.name, alpha=args.alpha)
        return ExperimentView(report, None if report.analysis is None else views.figure_png(report.plot()))

    # -- health ------------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("model", help="Deployed model name.")
    @argument("--alias", default="champion", help="Serving alias whose exposures count (default: champion).")
    @argument("--window", default="1d", help="Serving window: 1d, 12h, 7d ... (default 1d).")
    @argument("--end", help="End of the window (UTC; default: now).")
    @_user_errors
    def health(self, line: str) -> HealthView:
        """Model health: drift of the serving window against the training snapshot (features, score),
        online AUC against validation AUC, calibration; with the drift and AUC charts.

        Example: ``%health world_job_recommendations --window 7d``
        """
        from proml_lab.health.monitor import monitor

        args = parse_argstring(self.health, line)
        report = monitor(self._workspace(), args.model, alias=args.alias, window=args.window, end=args.end)
        return HealthView(report, views.figure_png(report.plot()))


class DeploymentView:
    """What ``%deploy`` shows: the deployment an alias now points at, its documents and earlier versions."""

    def __init__(self, deployment: Any, status: Mapping[str, Any], action: str = "deployed") -> None:
        self.deployment = deployment
        self.action = action
        entry = status.get("aliases", {}).get(deployment.alias, {})
        self.documents: int | None = entry.get("rows")
        self.previous = [str(e["version"]) for e in status.get("history", {}).get(deployment.alias, [])]

    def __getattr__(self, name: str) -> Any:  # version, alias, generation, deployed_at ... of the Deployment
        if name.startswith("_") or name == "deployment":
            raise AttributeError(name)
        return getattr(self.deployment, name)

    def _rows(self) -> list[tuple[str, str]]:
        d = self.deployment
        return [("Model", d.name), ("Alias", d.alias), ("Version", d.version), ("Generation", d.generation),
                ("Documents", "unknown" if self.documents is None else f"{self.documents:,}"),
                ("Deployed at", d.deployed_at),
                ("Earlier versions (rollback)", ", ".join(self.previous) or "none")]

    def _repr_html_(self) -> str:
        import html

        d = self.deployment
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in self._rows())
        return (f"<div class='proml-deployment'><p>{self.action.capitalize()} <b>{html.escape(d.name)}</b>: "
                f"alias <b>{html.escape(d.alias)}</b> serves version <b>{html.escape(d.version)}</b>.</p>"
                f"<table>{rows}</table></div>")

    def __repr__(self) -> str:
        d = self.deployment
        return (f"{self.action} {d.name}: {d.alias!r} serves version {d.version} "
                f"(generation {d.generation}, {self._rows()[4][1]} documents, deployed at {d.deployed_at}; "
                f"earlier: {', '.join(self.previous) or 'none'})")


class ExperimentView:
    """What ``%experiment NAME`` shows: the report (definition, decision, SRM, per-arm table) and its lift
    chart; attributes are the :class:`~proml_lab.experiments.report.ExperimentReport`'s."""

    def __init__(self, report: Any, png: bytes | None) -> None:
        self.report = report
        self.png = png

    def __getattr__(self, name: str) -> Any:  # decision, srm, analysis, to_dict() ... of the report
        if name.startswith("_") or name == "report":
            raise AttributeError(name)
        return getattr(self.report, name)

    def _repr_html_(self) -> str:
        import base64

        img = ("" if self.png is None else
               f"<img alt='lift chart' src='data:image/png;base64,{base64.b64encode(self.png).decode()}'/>")
        return f"<div class='proml-experiment-view'>{self.report._repr_html_()}{img}</div>"

    def __repr__(self) -> str:
        return repr(self.report)


class HealthView:
    """What ``%health MODEL`` shows: the :class:`~proml_lab.health.monitor.HealthReport` (drift table with
    statuses, measures, notes) and its charts; attributes are the report's (``ok``, ``measures`` ...)."""

    def __init__(self, report: Any, png: bytes | None) -> None:
        self.report = report
        self.png = png

    def __getattr__(self, name: str) -> Any:  # drift, measures, alerts, ok, to_dict() ... of the report
        if name.startswith("_") or name == "report":
            raise AttributeError(name)
        return getattr(self.report, name)

    def _repr_html_(self) -> str:
        import base64

        img = ("" if self.png is None else
               f"<img alt='drift and online AUC' src='data:image/png;base64,{base64.b64encode(self.png).decode()}'/>")
        return f"<div class='proml-health-view'>{self.report._repr_html_()}{img}</div>"

    def __repr__(self) -> str:
        return repr(self.report)


class _DeployProgress:
    """A tqdm bar over the deployer's named steps (text when *plain*, so saved notebooks hold no widgets)."""

    def __init__(self, name: str, *, plain: bool) -> None:
        from proml_lab.deploy.deployer import CHECKPOINTS

        if plain:
            from tqdm import tqdm
        else:
            from tqdm.auto import tqdm
        self.bar = tqdm(total=len(CHECKPOINTS), desc=f"deploy {name}", unit="step", leave=True)

    def __call__(self, step: str, i: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(max(0, i - self.bar.n))
        self.bar.set_postfix_str(step, refresh=True)

    def close(self) -> None:
        self.bar.close()


def feature_matcher(magics: ProMLMagics) -> Callable[..., Any]:
    """An IPython completion matcher: feature names after ``%feature`` / ``%features``, entity names
    after ``--entity``."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def proml_feature_names(context: Any) -> dict[str, Any]:
        words = context.text_until_cursor.lstrip().split(" ")
        if len(words) < 2 or words[0].lstrip("%") not in ("feature", "features"):
            return {"completions": [], "suppress": False}
        token = words[-1]
        try:
            if words[-2] == "--entity":
                pool = magics._workspace().features.catalog.entity_names()
            elif words[-2] == "--type" or token.startswith("-"):
                pool = []
            else:
                pool = magics.feature_names()
        except Exception:  # noqa: BLE001  (completion must never raise into the editor)
            pool = []
        hits = [SimpleCompletion(n, type="feature") for n in pool if n.startswith(token)]
        return {"completions": hits, "suppress": bool(hits), "matched_fragment": token}

    return proml_feature_names
