"""``proml deploy``, ``proml rollback``, ``proml deployments``: thin adapters over the Deployer."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, print_json, progress, workspace

AliasOption = Annotated[
    str, typer.Option("--alias", help="The serving alias to move (champion, an experiment arm).")
]
VersionOption = Annotated[
    str | None, typer.Option("--version", help="Version to deploy (default: the latest).")
]
FromAliasOption = Annotated[
    str | None, typer.Option("--from-alias", help="Deploy the version a registry alias names.")
]


def deploy(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: VersionOption = None,
    from_alias: FromAliasOption = None,
    alias: AliasOption = "champion",
    keep: Annotated[int, typer.Option("--keep", min=0, help="Earlier deployments kept for rollback.")] = 3,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy a published version: coefficients online, documents in a new forward index, then switch."""
    from proml_lab.deploy.deployer import Deployer

    if version is not None and from_alias is not None:
        raise typer.BadParameter("give --version or --from-alias, not both")
    with progress() as report:
        done = Deployer(workspace(home)).deploy(name, version, from_alias=from_alias, alias=alias, keep=keep,
                                                progress=report)
    if as_json:
        print_json(done.to_dict())
        return
    console.print(f"deployed [bold]{done.name}[/] version [bold]{done.version}[/] as {done.alias!r} "
                  f"(generation {done.generation})")


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: AliasOption = "champion",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias back at the version it served before the last deployment."""
    from proml_lab.deploy.deployer import Deployer

    done = Deployer(workspace(home)).rollback(name, alias=alias)
    if as_json:
        print_json(done.to_dict())
        return
    console.print(f"rolled back [bold]{done.name}[/] {done.alias!r} to version [bold]{done.version}[/] "
                  f"(generation {done.generation})")


def deployments(name: Annotated[str, typer.Argument(help="Registered model name.")], home: HomeOption = None,
                as_json: JsonOption = False) -> None:
    """What each alias of a model serves, what it can roll back to, and the generations on disk."""
    from proml_lab.deploy.deployer import Deployer

    status = Deployer(workspace(home)).status(name)
    if as_json:
        print_json(status)
        return
    print_status(status)


def print_status(status: dict[str, Any]) -> None:
    table = Table(title=f"Deployments of {status['name']}", title_justify="left")
    for column in ("alias", "version", "generation", "documents", "deployed at", "rollback to"):
        table.add_column(column)
    for alias, entry in status["aliases"].items():
        earlier = ", ".join(e["version"] for e in status["history"].get(alias, [])) or "-"
        table.add_row(alias, entry["version"], entry["generation"], f"{entry.get('rows', 0):,}",
                      entry["deployed_at"], earlier)
    console.print(table)
    size = sum(g["bytes"] for g in status["generations"])
    console.print(f"{len(status['generations'])} generation(s) on disk, {size / 1e6:.1f} MB")
