"""The ``proml`` command: thin adapters over the library (parse, call one function, render)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from proml_lab.cli import features as features_cli
from proml_lab.cli import quasar as quasar_cli
from proml_lab.cli import training as training_cli
from proml_lab.cli import worlds as worlds_cli
from proml_lab.cli._common import HomeOption, console, err_console, progress, workspace
from proml_lab.errors import ProMLError

app = typer.Typer(
    name="proml",
    help="ProML Lab: explore, author, train, deploy and run ranking models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(worlds_cli.app, name="worlds")
app.add_typer(features_cli.app, name="features")
app.add_typer(quasar_cli.app, name="quasar")
app.add_typer(training_cli.eval_app, name="eval")
new_app = typer.Typer(help="Start new work from a template.", no_args_is_help=True)
app.add_typer(new_app, name="new")
app.command("train")(training_cli.train)
worlds_app = worlds_cli.app

WORLD_FEATURES = Path(__file__).resolve().parent.parent / "worlds" / "feature_definitions"
WORLD_PROGRAM = Path(__file__).resolve().parent.parent / "worlds" / "programs" / "job_recommendations.quasar"
WORLD_BASELINE = WORLD_PROGRAM.with_name("job_recommendations_global.quasar")


def _print_workspace(ws: Any) -> None:
    table = Table(title="ProML Lab workspace", show_header=False, title_justify="left")
    for key, value in ws.describe().items():
        table.add_row(key, value)
    console.print(table)


@app.command()
def init(home: HomeOption = None) -> None:
    """Create the workspace (safe to run again)."""
    _print_workspace(workspace(home))


@app.command()
def demo(
    home: HomeOption = None,
    size: Annotated[str, typer.Option(help="World size: tiny, small or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed of the world.")] = 0,
) -> None:
    """Walk the lifecycle on the embedded defaults: workspace, sample world, feature marketplace, model DAG."""
    from proml_lab.worlds import generate_world

    ws = workspace(home)
    _print_workspace(ws)
    console.rule("[bold]1. Sample world: the economic graph")
    with progress() as report:
        world = generate_world(size, seed=seed, workspace=ws, progress=report)
    worlds_cli.print_world(world.summary())

    console.rule("[bold]2. Feature Marketplace: define, materialize, discover, serve")
    store = ws.features
    features_cli.print_apply(store.apply(str(WORLD_FEATURES)))
    world_end = dt.datetime.fromisoformat(world.info["end"]).replace(tzinfo=dt.timezone.utc)
    with progress() as report:
        store.materialize(online=True, as_of=world_end, progress=report)
    features_cli.print_catalog_summary(store.catalog.summary())
    features_cli.print_hits(store.search("title", limit=5), "search 'title'")
    online = store.get_online_features(
        "member", [1, 2, 3], ["member_primaryTitle", "member_seniority", "member_jobViews_30d", "member_activityLevel_30d"]
    )
    table = Table(title="online read, members 1-3", title_justify="left")
    for name in online.column_names:
        table.add_column(name, justify="right")
    for row in online.to_pylist():
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()])
    console.print(table)

    console.rule("[bold]3. Quasar: the job-recommendation model as a DAG")
    from proml_lab.quasar import compile
    from proml_lab.quasar.render import QuasarDiagram

    ir = compile(WORLD_PROGRAM.read_text(encoding="utf-8"), catalog=store.catalog, filename=WORLD_PROGRAM.name)
    picture = ws.root / "programs" / "job_recommendations.svg"
    picture.parent.mkdir(exist_ok=True)
    QuasarDiagram(ir, engine="python", title=ir.name).save(picture)
    console.print(
        f"checked {WORLD_PROGRAM.name}: {len(ir.nodes)} nodes, {len(ir.features())} marketplace features, "
        f"trainable: {', '.join(n.id for n in ir.trainables())}; DAG drawn to {picture}",
        highlight=False,
        soft_wrap=True,
    )

    console.rule("[bold]4. Training: GLMix by coordinate descent, compared with a global-only baseline")
    _demo_training(ws, ir)


def _demo_training(ws: Any, ir: Any) -> None:
    """Train the world's program and its global-only variant on the same rows; both runs go to MLflow."""
    from proml_lab.training.data import training_frame
    from proml_lab.training.compare import compare
    from proml_lab.training.pipeline import train_program

    frames = training_frame(ws, ir)
    console.print(f"training data: {len(frames.train):,} impressions before {frames.split_at}, "
                  f"{len(frames.validation):,} after (validation), features joined point-in-time",
                  highlight=False, soft_wrap=True)
    results = {}
    for path in (WORLD_BASELINE, WORLD_PROGRAM):
        with training_cli._progress() as report:
            results[path] = train_program(ws, path.read_text(encoding="utf-8"), filename=str(path),
                                          frames=frames, callback=report)
    base, new = results[WORLD_BASELINE].model, results[WORLD_PROGRAM].model
    comparison = compare(base.metrics, new.metrics, names=("Baseline", "NewModel"))
    table = Table(title=f"{new.name} vs {base.name} (validation)", title_justify="left")
    for col in comparison.table.columns:
        table.add_column(str(col), justify="left" if col == "Metric" else "right")
    for row in comparison.rows():
        table.add_row(*row)
    console.print(table)
    glmix = new.models.get("glmix")
    if glmix is not None:
        sizes = ", ".join(f"{name}: {len(e['ids']):,} entities" for name, e in glmix.effects_.items())
        console.print(f"per-entity coefficient tables: {sizes}", highlight=False)
    console.print(f"MLflow runs {base.run_id} (baseline) and {new.run_id} (new) in {ws.mlflow_tracking_uri}",
                  highlight=False, soft_wrap=True)


@new_app.command("model")
def new_model(
    name: Annotated[str, typer.Argument(help="The model's name (an identifier, e.g. my_ranker).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing model of that name.")] = False,
    home: HomeOption = None,
) -> None:
    """Create <workspace>/models/NAME/ with a Quasar program and a notebook to develop and train it."""
    from proml_lab.templates import new_model as create

    made = create(workspace(home), name, overwrite=force)
    console.print(f"created {made.program} and {made.notebook}", highlight=False, soft_wrap=True)
    console.print(f"next: proml quasar check {made.program}  |  proml train {made.program}  |  proml lab",
                  highlight=False, soft_wrap=True)


DASHBOARDS = Path(__file__).resolve().parent.parent.parent / "notebooks" / "dashboards"


@app.command()
def dashboard(
    name: Annotated[str, typer.Argument(help="A dashboard in notebooks/dashboards (e.g. model_comparison).")],
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8866,
    home: HomeOption = None,
) -> None:
    """Serve a dashboard notebook with Voila (its code hidden, its widgets live) on the workspace."""
    path = DASHBOARDS / f"{name}.ipynb"
    if not path.is_file():
        known = sorted(p.stem for p in DASHBOARDS.glob("*.ipynb"))
        raise ProMLError(f"no dashboard {name!r}; available: {', '.join(known) or 'none'}")
    ws = workspace(home)
    env = {**os.environ, "PROML_HOME": str(ws.root)}
    os.execvpe(sys.executable, [sys.executable, "-m", "voila", str(path), f"--port={port}", "--no-browser",
                                "--Voila.ip=127.0.0.1"], env)


@app.command()
def lab(
    home: HomeOption = None,
    port: Annotated[int, typer.Option(help="Port for JupyterLab.")] = 8888,
    notebooks: Annotated[Path, typer.Option(help="Folder JupyterLab opens.")] = Path("notebooks"),
) -> None:
    """Start JupyterLab on the workspace (PROML_HOME is passed to every kernel)."""
    ws = workspace(home)
    os.environ["PROML_HOME"] = str(ws.root)
    notebooks.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "jupyterlab", f"--port={port}", f"--ServerApp.root_dir={notebooks.resolve()}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    os.execv(sys.executable, args)


@app.command()
def version() -> None:
    """Print the version."""
    from proml_lab import __version__

    print(__version__)


def run(typer_app: typer.Typer, **kwargs: Any) -> None:
    """Run a typer app; user errors print one clear line and exit 1 (no traceback)."""
    try:
        typer_app(**kwargs)
    except ProMLError as exc:
        from rich.markup import escape

        # Messages quote fields such as anchors[member_activity]: escape them so rich shows them as is.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


def main() -> None:
    """Console entry point (``proml``)."""
    run(app)


__all__ = ["app", "main", "run", "worlds_app"]
