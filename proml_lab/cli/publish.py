"""``proml publish`` and ``proml models``: thin adapters over :class:`~proml_lab.deploy.registry.ModelRegistry`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, err_console, print_json, workspace


def publish(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a training run (proml train prints it).")],
    name: Annotated[str | None, typer.Option("--name", help="Registered model name (default: the program's "
                                             "MODEL name).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Move this alias (e.g. champion) to the new "
                                              "version.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="Version description.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Publish even when the online feature checks find "
                                        "errors.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish the model bundle of RUN_ID as a new version in the model registry.

    First the online feature checks (`proml health check`): every feature exists, is materialized online
    and fresh; errors refuse the publish unless --force.
    """
    from proml_lab.deploy.registry import ModelRegistry

    ws = workspace(home)
    if not force:
        from proml_lab.cli.health import print_check_report
        from proml_lab.health.checks import ONLINE_CHECKS, authoring_checks, features_of_run

        report = authoring_checks(ws, features_of_run(ws, run_id), checks=ONLINE_CHECKS)
        if report.problems:
            print_check_report(report, to=err_console)
        if not report.ok:
            err_console.print("[bold red]error:[/] not published; fix the errors above, or publish anyway "
                              "with --force", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
    version = ModelRegistry(ws).publish(run_id, name=name, alias=alias, description=description)
    if as_json:
        print_json(version.to_dict())
        return
    console.print(f"published {version.name} version {version.version}"
                  f"{' as ' + ', '.join(version.aliases) if version.aliases else ''} (run {version.run_id})",
                  highlight=False, soft_wrap=True)
    if version.metrics:
        console.print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in version.metrics.items()),
                      highlight=False, soft_wrap=True)


def models(
    name: Annotated[str | None, typer.Argument(help="Show the versions of this model only.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the published models (or one model's versions) with their aliases and metrics."""
    from proml_lab.deploy.registry import ModelRegistry

    registry = ModelRegistry(workspace(home))
    if name:
        registry.versions(name)  # an unknown name fails here, listing the published models
    found = [m for m in registry.models() if name is None or m["name"] == name]
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no published models yet: train with `proml train`, then `proml publish RUN_ID`")
        return
    table = Table(title="published models", title_justify="left")
    for col in ("model", "version", "aliases", "metrics", "run", "created"):
        table.add_column(col)
    for model in found:
        for v in model["versions"]:
            metrics = ", ".join(f"{k} {val:.4f}" for k, val in v["metrics"].items())
            table.add_row(model["name"], v["version"], ", ".join(v["aliases"]), metrics, (v["run_id"] or "")[:12],
                          (v["created_at"] or "")[:19].replace("T", " "))
    console.print(table)
