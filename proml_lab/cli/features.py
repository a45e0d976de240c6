"""``proml features ...``: the Feature Marketplace from the shell."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from proml_lab.cli._common import HomeOption, JsonOption, console, print_json, progress, workspace

app = typer.Typer(help="Feature Marketplace: define, search, describe and materialize features.",
                  no_args_is_help=True)

DateOption = typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.timezone.utc)


def print_apply(result: Any) -> None:
    console.print(f"applied: {escape(str(result))}")
    for change in result.updated:
        console.print(f"  updated {change.kind} {change.name}: v{change.old_version} -> v{change.new_version}")


def print_hits(hits: list[Any], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("feature", "entity", "type", "online", "description"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        table.add_row(hit.name, hit.entity, hit.type, "yes" if hit.online else "", escape(hit.description))
    console.print(table)


def print_catalog_summary(summary: dict[str, Any]) -> None:
    table = Table(title="Feature catalog", show_header=False, title_justify="left")
    for key, value in summary.items():
        table.add_row(key, ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else str(value))
    console.print(table)


@app.command("apply")
def apply(
    paths: Annotated[list[Path], typer.Argument(help="YAML / Python files or folders of definitions.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply feature definitions (identical ones change nothing; changed ones get a new version)."""
    result = workspace(home).features.apply([str(p) for p in paths])
    if as_json:
        print_json({k: [c._asdict() for c in getattr(result, k)] for k in ("created", "updated", "unchanged", "deleted")})
    else:
        print_apply(result)


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words to look for in names, descriptions and tags.")] = "",
    home: HomeOption = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity (member, job, ...).")] = None,
    type: Annotated[str | None, typer.Option("--type", help="numeric, binary, categorical, vector or text.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only features owned by this team.")] = None,
    online: Annotated[bool | None, typer.Option("--online/--offline-only", help="Filter on online availability.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Search the catalog, most relevant first."""
    hits = workspace(home, create=False).features.search(
        query, entity=entity, type=type, owner=owner, online=online, limit=limit
    )
    if as_json:
        print_json([vars(h) if not hasattr(h, "_asdict") else h._asdict() for h in hits])
    else:
        print_hits(hits, f"{len(hits)} feature(s) for {query!r}")


@app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="Feature name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Definition, anchor, versions, lineage, statistics history and online freshness of a feature."""
    info = workspace(home, create=False).features.describe(name)
    if as_json:
        print_json(info)
        return
    table = Table(title=name, show_header=False, title_justify="left")
    for key, value in info.items():
        table.add_row(key, _short(value))
    console.print(table)


def _short(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return escape(text if len(text) < 400 else text[:400] + " ...")


@app.command("materialize")
def materialize(
    home: HomeOption = None,
    start: Annotated[dt.datetime | None, DateOption] = None,
    end: Annotated[dt.datetime | None, DateOption] = None,
    anchor: Annotated[list[str] | None, typer.Option(help="Only these anchors (repeatable).")] = None,
    online: Annotated[bool, typer.Option("--online", help="Also push the values in force at --as-of online.")] = False,
    as_of: Annotated[dt.datetime | None, DateOption] = None,
    as_json: JsonOption = False,
) -> None:
    """Materialize anchors into feature tables on Spark (UTC times), optionally push them online.

    --as-of (default: now) is the moment the online store reflects; for a replayed data set such as the
    sample world, pass the end of its time range.
    """
    with progress() as report:
        result = workspace(home, create=False).features.materialize(
            start=_utc(start), end=_utc(end), anchors=anchor or None, online=online, as_of=_utc(as_of),
            progress=report,
        )
    if as_json:
        print_json(vars(result))
        return
    table = Table(title="Materialized", title_justify="left")
    for column in ("anchor", "batch", "offline rows", "online keys"):
        table.add_column(column, justify="right" if column != "anchor" else "left")
    for name, rows in result.offline_rows.items():
        online_rows = result.online_rows.get(name)
        table.add_row(name, str(result.batches[name]), f"{rows:,}", "" if online_rows is None else f"{online_rows:,}")
    console.print(table)
