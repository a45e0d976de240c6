"""The ``proml`` command: a thin adapter over the library (parse, call one function, render)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator

import typer
from rich.console import Console
from rich.table import Table

from proml_lab.errors import ProMLError

app = typer.Typer(
    name="proml",
    help="ProML Lab: explore, author, train, deploy and run ranking models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
worlds_app = typer.Typer(help="Sample worlds: the synthetic economic graph and MovieLens.", no_args_is_help=True)
app.add_typer(worlds_app, name="worlds")

console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="PROML_HOME", help="Workspace directory (default ./.proml)."),
]


def _workspace(home: Path | None, *, create: bool = True) -> Any:
    from proml_lab.workspace import Workspace

    return Workspace.init(home) if create else Workspace.open(home)


@contextmanager
def _progress() -> Iterator[Any]:
    """A rich progress display fed by the library's ``progress(stage, done, total)`` callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=False, disable=not err_console.is_terminal,
    ) as bar:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield report


def _print_workspace(ws: Any) -> None:
    table = Table(title="ProML Lab workspace", show_header=False, title_justify="left")
    for key, value in ws.describe().items():
        table.add_row(key, value)
    console.print(table)


def _print_world(summary: dict[str, Any]) -> None:
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


@app.command()
def init(home: HomeOption = None) -> None:
    """Create the workspace (safe to run again)."""
    _print_workspace(_workspace(home))


@app.command()
def demo(
    home: HomeOption = None,
    size: Annotated[str, typer.Option(help="World size: tiny, small or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed of the world.")] = 0,
) -> None:
    """Walk the lifecycle on the embedded defaults: workspace, sample world, ..."""
    from proml_lab.worlds import generate_world

    ws = _workspace(home)
    _print_workspace(ws)
    console.rule("[bold]1. Sample world: the economic graph")
    with _progress() as report:
        world = generate_world(size, seed=seed, workspace=ws, progress=report)
    _print_world(world.summary())


@worlds_app.command("generate")
def worlds_generate(
    home: HomeOption = None,
    size: Annotated[str, typer.Option(help="tiny (~1k members), small (~20k) or large (~1M).")] = "small",
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    drift_from: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Inject drift from this date.")
    ] = None,
    anomalies: Annotated[int, typer.Option(help="Anomalous windows in the hourly metrics.")] = 0,
    name: Annotated[str, typer.Option(help="Folder under the workspace's lake.")] = "world",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate the synthetic job-recommendation world into the workspace's offline lake."""
    from proml_lab.worlds import generate_world

    ws = _workspace(home)
    overrides: dict[str, Any] = {"anomalies": anomalies}
    if drift_from is not None:
        overrides["drift_from"] = drift_from.date()
    with _progress() as report:
        world = generate_world(size, seed=seed, workspace=ws, name=name, progress=report, **overrides)
    summary = world.summary()
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_world(summary)


@worlds_app.command("summary")
def worlds_summary(
    home: HomeOption = None,
    name: Annotated[str, typer.Option(help="Folder under the workspace's lake.")] = "world",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarize the generated world."""
    from proml_lab.worlds import World

    summary = World.open(_workspace(home, create=False), name).summary()
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_world(summary)


@worlds_app.command("movielens")
def worlds_movielens(
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


@app.command()
def lab(
    home: HomeOption = None,
    port: Annotated[int, typer.Option(help="Port for JupyterLab.")] = 8888,
    notebooks: Annotated[Path, typer.Option(help="Folder JupyterLab opens.")] = Path("notebooks"),
) -> None:
    """Start JupyterLab on the workspace (PROML_HOME is passed to every kernel)."""
    ws = _workspace(home)
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


def main() -> None:
    """Console entry point: user errors print one clear message and exit 1 (no traceback)."""
    try:
        app()
    except ProMLError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
