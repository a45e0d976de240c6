"""``proml retrain MODEL``: run the model's retrain notebook with papermill; publish a better model as
challenger (see :mod:`proml_lab.health.retrain`); ``--history`` lists the attempts."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, err_console, print_json, workspace


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that reads as JSON (``3``, ``null``, ``true``) is that, else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--param takes KEY=VALUE (e.g. training_data=world/impressions); got "
                                     f"{item!r}", param_hint="--param")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def retrain(
    model: Annotated[str, typer.Argument(help="The registered model to retrain (its champion's program).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, recorded with the attempt.")] = "manual",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Notebook parameter KEY=VALUE (repeatable), e.g. "
                              "training_data=world/impressions.",
    )] = None,
    history: Annotated[bool, typer.Option("--history", help="List the model's retrain attempts.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain MODEL with its retrain notebook (papermill); publish the result as challenger only if it beats
    the champion on the same validation rows. Exit 1 when the run failed."""
    from proml_lab.health.retrain import retrain as run_retrain
    from proml_lab.health.retrain import retrain_history

    ws = workspace(home)
    if history:
        frame = retrain_history(ws, model)
        if as_json:
            print_json(json.loads(frame.to_json(orient="records", date_format="iso")))
            return
        _print_history(model, frame)
        return
    if not as_json:
        err_console.print(f"retraining {model} (papermill) ...", highlight=False)
    result = run_retrain(ws, model, reason=reason, parameters=_parse_params(param or []))
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(str(result), highlight=False, soft_wrap=True)
        if result.output:
            console.print(f"executed notebook: {result.output}", highlight=False, soft_wrap=True)
    if result.status == "failed":
        raise typer.Exit(1)


def _print_history(model: str, frame: Any) -> None:
    table = Table(title=f"{model}: retrain attempts", title_justify="left")
    for col in ("id", "started", "status", "reason", "metric", "new", "champion", "version", "run"):
        table.add_column(col, justify="right" if col in ("id", "new", "champion", "version") else "left")
    for r in frame.itertuples(index=False):
        def num(v: Any) -> str:
            return "" if v is None or v != v else f"{v:.4f}"

        table.add_row(str(r.id), f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.status, str(r.reason or ""),
                      str(r.metric or ""), num(r.new_value), num(r.champion_value), str(r.version or ""),
                      str(r.run_id or "")[:12])
    console.print(table)
    if frame.empty:
        console.print(f"no retrain of {model} yet: proml retrain {model}", highlight=False)
