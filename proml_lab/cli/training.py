"""``proml train`` and ``proml eval``: train a program on its training data; run the public benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, err_console, print_json, workspace

eval_app = typer.Typer(help="Public benchmarks with published peer figures.", no_args_is_help=True)


def train(
    program: Annotated[Path, typer.Argument(help="A .quasar program.", exists=True, dir_okay=False)],
    data: Annotated[str | None, typer.Option("--data", help="Training table under the lake (default: the "
                                             "program's TRAINING CONFIG training_data).")] = None,
    label: Annotated[str | None, typer.Option(help="Label column (default: TRAINING CONFIG label).")] = None,
    validation_fraction: Annotated[float, typer.Option(help="Latest share of rows held out.")] = 0.2,
    tune: Annotated[int, typer.Option("--tune", help="Tune regularization with N GP trials first.")] = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train every trainable node of PROGRAM (tracked in MLflow) and print its validation metrics."""
    from proml_lab.cli.health import print_check_report
    from proml_lab.health.checks import TRAINING_CHECKS, authoring_checks
    from proml_lab.training.pipeline import train_program

    ws = workspace(home)
    checked = authoring_checks(ws, program.read_text(encoding="utf-8"), training_data=data, checks=TRAINING_CHECKS,
                               filename=str(program))
    if checked.problems:  # features exist and cover the training window, else say what to do before joining
        print_check_report(checked, to=err_console)
    checked.raise_for_errors()
    with _progress() as report:
        result = train_program(ws, program.read_text(encoding="utf-8"), filename=str(program), source_table=data,
                               label=label, validation_fraction=validation_fraction, tune_trials=tune,
                               callback=report)
    from proml_lab.deploy.bundle import log_bundle
    from proml_lab.errors import BundleError

    try:  # so the run can be published: proml publish RUN_ID
        bundle_uri: str | None = log_bundle(ws, result.model)
    except BundleError as exc:  # a model that cannot be bundled still has its metrics and run
        err_console.print(f"model bundle not logged: {exc}", highlight=False, soft_wrap=True)
        bundle_uri = None
    if as_json:
        print_json({**result.to_dict(), "bundle": bundle_uri})
        return
    table = Table(title=f"{result.model.name or program.name}: validation", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.model.metrics.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)
    console.print(f"train rows {result.train_rows:,}, validation rows {result.validation_rows:,}; "
                  f"{result.seconds:.1f} s; MLflow run {result.model.run_id}", highlight=False, soft_wrap=True)
    if bundle_uri is not None:
        console.print(f"model bundle logged to run {result.model.run_id}; publish it with: proml publish "
                      f"{result.model.run_id} --alias champion", highlight=False, soft_wrap=True)
    if result.tuning is not None:
        console.print(f"tuned with {len(result.tuning.trials)} trials: best {result.tuning.best_params}",
                      highlight=False, soft_wrap=True)


@eval_app.command("movielens")
def movielens(
    data: Annotated[Path | None, typer.Option("--data", help="Folder holding u.data, u.user, u.item.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random 80/20 split.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """The GDMix MovieLens-100K protocol: AUC of global / + per-user / + per-user + per-movie models."""
    from proml_lab.training.movielens import evaluate_movielens

    def report(event: dict[str, Any]) -> None:
        if event.get("event") == "model_done" and not as_json:
            err_console.print(f"  {event['model']}: AUC {event['auc']:.4f} ({event['seconds']:.1f} s)",
                              highlight=False)

    result = evaluate_movielens(data, seed=seed, callback=report)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"MovieLens-100K, GDMix protocol, seed {seed}: test AUC", title_justify="left")
    for col in ("model", "ProML Lab", "GDMix (linear)", "GDMix (deep)"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, ours, linear, deep in result.table():
        table.add_row(name.replace("_", " + ").replace("per + ", "per-"), f"{ours:.4f}", f"{linear:.4f}",
                      f"{deep:.4f}")
    console.print(table)
    console.print(f"wall time {result.seconds['total']:.1f} s", highlight=False)


class _progress:
    """Training events as one rich progress line per trainable node (stderr, only on a terminal)."""

    def __enter__(self) -> Any:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                            console=err_console, disable=not err_console.is_terminal)
        self.bar.__enter__()
        self.tasks: dict[str, Any] = {}
        return self.report

    def report(self, event: dict[str, Any]) -> None:
        node = event.get("node")
        if event.get("event") == "node":
            self.tasks[node] = self.bar.add_task(f"{node} ({event.get('op')})")
        elif node in self.tasks and event.get("event") in ("pass", "coordinate", "round"):
            detail = ", ".join(f"{k} {v:.4g}" for k, v in event.items() if isinstance(v, float))
            step = event.get("pass", event.get("round", ""))
            self.bar.update(self.tasks[node], description=f"{node}: {event['event']} {step} {detail}")

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
