"""Shared pieces of the command line: consoles, the --home option, progress bars, error exit."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="PROML_HOME", help="Workspace directory (default ./.proml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def workspace(home: Path | None, *, create: bool = True) -> Any:
    from proml_lab.workspace import Workspace

    return Workspace.init(home) if create else Workspace.open(home)


@contextmanager
def progress() -> Iterator[Any]:
    """A rich progress display fed by the library's ``progress(stage, done, total)`` callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=False, disable=not err_console.is_terminal,
    ) as bar:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield report


def print_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))
