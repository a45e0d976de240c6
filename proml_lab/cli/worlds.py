"""``proml worlds ...``: generate and inspect the sample data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, print_json, progress, workspace

app = typer.Typer(help="Sample worlds: the synthetic economic graph and MovieLens.", no_args_is_help=True)


def print_world(summary: dict[str, Any]) -> None:
    rows = Table(title=f"World '{summary['size']}' (seed {summary['seed']})", title_justify="left")
    rows.add_column("table")
    rows.add_column("rows", justify="right")
    for name, count in summary["rows"].items():
        rows.add_row(name, f"{count:,}")
    console.print(rows)
    facts = Table(show_header=False)
    facts.add_row("impressions", summary["impressions_range"])
    facts.add_row("member activity", summary["activity_range"])
    facts.add_row("click-through rate", f"{summary['ctr']:.2%}")
    facts.add_row("apply rate", f"{summary['apply_rate']:.2%}")
    facts.add_row("impressions / member", f"{summary['impressions_per_member']:.1f}")
    facts.add_row(
        "top title families", ", ".join(f"{name} ({count:,})" for name, count in summary["top_title_families"])
    )
    facts.add_row("drift from", summary["drift_from"] or "none")
    facts.add_row("anomalies", ", ".join(f"{a['kind']} at {a['start']}" for a in summary["anomalies"]) or "none")
    facts.add_row("on disk", f"{summary['disk_mb']:.1f} MB in {summary['path']}")
    console.print(facts)


@app.command("generate")
def generate(
    home: HomeOption = None,
    size: Annotated[str, typer.Option(help="tiny (~1k members), small (~20k) or large (~1M).")] = "small",
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    drift_from: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Inject drift from this date.")
    ] = None,
    anomalies: Annotated[int, typer.Option(help="Anomalous windows in the hourly metrics.")] = 0,
    name: Annotated[str, typer.Option(help="Folder under the workspace's lake.")] = "world",
    as_json: JsonOption = False,
) -> None:
    """Generate the synthetic job-recommendation world into the workspace's offline lake."""
    from proml_lab.worlds import generate_world

    ws = workspace(home)
    overrides: dict[str, Any] = {"anomalies": anomalies}
    if drift_from is not None:
        overrides["drift_from"] = drift_from.date()
    with progress() as report:
        world = generate_world(size, seed=seed, workspace=ws, name=name, progress=report, **overrides)
    summary = world.summary()
    print_json(summary) if as_json else print_world(summary)


@app.command("summary")
def summary(
    home: HomeOption = None,
    name: Annotated[str, typer.Option(help="Folder under the workspace's lake.")] = "world",
    as_json: JsonOption = False,
) -> None:
    """Summarize the generated world."""
    from proml_lab.worlds import World

    data = World.open(workspace(home, create=False), name).summary()
    print_json(data) if as_json else print_world(data)


@app.command("movielens")
def movielens(
    path: Annotated[Path | None, typer.Option(help="Folder with u.data, u.user, u.item.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the 80/20 split.")] = 0,
) -> None:
    """Load MovieLens-100K and show its counts and the benchmark split."""
    from proml_lab.worlds import load_movielens

    ml = load_movielens(path)
    train, test = ml.split(seed=seed)
    table = Table(title=f"MovieLens-100K ({ml.path})", show_header=False, title_justify="left")
    table.add_row("ratings", f"{len(ml.ratings):,}")
    table.add_row("users", f"{len(ml.users):,}")
    table.add_row("movies", f"{len(ml.items):,}")
    table.add_row("positive share (rating > 3)", f"{ml.ratings['label'].mean():.2%}")
    table.add_row(f"split (seed {seed})", f"{len(train):,} train / {len(test):,} test")
    console.print(table)
