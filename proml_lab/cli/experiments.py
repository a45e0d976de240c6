"""``proml experiment ...``: define, start, ramp, stop and inspect A/B experiments."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, print_json, workspace

app = typer.Typer(help="A/B experiments: arms routed to serving aliases, ramps, exclusive layers.",
                  no_args_is_help=True)


def _store(home: Any) -> Any:
    from proml_lab.experiments.store import ExperimentStore

    return ExperimentStore(workspace(home))


def print_experiment(e: Any) -> None:
    """One experiment as tables: its definition, where it sits in its layer, and its ramp history."""
    facts = Table(title=f"experiment {e.name} ({e.status})", show_header=False, title_justify="left")
    facts.add_row("model", e.model)
    facts.add_row("arms", ", ".join(f"{a.name} -> {a.alias} (weight {a.weight:g})" for a in e.arms)
                  + f"; control: {e.control.name}")
    facts.add_row("layer", e.layer)
    facts.add_row("traffic", f"{e.traffic:g}% of the layer (share reserved: {e.share:g}%)")
    facts.add_row("bucket range", f"{e.bucket_range[0]}-{e.bucket_range[1] - 1} of 10000 "
                                  f"(serving {e.bucket_range[0]}-{e.bucket_range[0] + e.active_buckets - 1})")
    facts.add_row("salt", e.salt)
    for label, value in (("created", e.created_at), ("started", e.started_at), ("stopped", e.stopped_at),
                         ("description", e.description)):
        if value:
            facts.add_row(label, escape(value))
    console.print(facts)
    if e.ramp:
        ramp = Table(title="ramp history", title_justify="left")
        ramp.add_column("at")
        ramp.add_column("traffic", justify="right")
        for step in e.ramp:
            ramp.add_row(step["at"], f"{step['traffic']:g}%")
        console.print(ramp)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The experiment's unique name.")],
    model: Annotated[str, typer.Option("--model", help="The registered model it tests.")],
    arm: Annotated[list[str], typer.Option("--arm", help="NAME=ALIAS[:WEIGHT], repeated; the first is the "
                                                         "control (e.g. control=champion).")],
    layer: Annotated[str, typer.Option(help="Experiments of one layer never share a member.")] = "default",
    share: Annotated[float, typer.Option(help="Percent of the layer reserved (the most it can ramp to).")] = 100.0,
    traffic: Annotated[float, typer.Option(help="Percent of the layer's members in it once started.")] = 5.0,
    salt: Annotated[str | None, typer.Option(help="Key of the arm hash (default: random).")] = None,
    description: Annotated[str, typer.Option(help="What the experiment tests.")] = "",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Define a draft experiment and reserve its slice of the layer."""
    from proml_lab.experiments.model import Arm

    e = _store(home).create(name, model, [Arm.parse(a) for a in arm], layer=layer, share=share, traffic=traffic,
                            salt=salt, description=description)
    if as_json:
        print_json(e.to_dict())
        return
    console.print(f"created {e}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"next: proml experiment start {e.name}", highlight=False, soft_wrap=True, markup=False)


@app.command("start")
def start(name: Annotated[str, typer.Argument(help="Experiment name.")], home: HomeOption = None) -> None:
    """Start a draft (each arm's alias must be deployed); the ranking service routes its members at once."""
    e = _store(home).start(name)
    console.print(f"started {e}", highlight=False, soft_wrap=True, markup=False)


@app.command("ramp")
def ramp(name: Annotated[str, typer.Argument(help="Experiment name.")],
         percent: Annotated[float, typer.Argument(help="Percent of the layer's members in the experiment.")],
         home: HomeOption = None) -> None:
    """Change the traffic (up to the share); members already in keep their arm."""
    e = _store(home).ramp(name, percent)
    console.print(f"ramped {e}", highlight=False, soft_wrap=True, markup=False)


@app.command("stop")
def stop(name: Annotated[str, typer.Argument(help="Experiment name.")], home: HomeOption = None) -> None:
    """Stop it: its members go back to the default alias (its bucket range stays reserved)."""
    e = _store(home).stop(name)
    console.print(f"stopped {e}", highlight=False, soft_wrap=True, markup=False)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Experiment name.")], home: HomeOption = None,
         as_json: JsonOption = False) -> None:
    """Definition, status, current traffic, bucket range and ramp history."""
    e = _store(home).get(name)
    print_json(e.to_dict()) if as_json else print_experiment(e)


@app.command("list")
def list_(
    model: Annotated[str | None, typer.Option(help="Only this model's experiments.")] = None,
    status: Annotated[str | None, typer.Option(help="draft, running or stopped.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every experiment with its model, status, layer, traffic and bucket range."""
    found = _store(home).list(model=model, status=status)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    table = Table(title=f"{len(found)} experiment(s)", title_justify="left")
    for col in ("name", "model", "status", "arms", "layer", "traffic", "share", "buckets"):
        table.add_column(col, justify="right" if col in ("traffic", "share") else "left")
    for e in found:
        table.add_row(e.name, e.model, e.status, ", ".join(f"{a.name}->{a.alias}" for a in e.arms), e.layer,
                      f"{e.traffic:g}%", f"{e.share:g}%", f"{e.bucket_range[0]}-{e.bucket_range[1] - 1}")
    console.print(table)


def print_report(report: Any) -> None:
    """An experiment's analysis: one row per metric and treatment arm, the decision and the SRM check."""
    analysis = report.analysis
    if analysis is None:
        console.print(report.message, highlight=False)
        return
    t = analysis.table
    table = Table(title=f"experiment {report.experiment.name}: {len(report.units):,} members exposed; control "
                        f"arm: {analysis.control}", title_justify="left")
    for col in ("metric", "arm", "members", "mean", "lift", "95% CI", "relative", "p", "p (always valid)"):
        table.add_column(col, justify="left" if col in ("metric", "arm") else "right")
    for row in t.to_dict("records"):
        control = row["arm"] == analysis.control
        table.add_row(
            row["metric"], row["arm"], f"{int(row['n']):,}", f"{row['mean']:.4f}",
            "" if control else f"{row['lift']:+.4f}",
            "" if control else f"[{row['lift_low']:+.4f}, {row['lift_high']:+.4f}]",
            "" if control else f"{row['rel_lift']:+.1%}",
            "" if control else f"{row['p_value']:.3g}",
            "" if control or "p_always_valid" not in row else f"{row['p_always_valid']:.3g}")
    console.print(table)
    console.print(f"decision: [bold]{report.decision}[/bold] ({'; '.join(analysis.reasons)})")
    console.print(report.srm_line, highlight=False, soft_wrap=True)


@app.command("analyze")
def analyze(name: Annotated[str, typer.Argument(help="Experiment name.")], home: HomeOption = None,
            alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
            as_json: JsonOption = False) -> None:
    """Per-arm metrics, lifts with confidence intervals, p-values, the SRM check and a decision hint."""
    from proml_lab.experiments.report import experiment_report

    report = experiment_report(workspace(home), name, alpha=alpha)
    print_json(report.to_dict()) if as_json else print_report(report)


@app.command("simulate")
def simulate(
    name: Annotated[str, typer.Argument(help="A running experiment.")],
    members: Annotated[int, typer.Option(help="Simulated members drawn from the world.")] = 500,
    requests_per_member: Annotated[float, typer.Option(help="Mean ranking requests per member.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    url: Annotated[str | None, typer.Option(help="A running `proml serve` (default: start one here).")] = None,
    home: HomeOption = None,
) -> None:
    """The world's members use the service: requests routed to their arms, clicks and applies drawn from the
    world's ground truth and logged; then the analysis."""
    from contextlib import nullcontext

    from proml_lab.experiments.report import experiment_report
    from proml_lab.experiments.simulate import HttpRanker, simulate as run_simulation
    from proml_lab.experiments.store import ExperimentStore
    from proml_lab.serving import BackgroundService

    ws = workspace(home)
    experiment = ExperimentStore(ws).get(name)
    with (nullcontext() if url else BackgroundService(ws)) as service:
        with HttpRanker(url or service.url, experiment.model) as rank:
            result = run_simulation(ws, name, rank, members=members, requests_per_member=requests_per_member,
                                    seed=seed)
    console.print(str(result), highlight=False)
    print_report(experiment_report(ws, name))
