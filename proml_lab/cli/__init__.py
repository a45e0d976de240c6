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
from proml_lab.cli import experiments as experiments_cli
from proml_lab.cli import features as features_cli
from proml_lab.cli import health as health_cli
from proml_lab.cli import publish as publish_cli
from proml_lab.cli import quasar as quasar_cli
from proml_lab.cli import retrain as retrain_cli
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
app.add_typer(health_cli.app, name="health")
app.add_typer(experiments_cli.app, name="experiment")
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
app.command("retrain")(retrain_cli.retrain)
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
    """Walk the lifecycle on the embedded defaults: workspace, sample world, feature marketplace, model DAG,
    training, serving, an A/B test, and health assurance (drift, an alert, automatic retraining)."""
    from proml_lab.worlds import generate_world

    ws = workspace(home)
    _print_workspace(ws)
    console.rule("[bold]1. Sample world: the economic graph")
    with progress() as report:
        world = generate_world(size, seed=seed, workspace=ws, progress=report, **_demo_drift(size))
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
    baseline, trained, frames = _demo_training(ws, ir)

    console.rule("[bold]5. Publish, deploy and serve: the trained model ranks jobs in real time")
    _demo_serving(ws, trained)

    console.rule("[bold]6. A/B test: the champion against a challenger, on the world's simulated members")
    _demo_experiment(ws, baseline, members=min(2_000, int(world.info["rows"]["members"])))

    console.rule("[bold]7. Health: drift, an alert, automatic retraining, a new challenger")
    _demo_health(ws, world, frames, members=min(2_000, int(world.info["rows"]["members"])))


def _demo_drift(size: str) -> dict[str, Any]:
    """``drift_from`` at 60% of the world's days, so stage 7 has a drift to find (unknown sizes: none, and
    generate_world names the known ones)."""
    from proml_lab.worlds.config import SIZES, WorldConfig

    if size not in SIZES:
        return {}
    config = WorldConfig.preset(size)  # type: ignore[arg-type]
    # stronger than the default Drift, so the stale champion's title-family weight is clearly wrong after it
    drift = config.drift.model_copy(update={"family_match_factor": 0.2, "skill_overlap_factor": 2.0})
    return {"drift_from": config.start + dt.timedelta(days=round(config.days * 0.6)), "drift": drift}


def _demo_training(ws: Any, ir: Any) -> Any:
    """Train the world's program and its global-only variant on the same rows; both runs go to MLflow.
    Returns both models and the training frames."""
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
    return base, new, frames


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


def _demo_experiment(ws: Any, challenger: Any, *, members: int) -> None:
    """The global-only model as challenger against the deployed champion: a 50/50 experiment, members drawn
    from the world use the service, clicks come from the world's ground truth; then the analysis."""
    from proml_lab.cli.experiments import print_report
    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.experiments import Arm, ExperimentStore
    from proml_lab.experiments.report import experiment_report
    from proml_lab.experiments.simulate import HttpRanker, simulate
    from proml_lab.serving import BackgroundService

    name = "world_job_recommendations"
    version = ModelRegistry(ws).publish(challenger, name=name, alias="challenger").version
    Deployer(ws).deploy(name, version=version, alias="challenger")
    store = ExperimentStore(ws)
    experiment = "demo_global_challenger"
    if experiment in {e.name for e in store.list()}:
        store.stop(experiment) if store.get(experiment).status == "running" else None
        store.delete(experiment)
    store.create(experiment, name, [Arm("control", "champion"), Arm("treatment", "challenger")], traffic=100.0,
                 salt="demo", description="global-only GLMix (challenger) vs per-member + per-job (champion)")
    store.start(experiment)
    console.print(f"challenger: {challenger.name} published as {name} version {version} and deployed under "
                  f"alias challenger; experiment {experiment}: control -> champion, treatment -> challenger, "
                  f"50/50, all members", highlight=False, soft_wrap=True)
    with BackgroundService(ws) as service, HttpRanker(service.url, name) as rank:
        result = simulate(ws, experiment, rank, members=members, requests_per_member=3.0, seed=0)
    store.stop(experiment)
    console.print(str(result), highlight=False)
    print_report(experiment_report(ws, experiment))


def _demo_health(ws: Any, world: Any, frames: Any, *, members: int) -> None:
    """The health loop on the drifted world: a stale champion (trained before the drift) serves the
    drifted members, monitoring alerts, the policy triggers a papermill retrain, the better model becomes
    challenger."""
    import pandas as pd

    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.experiments.simulate import HttpRanker, simulate_traffic
    from proml_lab.health.monitor import monitor, record_health_alerts
    from proml_lab.health.retrain import load_policy, retrain, should_retrain
    from proml_lab.health.snapshot import training_snapshot
    from proml_lab.serving import BackgroundService

    name = "world_job_recommendations_health"  # its own registered model: stages 5-6's champion stays put
    drift_from = world.info["config"].get("drift_from")
    if not drift_from:
        console.print("this world has no drift (drift_from): nothing to monitor", highlight=False)
        return
    registry = ModelRegistry(ws)
    stale, before = _demo_stale_champion(ws, frames, pd.Timestamp(drift_from, tz="UTC"))
    version = registry.publish(stale, name=name, alias="champion", description=f"trained on the "
                               f"impressions before the drift ({drift_from})").version
    # the snapshot monitoring compares with: the rows this version really saw (ensure_snapshot would rebuild
    # the program's whole training table, after the drift included)
    training_snapshot(ws, registry.load(name, version), before, version=version, label=frames.label)
    Deployer(ws).deploy(name, version=version, alias="champion")
    drift = world.info["config"]["drift"]
    console.print(f"the world drifted on {drift_from} (region match weight {drift['region_match']:g}, "
                  f"title family match x{drift['family_match_factor']:g}, skill overlap "
                  f"x{drift['skill_overlap_factor']:g}, job views x{drift['job_views_factor']:g}); stale "
                  f"champion: {stale.name} trained on the {len(before):,} impressions before it only "
                  f"(validation auc {stale.metrics['auc']:.4f}), "
                  f"published as {name} version {version} (alias champion) and deployed",
                  highlight=False, soft_wrap=True)

    started = pd.Timestamp.now(tz="UTC")
    with BackgroundService(ws) as service, HttpRanker(service.url, name) as rank:
        traffic = simulate_traffic(ws, name, rank, members=members, requests_per_member=3.0, seed=1)
    end = pd.Timestamp.now(tz="UTC") + pd.Timedelta("1min")
    console.print(f"drifted traffic: {traffic.requests:,} requests of {traffic.members:,} members served by "
                  f"{name}@champion in {traffic.wall_s:.1f}s: {traffic.exposures:,} exposures, "
                  f"{traffic.clicks:,} clicks (CTR {traffic.ctr:.3f}) drawn with the drifted ground truth",
                  highlight=False, soft_wrap=True)

    window = f"{int((end - started).total_seconds()) + 1}s"  # this traffic only
    report = monitor(ws, name, alias="champion", window=window, end=end)
    ids = record_health_alerts(ws, report)
    state = "healthy" if report.ok else f"{len(report.alerts)} alert(s) of {len(report.drift)} measures"
    table = Table(title=f"monitor {name}@champion v{report.version} vs its training snapshot: {state}",
                  title_justify="left")
    for col in ("measure of", "kind", "measure", "value", "status"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for r in report.drift.sort_values("value", ascending=False).itertuples(index=False):
        if r.status != "ok":
            table.add_row(str(r.feature), r.kind, r.measure, f"{r.value:.4f}", r.status)
    console.print(table)
    m = report.measures
    console.print(f"online auc {_fmt(m.get('online_auc'))} vs validation auc "
                  f"{_fmt(m.get('validation_auc'))}; "
                  f"observed CTR {_fmt(m.get('observed_ctr'))} vs mean score {_fmt(m.get('mean_score'))}; "
                  f"{len(ids)} alert(s) recorded in the health store (proml health anomalies)",
                  highlight=False, soft_wrap=True)

    policy = load_policy(ws, name)
    decision = should_retrain(policy, report.measures)
    console.print(f"retrain policy {policy.triggers}: {'retrain' if decision else 'no retrain'} — "
                  f"{'; '.join(decision.reasons)}", highlight=False, soft_wrap=True)
    if not decision:
        return
    err_console.print(f"retraining {name} (papermill) ...", highlight=False)
    result = retrain(ws, name, reason=decision.reasons[0], policy=policy)
    console.print(f"retrain via papermill ({Path(result.notebook or '').name} -> {result.output}): "
                  f"{result.status}", highlight=False, soft_wrap=True)
    if result.champion_metrics:
        table = Table(title=f"stale champion v{result.champion_version} vs the retrained model, on the "
                            f"retrain's validation rows (the latest 20%, after the drift)",
                      title_justify="left")
        for col in ("on those rows", "champion", "retrained", "change"):
            table.add_column(col, justify="left" if col == "on those rows" else "right")
        for key, new in result.metrics.items():
            old = result.champion_metrics.get(key)
            if old is not None:
                table.add_row(key, f"{old:.4f}", f"{new:.4f}", f"{new - old:+.4f}")
        console.print(table)
    console.print(str(result), highlight=False, soft_wrap=True)
    table = Table(title=f"{name}: registry versions", title_justify="left")
    for col in ("version", "aliases", "auc (own validation)", "description"):
        table.add_column(col, justify="left" if col in ("aliases", "description") else "right")
    for v in registry.versions(name):
        table.add_row(v.version, ", ".join(sorted(v.aliases)) or "-", _fmt(v.metrics.get("auc")),
                      v.description)
    console.print(table)


def _demo_stale_champion(ws: Any, frames: Any, drift_from: Any) -> tuple[Any, Any]:
    """The world's program trained on the rows before the drift only (a time split of those rows)."""
    import dataclasses

    import pandas as pd

    from proml_lab.training.pipeline import train_program

    rows = pd.concat([frames.train, frames.validation], ignore_index=True)
    stamps = pd.to_datetime(rows[frames.timestamp_column], utc=True)
    before = rows[(stamps < drift_from).to_numpy()].reset_index(drop=True)
    cut = int(round(len(before) * 0.8))
    stale_frames = dataclasses.replace(frames, train=before.iloc[:cut].reset_index(drop=True),
                                       validation=before.iloc[cut:].reset_index(drop=True),
                                       split_at=before[frames.timestamp_column].iloc[cut])
    with training_cli._progress() as report:
        trained = train_program(ws, WORLD_PROGRAM.read_text(encoding="utf-8"), filename=str(WORLD_PROGRAM),
                                frames=stale_frames, run_name="world_job_recommendations (before the drift)",
                                callback=report)
    return trained.model, before


def _fmt(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"


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
