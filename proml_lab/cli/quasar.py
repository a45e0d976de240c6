"""``proml quasar ...``: check a model program, print its IR, draw its DAG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from proml_lab.cli._common import HomeOption, console

app = typer.Typer(help="Quasar model programs: check, compile to IR, render the DAG.", no_args_is_help=True)

FileArgument = Annotated[Path, typer.Argument(help="A .quasar program.", exists=True, dir_okay=False)]
CatalogOption = Annotated[
    bool, typer.Option("--catalog/--no-catalog", help="Resolve feature names against the workspace catalog.")
]


def _catalog(home: Path | None, use: bool) -> Any:
    """The workspace's feature catalog, or None when asked not to use one or there is no workspace."""
    if not use:
        return None
    from proml_lab.errors import WorkspaceError
    from proml_lab.workspace import Workspace

    try:
        return Workspace.open(home).features.catalog
    except WorkspaceError:
        return None


def compile_file(path: Path, home: Path | None, use_catalog: bool) -> Any:
    from proml_lab.quasar import compile

    return compile(path.read_text(encoding="utf-8"), catalog=_catalog(home, use_catalog), filename=str(path))


@app.command("check")
def check(file: FileArgument, home: HomeOption = None, catalog: CatalogOption = True) -> None:
    """Check a program: syntax, names (against the feature catalog), types and scopes."""
    ir = compile_file(file, home, catalog)
    console.print(
        f"{file}: ok — {len(ir.nodes)} nodes, {len(ir.features())} features, {len(ir.trainables())} trainable",
        highlight=False,
        soft_wrap=True,
    )


@app.command("ir")
def ir(file: FileArgument, home: HomeOption = None, catalog: CatalogOption = True) -> None:
    """Print the program's IR (the typed DAG) as JSON."""
    print(compile_file(file, home, catalog).dumps())


@app.command("render")
def render(
    file: FileArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the SVG (or .dot).")],
    home: HomeOption = None,
    catalog: CatalogOption = True,
    engine: Annotated[str, typer.Option(help="auto (graphviz when installed), graphviz or python.")] = "auto",
) -> None:
    """Draw the program's DAG as SVG (or DOT, when the output ends in .dot)."""
    from proml_lab.quasar.render import QuasarDiagram

    diagram = QuasarDiagram(compile_file(file, home, catalog), engine=engine, title=file.stem)
    diagram.save(output)
    console.print(f"wrote {output}", highlight=False, soft_wrap=True)
