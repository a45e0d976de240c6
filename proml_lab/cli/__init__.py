"""The ``proml`` command: thin adapters over the library (parse, call one function, render)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from proml_lab.cli import deploy as deploy_cli
from proml_lab.cli import features as features_cli
from proml_lab.cli import publish as publish_cli
from proml_lab.cli import quasar as quasar_cli
from proml_lab.cli import serve as serve_cli
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
app.command("publish")(publish_cli.publish)
app.command("models")(publish_cli.models)
app.command("serve")(serve_cli.serve)
app.command("deploy")(deploy_cli.deploy)
app.command("rollback")(deploy_cli.rollback)
app.command("deployments")(deploy_cli.deployments)
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
    trained = _demo_training(ws, ir)

    console.rule("[bold]5. Publish, deploy and serve: the trained model ranks jobs in real time")
    _demo_serving(ws, trained)


def _demo_training(ws: Any, ir: Any) -> Any:
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
    return new


def _demo_serving(ws: Any, trained: Any, members: tuple[int, ...] = (1, 2, 3)) -> None:
    """Publish the trained model as champion, deploy it, start the service and rank jobs over HTTP."""
    import httpx

    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.serving import BackgroundService

    name = trained.name
    version = ModelRegistry(ws).publish(trained, alias="champion").version
    deployment = Deployer(ws).deploy(name, version=version, alias="champion")
    console.print(f"published {name} version {version} (alias champion) to the MLflow registry; deployed it: "
                  f"member coefficients to the online store, jobs + per-job coefficients to forward-index "
                  f"generation {deployment.generation}", highlight=False, soft_wrap=True)
    with BackgroundService(ws) as service, httpx.Client(base_url=service.url, timeout=30) as http:
        console.print(f"ranking service on {service.url} (proml serve)", highlight=False)
        for member in members:
            body = http.post("/v1/rank", json={"model": name, "member_id": member, "k": 5, "explain": True})
            body.raise_for_status()
            answer = body.json()
            table = Table(title=f"member {member}: top 5 jobs (version {answer['version']}, "
                                f"{answer['candidates']} candidates, {answer['took_ms']:.1f} ms)",
                          title_justify="left")
            for col in ("rank", "job", "score", "title family", "region", "seniority"):
                table.add_column(col, justify="left" if col in ("title family", "region") else "right")
            for item in answer["items"]:
                e = item["explain"]
                table.add_row(str(item["position"]), str(item["document_id"]), f"{item['score']:.3f}",
                              str(e.get("job_titleFamily")), str(e.get("job_region")),
                              f"{e.get('job_seniority', float('nan')):.0f}")
            console.print(table)


@new_app.command("model")
def new_model(
    name: Annotated[str, typer.Argument(help="The model's name (an identifier, e.g. my_ranker).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing model of that name.")] = False,
    home: HomeOption = None,
) -> None:
    """Create <workspace>/models/NAME/ with a Quasar program, a notebook to develop and train it, and a
    Voila dashboard of its runs."""
    from proml_lab.templates import new_model as create

    made = create(workspace(home), name, overwrite=force)
    console.print(f"created {made.program}, {made.notebook} and {made.dashboard}", highlight=False, soft_wrap=True)
    console.print(f"next: proml quasar check {made.program}  |  proml train {made.program}  |  proml lab  |  "
                  f"proml dashboard {name}", highlight=False, soft_wrap=True)


@app.command()
def dashboard(
    name: Annotated[str, typer.Argument(help="A shipped dashboard (e.g. model_comparison) or a model made by "
                                             "`proml new model`.")],
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8866,
    home: HomeOption = None,
) -> None:
    """Serve a dashboard notebook with Voila (its code hidden, its widgets live) on the workspace."""
    from proml_lab.templates import find_dashboard

    ws = workspace(home)
    path = find_dashboard(name, ws)
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
